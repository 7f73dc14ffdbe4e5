/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Command APDU decoding, ISO/IEC 7816-4 §5.1 (cases 1, 2S, 3S, 4S, 2E, 3E,
 * 4E).  Pure: no allocation, the decoded body points into the caller's
 * buffer.  Used by the loopback card; every byte is guest input, so the
 * decoder accepts exactly the encodings the standard allows and nothing
 * else.
 */
#ifndef CCID_EMU_CARD_APDU_H
#define CCID_EMU_CARD_APDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ccid_apdu_case {
	CCID_APDU_CASE_1 = 1,  /* header only */
	CCID_APDU_CASE_2S,     /* header + Le */
	CCID_APDU_CASE_3S,     /* header + Lc + data */
	CCID_APDU_CASE_4S,     /* header + Lc + data + Le */
	CCID_APDU_CASE_2E,     /* header + 00 + Le(2) */
	CCID_APDU_CASE_3E,     /* header + 00 + Lc(2) + data */
	CCID_APDU_CASE_4E,     /* header + 00 + Lc(2) + data + Le(2) */
};

struct ccid_apdu {
	enum ccid_apdu_case apdu_case;
	uint8_t cla, ins, p1, p2;
	const uint8_t *data;   /* Nc bytes inside the parsed buffer, or NULL */
	uint32_t nc;           /* 0..65535 */
	uint32_t ne;           /* 0 (no Le field) .. 65536 */
	bool has_le;
};

enum ccid_apdu_parse_result {
	CCID_APDU_OK = 0,
	CCID_APDU_ETOOSHORT,     /* fewer than the 4 header bytes */
	CCID_APDU_EBADLENGTH,    /* Lc/Le fields do not match the length */
	CCID_APDU_EZEROLC,       /* extended Lc of 0, which 7816-4 forbids */
};

/* Decodes @len bytes at @buf into @out.  On error @out is left in an
 * unspecified state. */
enum ccid_apdu_parse_result ccid_apdu_parse(const uint8_t *buf, size_t len,
					    struct ccid_apdu *out);

/* Short English reason for a parse result, never NULL. */
const char *ccid_apdu_parse_result_str(enum ccid_apdu_parse_result r);

#ifdef __cplusplus
}
#endif

#endif /* CCID_EMU_CARD_APDU_H */
