/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fixture of the nss card tests, built once per test program: a private
 * SOFTHSM2_CONF (removable slots, which libcacard needs) with token TOKEN
 * holding an RSA-2048 key and its self-signed certificate (openssl, then
 * softhsm2-util --import and pkcs11-tool --write-object), an NSS database
 * that loads libsofthsm2 (modutil -add), and a second NSS database with
 * three soft certificates c0, c1, c2 (certutil); optionally a third NSS
 * database loading the token through the p11_unplug.c wrapper.
 */
#ifndef CCID_TEST_NSS_FIXTURE_H
#define CCID_TEST_NSS_FIXTURE_H

#include <glib.h>

#define PIN "123456"
#define TOKEN "ccid-nss-test"
#define CACARD_ATR_LEN 15u

extern char *tmp_root;
extern char *hw_db;        /* NSS DB loading softhsm2 */
extern char *soft_db;      /* NSS DB with three soft certs c0..c2 */
extern GBytes *token_cert; /* DER of the token's certificate */
/* With CCID_P11_UNPLUG_LIB naming the p11_unplug.c module: an NSS DB
 * loading that wrapper of softhsm2 (same token), and its control file
 * (create it = token pulled out).  Both NULL without it. */
extern char *unplug_db;
extern char *unplug_file;
/* libcacard's CAC ATR (the same for soft and mirrored cards). */
extern const guint8 cacard_atr[CACARD_ATR_LEN];

/* Builds it and sets SOFTHSM2_CONF; FALSE (with a message on stderr) when
 * a tool is missing or fails: the caller skips (exit 77). */
gboolean nss_fixture_build(void);
void nss_fixture_remove(void);

#endif /* CCID_TEST_NSS_FIXTURE_H */
