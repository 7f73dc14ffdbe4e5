/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Little-endian load/store helpers.  USB and CCID fields are little-endian
 * and unaligned; reading them byte by byte is the only form that is correct
 * on every host and under UBSan.
 */
#ifndef CCID_EMU_CCID_LE_H
#define CCID_EMU_CCID_LE_H

#include <stdint.h>

static inline uint16_t ccid_le16_load(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t ccid_le32_load(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline void ccid_le16_store(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void ccid_le32_store(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

#endif /* CCID_EMU_CCID_LE_H */
