/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which APDUs spend PIN tries, and what the card's answers say about the
 * tries left (see ccid_pin_guard.h).
 *
 * The commands, ISO/IEC 7816-4 §11.5.6-§11.5.10; the odd INS variants
 * carry BER-TLV data and count the same.  Any class but FF (PC/SC's
 * pseudo-APDUs to the reader): a card may accept its PIN commands under
 * a proprietary class too, and a hostile guest would use it.
 *
 *   INS    P1     data   spends the tries of
 *   20/21  00     yes    P2
 *   20/21  00     no     (the tries-left query of P2)
 *   20/21  FF     -      nothing (reset of the security status)
 *   24/25  01     yes    nothing (new reference data only, no check)
 *   24/25  other  yes    P2
 *   2C/2D  02,03  -      nothing (no resetting code in the data)
 *   2C/2D  other  yes    the resetting code: PIV's PUK, 0x81
 *
 * Status words that tell the tries left (§10.1.3, SP 800-73-4 §3.2):
 *
 *   63Cx   x tries left (63C0: none)
 *   6983   blocked: none left
 *   6300   wrong, no count given: one less than known
 *   9000   accepted: the card reset the count to its maximum (not told);
 *          for a non-final chain part it only means "go on"
 */
#include "ccid_pin_guard.h"

#include "ccid_card_apdu.h"

#include <string.h>

#define CLA_CHAINING  0x10u
#define CLA_PCSC      0xFFu

static bool is_pin_ins(uint8_t ins)
{
	switch (ins & 0xFEu) {
	case 0x20:   /* VERIFY */
	case 0x24:   /* CHANGE REFERENCE DATA */
	case 0x2C:   /* RESET RETRY COUNTER */
		return true;
	default:
		return false;
	}
}

const char *ccid_pin_cmd_name(uint8_t ins)
{
	switch (ins & 0xFEu) {
	case 0x20:
		return "VERIFY";
	case 0x24:
		return "CHANGE REFERENCE DATA";
	case 0x2C:
		return "RESET RETRY COUNTER";
	default:
		return "command";
	}
}

void ccid_pin_cmd_classify(const uint8_t *apdu, size_t len,
			   struct ccid_pin_cmd *out)
{
	struct ccid_apdu p;
	bool has_data;
	uint8_t ins, p1;

	memset(out, 0, sizeof(*out));
	if (apdu == NULL || len < 4 || apdu[0] == CLA_PCSC ||
	    !is_pin_ins(apdu[1]))
		return;
	out->cla = apdu[0];
	ins = out->ins = apdu[1];
	p1 = apdu[2];
	out->ref = apdu[3];
	out->chained = (apdu[0] & CLA_CHAINING) != 0;
	if (ccid_apdu_parse(apdu, len, &p) == CCID_APDU_OK)
		has_data = p.nc > 0;
	else
		has_data = len > 5;    /* malformed: the card may see data */

	switch (ins & 0xFEu) {
	case 0x20:
		if (p1 == 0xFF)
			return;
		out->kind = has_data ? CCID_PIN_CMD_SPEND :
			    p1 == 0x00 ? CCID_PIN_CMD_QUERY : CCID_PIN_CMD_OTHER;
		return;
	case 0x24:
		if (has_data && p1 != 0x01)
			out->kind = CCID_PIN_CMD_SPEND;
		return;
	case 0x2C:
		if (has_data && p1 != 0x02 && p1 != 0x03) {
			out->kind = CCID_PIN_CMD_SPEND;
			out->ref = CCID_PIN_GUARD_RESET_REF;
		}
		return;
	}
}

void ccid_pin_cmd_query(const struct ccid_pin_cmd *cmd, uint8_t out[4])
{
	uint8_t cla = cmd->cla;

	/* First interindustry class (000x xxxx): keep the logical channel
	 * (b2 b1); further interindustry (01xx xxxx): channel b4-b1; a
	 * proprietary class is kept, but not its chaining bit. */
	if ((cla & 0xE0u) == 0x00u)
		cla &= 0x03u;
	else if ((cla & 0xC0u) == 0x40u)
		cla &= 0x4Fu;
	else
		cla &= (uint8_t)~CLA_CHAINING;
	out[0] = cla;
	out[1] = 0x20;    /* VERIFY */
	out[2] = 0x00;
	out[3] = cmd->ref;
}

void ccid_pin_counts_init(struct ccid_pin_counts *c)
{
	memset(c->left, CCID_PIN_GUARD_UNKNOWN, sizeof(c->left));
}

void ccid_pin_counts_learn(struct ccid_pin_counts *c,
			   const struct ccid_pin_cmd *cmd,
			   const uint8_t *resp, size_t len)
{
	uint8_t *left = &c->left[cmd->ref];
	uint8_t sw1, sw2;

	if (cmd->kind == CCID_PIN_CMD_OTHER || resp == NULL || len < 2)
		return;
	sw1 = resp[len - 2];
	sw2 = resp[len - 1];
	if (sw1 == 0x63 && (sw2 & 0xF0u) == 0xC0u) {
		*left = sw2 & 0x0Fu;
	} else if (sw1 == 0x69 && sw2 == 0x83) {
		*left = 0;
	} else if (sw1 == 0x63 && sw2 == 0x00 &&
		   cmd->kind == CCID_PIN_CMD_SPEND) {
		if (*left != CCID_PIN_GUARD_UNKNOWN && *left > 0)
			(*left)--;
	} else if (sw1 == 0x90 && sw2 == 0x00 &&
		   !(cmd->kind == CCID_PIN_CMD_SPEND && cmd->chained)) {
		*left = CCID_PIN_GUARD_UNKNOWN;
	}
}

bool ccid_pin_counts_is_last(const struct ccid_pin_counts *c,
			     const struct ccid_pin_cmd *cmd)
{
	return cmd->kind == CCID_PIN_CMD_SPEND && c->left[cmd->ref] == 1;
}

void ccid_pin_cmd_redact(const uint8_t *apdu, size_t len, uint8_t *out)
{
	if (len > 0)
		memcpy(out, apdu, len);
	/* Everything after CLA INS P1 P2 and the first length byte: the
	 * data (and, for extended lengths, the rest of Lc and Le, which
	 * tell nothing worth keeping). */
	if (len > 5 && out[0] != CLA_PCSC && is_pin_ins(out[1]))
		memset(out + 5, '*', len - 5);
}
