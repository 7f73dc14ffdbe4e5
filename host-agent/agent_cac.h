/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A minimal CAC (GSC-IS 2.1 / CACv2) client: SELECT an applet, read a PKI
 * applet's certificate with READ BUFFER, and run the raw RSA operation of
 * SIGN/DECRYPT.  It sees the card only through an APDU exchange function,
 * so it runs over a CCID device exactly as middleware would.
 */
#ifndef CCID_AGENT_CAC_H
#define CCID_AGENT_CAC_H

#include <glib.h>

G_BEGIN_DECLS

#define AGENT_CAC_ERROR (agent_cac_error_quark())
GQuark agent_cac_error_quark(void);

enum agent_cac_error {
	AGENT_CAC_ERROR_SW,        /* the card answered an unexpected SW */
	AGENT_CAC_ERROR_FORMAT,    /* a buffer did not parse */
};

/* Exchanges one APDU; @resp receives data + SW1 SW2. */
typedef gboolean (*agent_apdu_fn)(void *user, const guint8 *apdu, gsize len,
				  GByteArray *resp, GError **error);

struct agent_cac {
	agent_apdu_fn xfer;
	void *user;
	guint n_apdus;             /* APDUs exchanged so far */
};

#define AGENT_CAC_N_PKI 3u
#define AGENT_CAC_AID_LEN 7u

/* AID of PKI applet @index (0..2): A0 00 00 00 79 01 0n. */
void agent_cac_pki_aid(guint index, guint8 aid[AGENT_CAC_AID_LEN]);
/* The CAC Card Capability Container applet, A0 00 00 01 16 DB 00. */
extern const guint8 agent_cac_ccc_aid[AGENT_CAC_AID_LEN];

/* Sends @apdu and follows 61 xx with GET RESPONSE; returns the whole data
 * and the final status word. */
gboolean agent_cac_transmit(struct agent_cac *cac, const guint8 *apdu,
			    gsize len, GByteArray *data, guint16 *sw,
			    GError **error);

/* SELECT by AID; fails unless the final SW is 90 00. */
gboolean agent_cac_select(struct agent_cac *cac, const guint8 *aid,
			  gsize aid_len, GError **error);

/* Selects PKI applet @index and returns its certificate (DER). */
GBytes *agent_cac_read_cert(struct agent_cac *cac, guint index,
			    GError **error);

/* Selects PKI applet @index and applies its private key to @block (the
 * key's modulus length, e.g. a PKCS#1 v1.5 padded digest) with CAC
 * SIGN/DECRYPT (80 42), as one extended APDU. */
GBytes *agent_cac_sign(struct agent_cac *cac, guint index,
		       const guint8 *block, gsize len, GError **error);

/* Subject DN of a DER certificate, using NSS (which must be initialised,
 * as it is once the virtual card exists).  Free with g_free(). */
char *agent_cert_subject(GBytes *der, GError **error);

G_END_DECLS

#endif /* CCID_AGENT_CAC_H */
