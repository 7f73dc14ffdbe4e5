/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PIN-retry guard: a layer between a slot and any card backend that
 * keeps a guest from blocking the card's PIN (or PUK) with wrong guesses.
 *
 * Before the guest's VERIFY, CHANGE REFERENCE DATA or RESET RETRY COUNTER
 * that could spend a try reaches the card, the guard asks the card how
 * many tries are left (VERIFY without data); if exactly one is left it
 * does not forward the command and answers 63C1 itself, so the last try
 * stays with the host user.  A card that does not answer the query (the
 * PIV PUK: VERIFY of 0x81 is 6A88) is judged by the counts it gave in
 * its answers to earlier commands; with none yet, the command goes
 * through and its answer teaches the count.  Rules and status words:
 * ccid_pin_guard.h and pin_guard.c.
 *
 * Pure C, no I/O; the owner thread of the device runs everything.
 */
#ifndef CCID_EMU_CARD_PIN_GUARD_H
#define CCID_EMU_CARD_PIN_GUARD_H

#include <ccid-emu/ccid_emu.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ccid_pin_guard_policy {
	CCID_PIN_GUARD_KEEP_LAST = 0,  /* default: keep the last try */
	CCID_PIN_GUARD_OFF,            /* no guard: the owner binds the card itself */
};

struct ccid_card_pin_guard_config {
	/* Told each refusal (INS of the command, the reference it would
	 * have spent), for the owner's log; never sees PIN bytes.  May be
	 * NULL. */
	void (*refused)(void *user, uint8_t ins, uint8_t ref);
	void *user;
};

typedef struct ccid_card_pin_guard ccid_card_pin_guard;

/* A guard in front of @inner/@inner_card for @slot.  Bind it with
 * ccid_card_pin_guard_bind(). */
ccid_card_pin_guard *ccid_card_pin_guard_new(ccid_slot *slot,
	const struct ccid_card_ops *inner, void *inner_card,
	const struct ccid_card_pin_guard_config *cfg);
/* Accepts NULL.  Unbind it first (free the device, or bind another
 * card). */
void ccid_card_pin_guard_free(ccid_card_pin_guard *g);

/* ccid_slot_set_card() with the guard and its completion hook. */
void ccid_card_pin_guard_bind(ccid_card_pin_guard *g, bool present);

/* Commands refused so far. */
unsigned ccid_card_pin_guard_refusals(const ccid_card_pin_guard *g);
/* Tries left of @ref as last seen, or -1 when not known. */
int ccid_card_pin_guard_tries_left(const ccid_card_pin_guard *g, uint8_t ref);

#ifdef __cplusplus
}
#endif

#endif /* CCID_EMU_CARD_PIN_GUARD_H */
