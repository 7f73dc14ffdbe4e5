/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The loopback test card: deterministic, allocation-free in steady state,
 * for tests and benchmarks.  Pure like libccidemu: no I/O, no threads; the
 * one thing it needs from outside, a one-shot timer for delayed answers, is
 * injected.
 *
 * Its ATR offers T=1 and carries the historical bytes "ccidloop".
 *
 * Command set (CLA 0x80 unless noted), all answered with data + SW1 SW2:
 *
 *   00 A4 xx xx ...        SELECT (any)            -> 90 00
 *   80 01 00 00 Lc data    ECHO                    -> data, 90 00
 *   80 02 00 00 Le         PATTERN: Ne bytes of the pattern
 *                          byte[i] = (i * 31 + 7) & 0xFF, Ne up to 65536
 *                          (extended Le 00 00 = 65536)   -> bytes, 90 00
 *   80 03 00 00 04 t3 t2 t1 t0  DELAY: answer 90 00 after t (big-endian ms)
 *   80 04 00 00 04 n3 n2 n1 n0 [Le] DELAYED PATTERN: like DELAY then PATTERN,
 *                          Ne from Le (used to test time extension + large
 *                          responses together)
 *   other INS with CLA 80 or 00 -> 6D 00;  other CLA -> 6E 00
 *   (a DELAY of 0 ms answers at once)
 *   malformed APDU (bad Lc/Le encoding) -> 67 00
 *
 * Short and extended APDU encodings (ISO 7816-4 §5.1) are both accepted.
 */
#ifndef CCID_EMU_CARD_LOOPBACK_H
#define CCID_EMU_CARD_LOOPBACK_H

#include <ccid-emu/ccid_emu.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CCID_LOOPBACK_CLA           0x80u
#define CCID_LOOPBACK_INS_ECHO      0x01u
#define CCID_LOOPBACK_INS_PATTERN   0x02u
#define CCID_LOOPBACK_INS_DELAY     0x03u
#define CCID_LOOPBACK_INS_DELAYED_PATTERN 0x04u

/* One-shot timer the loopback card uses for DELAY.  arm() replaces any armed
 * timer; when it fires the integrator calls ccid_card_loopback_timer_fired()
 * on the owner thread. */
struct ccid_card_loopback_timer_ops {
	void (*arm)(void *user, uint32_t delay_ms);
	void (*disarm)(void *user);
};

typedef struct ccid_card_loopback ccid_card_loopback;

/* @timer may be NULL: DELAY then answers at once.  The card is bound to
 * @slot for its reverse API. */
/* The ATR every loopback card presents: writes it to @atr (room for
 * CCID_EMU_MAX_ATR bytes) and returns its length. */
size_t ccid_card_loopback_atr(uint8_t *atr);

ccid_card_loopback *ccid_card_loopback_new(ccid_slot *slot,
					   const struct ccid_card_loopback_timer_ops *timer,
					   void *timer_user);
void ccid_card_loopback_free(ccid_card_loopback *card);     /* accepts NULL */
const struct ccid_card_ops *ccid_card_loopback_ops(void);
void ccid_card_loopback_timer_fired(ccid_card_loopback *card);

/* The pattern byte at offset @i, for tests that check PATTERN output. */
static inline uint8_t ccid_card_loopback_pattern_byte(size_t i)
{
	return (uint8_t)((i * 31u + 7u) & 0xFFu);
}

#ifdef __cplusplus
}
#endif

#endif /* CCID_EMU_CARD_LOOPBACK_H */
