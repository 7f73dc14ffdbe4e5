/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the PIV applet (ccid_piv_applet.h): the session state, the
 * decoded command, the status words, BER-TLV helpers, and the command
 * handlers that live in their own files (piv_keys.c: GENERAL AUTHENTICATE
 * and GENERATE; piv_yubico.c: the Yubico extensions).  Not installed.
 */
#ifndef CCID_EMU_PIV_APPLET_PRIVATE_H
#define CCID_EMU_PIV_APPLET_PRIVATE_H

#include "ccid_piv_applet.h"

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* ISO/IEC 7816-4 §5.1.3 status words used by SP 800-73-4. */
#define SW_OK                 0x9000u
#define SW_MORE(n)            (0x6100u | ((n) & 0xFFu))
#define SW_TRIES_LEFT(n)      (0x63C0u | ((n) > 15 ? 15u : (n)))
#define SW_MEMORY_FAILURE     0x6581u
#define SW_WRONG_LENGTH       0x6700u
#define SW_SECURITY_STATUS    0x6982u
#define SW_AUTH_BLOCKED       0x6983u
#define SW_CONDITIONS         0x6985u
#define SW_WRONG_DATA         0x6A80u
#define SW_NOT_FOUND          0x6A82u
#define SW_NO_MEMORY          0x6A84u
#define SW_WRONG_P1P2         0x6A86u
#define SW_REF_NOT_FOUND      0x6A88u
#define SW_INS_UNSUPPORTED    0x6D00u
#define SW_CLA_UNSUPPORTED    0x6E00u
#define SW_UNKNOWN            0x6F00u

#define INS_VERIFY            0x20u
#define INS_GENERAL_AUTH      0x87u
#define INS_GET_RESPONSE      0xC0u

/* The session of one card (power on to power off). */
struct piv_applet {
	struct piv_data *d;
	piv_applet_save_fn save;
	void *save_user;
	char *save_error;

	/* Security status (SP 800-73-4 Part 2 §2.4). */
	gboolean pin_verified;
	gboolean pin_always_ok;    /* VERIFY was the command just before */
	gboolean mgmt_ok;

	/* Management-key GENERAL AUTHENTICATE in progress: the witness or
	 * challenge the card sent, valid for the next command only. */
	uint8_t witness[16];
	size_t witness_len;
	uint8_t challenge[16];
	size_t challenge_len;

	/* Command chaining: the data so far and the header it belongs to. */
	GByteArray *chain;
	uint8_t chain_ins, chain_p1, chain_p2;
	gboolean chaining;

	/* Response chaining: what GET RESPONSE still has to send. */
	GByteArray *pending;
	size_t pending_off;
	uint16_t pending_sw;
};

/* One command after chaining: header and the whole data field. */
struct cmd {
	uint8_t ins, p1, p2;
	const uint8_t *data;
	size_t nc;
};

struct tlv {
	uint32_t tag;
	const uint8_t *v;
	size_t len;
};

/* Reads one BER-TLV at *@p (tags of up to three bytes, definite lengths of
 * up to 0xFFFF) and advances *@p; FALSE if it does not fit before @end. */
gboolean piv_tlv_next(const uint8_t **p, const uint8_t *end, struct tlv *t);
/* The whole of @data is exactly one TLV with tag @tag. */
gboolean piv_tlv_single(const uint8_t *data, size_t len, uint32_t tag,
			struct tlv *t);
/* Appends a TLV (tags of up to three bytes). */
void piv_put_tlv(GByteArray *out, uint32_t tag, const uint8_t *v, size_t len);
void piv_put_tlv_byte(GByteArray *out, uint32_t tag, uint8_t b);

/* Hands the card's data to the store; FALSE (message kept) on failure. */
gboolean piv_applet_save(piv_applet *a);
/* Forgets a management-key witness or challenge in progress. */
void piv_applet_clear_mgmt_exchange(piv_applet *a);

/* Command handlers: the status word; response data goes to @out. */
uint16_t piv_cmd_general_auth(piv_applet *a, const struct cmd *c,
			      GByteArray *out);
uint16_t piv_cmd_generate(piv_applet *a, const struct cmd *c, GByteArray *out);
uint16_t piv_cmd_get_version(piv_applet *a, const struct cmd *c,
			     GByteArray *out);
uint16_t piv_cmd_get_serial(piv_applet *a, const struct cmd *c,
			    GByteArray *out);
uint16_t piv_cmd_get_metadata(piv_applet *a, const struct cmd *c,
			      GByteArray *out);
uint16_t piv_cmd_set_mgmt_key(piv_applet *a, const struct cmd *c,
			      GByteArray *out);
uint16_t piv_cmd_set_pin_retries(piv_applet *a, const struct cmd *c,
				 GByteArray *out);
uint16_t piv_cmd_reset(piv_applet *a, const struct cmd *c, GByteArray *out);
uint16_t piv_cmd_import_key(piv_applet *a, const struct cmd *c,
			    GByteArray *out);

G_END_DECLS

#endif /* CCID_EMU_PIV_APPLET_PRIVATE_H */
