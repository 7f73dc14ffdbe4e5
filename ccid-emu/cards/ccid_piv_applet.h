/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PIV application of the virtual PIV card: one command APDU in, one
 * response APDU out, synchronously.  It holds the session state (security
 * status, chaining, pending response) and works on a struct piv_data whose
 * every change it hands to a save callback *before* it answers, so a
 * retry counter on disk is never behind what the host was told.
 *
 * Commands (SP 800-73-4 Part 2 §3, ISO/IEC 7816-4 status words):
 *
 *   00 A4 04 00  SELECT the PIV AID (a right-truncated AID of at least
 *                A0 00 00 03 08 matches): application property template
 *   00 CB 3F FF  GET DATA      5C tag -> 53 value (7E for discovery)
 *   00 DB 3F FF  PUT DATA      5C tag 53 value (or 7E ...); management key
 *   00 20 00|FF 80  VERIFY     PIN; empty data = status (9000 / 63Cx /
 *                6983); P1 FF = forget the verification
 *   00 24 00 80|81  CHANGE REFERENCE DATA of the PIN or PUK
 *   00 2C 00 80  RESET RETRY COUNTER (PUK + new PIN)
 *   00 87 alg ref  GENERAL AUTHENTICATE: 9B management key (witness,
 *                challenge and mutual authentication, 3DES/AES), key slots
 *                (RSA raw operation, ECDSA, ECDH)
 *   00 47 00 ref GENERATE ASYMMETRIC KEY PAIR; management key
 *   00 C0 00 00  GET RESPONSE (after 61xx)
 *
 * Yubico extensions (what yubico-piv-tool uses):
 *
 *   00 FD        GET VERSION -> 3 bytes (reported: 5.4.3)
 *   00 F8        GET SERIAL -> 4 bytes big-endian
 *   00 F7 00 ref GET METADATA of the PIN, PUK, management key or a slot
 *   00 FF FF FF|FE  SET MANAGEMENT KEY: alg 9B len key; management key
 *   00 FA n m    SET PIN RETRIES (PIN/PUK reset to defaults); management
 *                key and PIN
 *   00 FB        RESET the card to defaults, only when PIN and PUK are
 *                both blocked
 *   00 FE alg ref  IMPORT KEY (RSA CRT parameters or an ECC scalar);
 *                management key
 *
 * Command chaining (CLA 10) accumulates up to PIV_APPLET_MAX_CHAIN bytes;
 * a response longer than Ne is sent in parts with 61xx and GET RESPONSE.
 * A command without Le is answered as if Le were 00 (256, or 65536 for an
 * extended APDU), as T=1 cards do.
 */
#ifndef CCID_EMU_PIV_APPLET_H
#define CCID_EMU_PIV_APPLET_H

#include "ccid_piv_data.h"

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

#define PIV_APPLET_MAX_CHAIN 65536u
/* The version GET VERSION reports. */
#define PIV_APPLET_VERSION_MAJOR 5u
#define PIV_APPLET_VERSION_MINOR 4u
#define PIV_APPLET_VERSION_PATCH 3u

/* Persists @data; FALSE (with @error set) when it could not.  The applet
 * then answers 65 81 (memory failure). */
typedef gboolean (*piv_applet_save_fn)(void *user, const struct piv_data *data,
				       GError **error);

typedef struct piv_applet piv_applet;

/* Takes ownership of @data. */
piv_applet *piv_applet_new(struct piv_data *data, piv_applet_save_fn save,
			   void *save_user);
/* Accepts NULL. */
void piv_applet_free(piv_applet *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(piv_applet, piv_applet_free)

/* Power-on / reset: forgets every security status, chain and pending
 * response. */
void piv_applet_reset(piv_applet *a);

/* Processes one command APDU of @len bytes and writes the response APDU
 * (data + SW1 SW2) to @resp, which holds at least PIV_APPLET_RESP_CAP
 * bytes.  Returns the response length (always >= 2). */
#define PIV_APPLET_RESP_CAP 65538u
size_t piv_applet_process(piv_applet *a, const uint8_t *apdu, size_t len,
			  uint8_t *resp);

const struct piv_data *piv_applet_get_data(const piv_applet *a);
/* The message of the last failed save, or NULL; cleared by the next
 * successful one. */
const char *piv_applet_last_save_error(const piv_applet *a);

G_END_DECLS

#endif /* CCID_EMU_PIV_APPLET_H */
