/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PIN-retry guard's knowledge, without any I/O: which command APDUs
 * spend a try of a PIN reference (ISO/IEC 7816-4 §11.5.6-§11.5.10:
 * VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER), and what the
 * card's status words say about the tries left.  card_pin_guard.c puts
 * this between a slot and its backend.
 */
#ifndef CCID_EMU_PIN_GUARD_H
#define CCID_EMU_PIN_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RESET RETRY COUNTER checks a resetting code the command does not name.
 * The guard counts it as the PIV PUK, key reference 0x81 (SP 800-73-4
 * §3.2.3), which CHANGE REFERENCE DATA of 0x81 spends too. */
#define CCID_PIN_GUARD_RESET_REF  0x81u
#define CCID_PIN_GUARD_UNKNOWN    0xFFu   /* tries left not known */

enum ccid_pin_cmd_kind {
	CCID_PIN_CMD_OTHER = 0,  /* spends no try */
	CCID_PIN_CMD_QUERY,      /* VERIFY without data: the tries-left query */
	CCID_PIN_CMD_SPEND,      /* spends a try of ref if the data is wrong */
};

struct ccid_pin_cmd {
	enum ccid_pin_cmd_kind kind;
	uint8_t cla;        /* the command's class byte */
	uint8_t ins;        /* the command's INS */
	uint8_t ref;        /* the reference whose tries it spends or asks */
	bool chained;       /* CLA chaining bit: not the last part */
};

/* Classifies @len bytes of a command APDU.  Never fails: what cannot be
 * decoded but has a PIN command's INS and more than a short header's
 * bytes counts as spending (the card may read it as data). */
void ccid_pin_cmd_classify(const uint8_t *apdu, size_t len,
			   struct ccid_pin_cmd *out);

/* The tries-left query the guard sends for @cmd: VERIFY of cmd->ref with
 * no data, on the command's class without its chaining and secure
 * messaging bits.  Writes 4 bytes. */
void ccid_pin_cmd_query(const struct ccid_pin_cmd *cmd, uint8_t out[4]);

/* Tries left per reference, CCID_PIN_GUARD_UNKNOWN until the card says. */
struct ccid_pin_counts {
	uint8_t left[256];
};

void ccid_pin_counts_init(struct ccid_pin_counts *c);

/* What the card's answer @resp to @cmd tells about cmd->ref.  A query's
 * 9000 means "verified", so the count was reset to its maximum, which
 * the card does not tell: back to unknown. */
void ccid_pin_counts_learn(struct ccid_pin_counts *c,
			   const struct ccid_pin_cmd *cmd,
			   const uint8_t *resp, size_t len);

/* Whether forwarding @cmd could spend the reference's last try: the card
 * said it has exactly one left. */
bool ccid_pin_counts_is_last(const struct ccid_pin_counts *c,
			     const struct ccid_pin_cmd *cmd);

/* "VERIFY", "CHANGE REFERENCE DATA", "RESET RETRY COUNTER" or "command". */
const char *ccid_pin_cmd_name(uint8_t ins);

/* Copies @len bytes of a command APDU into @out (same size) with the data
 * field of a PIN command (VERIFY, CHANGE REFERENCE DATA, RESET RETRY
 * COUNTER, any class) overwritten by 0x2A ('*'), for anything that logs
 * or traces APDU bytes.  Other APDUs are copied as they are. */
void ccid_pin_cmd_redact(const uint8_t *apdu, size_t len, uint8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* CCID_EMU_PIN_GUARD_H */
