/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The NSS database behind the virtual CAC card.
 *
 * The embedded default lives in g_get_user_data_dir()/ccid-emu/nssdb
 * (XDG_DATA_HOME is honoured).  It is generated on first use with
 * certutil(1): three self-signed certificates with RSA-2048 keys and an empty
 * database password.  Generation happens in a temporary sibling directory
 * that is renamed into place only when complete, so a crash never leaves
 * half a database and two processes racing to create it both end up using
 * one complete database.
 *
 * Nothing here keeps NSS initialised: inspection opens its own NSS context
 * and shuts it down again, because libcacard must be the one to open the
 * database for the card (see ccid_cacard_service.h).
 */
#ifndef CCID_EMU_VIRTUAL_NSSDB_H
#define CCID_EMU_VIRTUAL_NSSDB_H

#include <glib.h>

G_BEGIN_DECLS

#define CCID_NSSDB_N_CERTS 3u

/* Nicknames of the generated certificates, in CAC PKI applet order. */
#define CCID_NSSDB_NICK_ID   "ccid-emu-id"
#define CCID_NSSDB_NICK_SIGN "ccid-emu-sign"
#define CCID_NSSDB_NICK_ENC  "ccid-emu-enc"

/* g_get_user_data_dir()/ccid-emu/nssdb.  Free with g_free(). */
char *ccid_nssdb_default_dir(void);

/* Creates the embedded default database at @dir unless that directory
 * already exists.  *@created (may be NULL) tells whether this call made
 * it.  Fails when certutil is not installed or does not succeed. */
gboolean ccid_nssdb_ensure(const char *dir, gboolean *created, GError **error);

/* Opens the database at @dir read-only and resolves the three certificates
 * for the card.  If @wanted is non-NULL it names them (each must exist and
 * have a private key); otherwise the certificates that have private keys
 * are taken in nickname order, the first three.  On success @out_nicks
 * receives a NULL-terminated array of three nicknames (g_strfreev()). */
gboolean ccid_nssdb_resolve_certs(const char *dir,
				  const char *const *wanted,
				  char ***out_nicks, GError **error);

/* Whether @nick can be passed through libcacard's option string, whose
 * parser splits on ',' and ')' and strips leading blanks. */
gboolean ccid_nssdb_nickname_usable(const char *nick);

G_END_DECLS

#endif /* CCID_EMU_VIRTUAL_NSSDB_H */
