/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Creation and inspection of the NSS database behind the virtual card.
 */
#include "ccid_virtual_nssdb.h"
#include "ccid_card_virtual.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* NSS headers: avoid prototypes.h redefining uint32 etc. */
#define NO_NSPR_10_SUPPORT
#include <cert.h>
#include <keyhi.h>
#include <nss.h>
#include <pk11pub.h>
#include <prerror.h>

struct generated_cert {
	const char *nick;
	const char *subject;
	const char *key_usage;
	const char *ext_key_usage;
};

/* Order matters: it is the CAC PKI applet order (ID, signature, encryption). */
static const struct generated_cert generated_certs[CCID_NSSDB_N_CERTS] = {
	{ CCID_NSSDB_NICK_ID, "CN=ccid-emu virtual card ID,O=ccid-emu",
	  "digitalSignature", "clientAuth" },
	{ CCID_NSSDB_NICK_SIGN, "CN=ccid-emu virtual card signature,O=ccid-emu",
	  "digitalSignature,nonRepudiation", "emailProtection" },
	{ CCID_NSSDB_NICK_ENC, "CN=ccid-emu virtual card encryption,O=ccid-emu",
	  "keyEncipherment,dataEncipherment", "emailProtection" },
};

char *ccid_nssdb_default_dir(void)
{
	return g_build_filename(g_get_user_data_dir(), "ccid-emu", "nssdb", NULL);
}

gboolean ccid_nssdb_nickname_usable(const char *nick)
{
	if (nick == NULL || nick[0] == '\0' || g_ascii_isspace(nick[0]))
		return FALSE;
	return strpbrk(nick, ",)\"\n") == NULL && g_utf8_validate(nick, -1, NULL);
}

/* Removes a directory that only holds plain files (our temp DB). */
static void remove_flat_dir(const char *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	const char *name;

	if (d != NULL) {
		while ((name = g_dir_read_name(d)) != NULL) {
			g_autofree char *p = g_build_filename(dir, name, NULL);

			(void)g_unlink(p);
		}
	}
	(void)g_rmdir(dir);
}

static gboolean run_certutil(const char *certutil, const char *const *args,
			     GError **error)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	int status = 0;

	g_ptr_array_add(argv, (char *)certutil);
	for (size_t i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (char *)args[i]);
	g_ptr_array_add(argv, NULL);

	/* stdin is /dev/null (g_spawn_sync's default), so certutil can never
	 * sit waiting for a password or keyboard noise. */
	if (!g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT,
			  NULL, NULL, &out, &err, &status, error)) {
		g_prefix_error(error, "cannot run %s: ", certutil);
		return FALSE;
	}
	if (!g_spawn_check_wait_status(status, NULL)) {
		g_strstrip(err);
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CERTUTIL,
			    "certutil %s failed: %s", args[0],
			    err[0] ? err : "no message");
		return FALSE;
	}
	return TRUE;
}

static gboolean write_noise(const char *path, GError **error)
{
	guint8 noise[2048];
	size_t got = 0;

	/* certutil -S wants a noise file; the key itself comes from NSS's
	 * own RNG, this only stirs it. */
	while (got < sizeof(noise)) {
		ssize_t n = getrandom(noise + got, sizeof(noise) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_CREATE,
				    "getrandom failed: %s", g_strerror(errno));
			return FALSE;
		}
		got += (size_t)n;
	}
	return g_file_set_contents_full(path, (const char *)noise,
					sizeof(noise),
					G_FILE_SET_CONTENTS_NONE, 0600, error);
}

static gboolean populate_db(const char *certutil, const char *tmpdir,
			    GError **error)
{
	g_autofree char *dbarg = g_strconcat("sql:", tmpdir, NULL);
	g_autofree char *noise = g_build_filename(tmpdir, "noise.bin", NULL);
	const char *create[] = { "-N", "-d", dbarg, "--empty-password", NULL };

	if (!run_certutil(certutil, create, error))
		return FALSE;
	if (!write_noise(noise, error))
		return FALSE;

	for (size_t i = 0; i < G_N_ELEMENTS(generated_certs); i++) {
		const struct generated_cert *c = &generated_certs[i];
		/* Serial numbers only need to differ between the three. */
		g_autofree char *serial =
			g_strdup_printf("%u", g_random_int_range(1, G_MAXINT32));
		const char *make[] = {
			"-S", "-d", dbarg, "-n", c->nick, "-s", c->subject,
			"-x", "-t", "u,u,u", "-k", "rsa", "-g", "2048",
			"-Z", "SHA256", "-v", "120", "-m", serial, "-z", noise,
			"--keyUsage", c->key_usage,
			"--extKeyUsage", c->ext_key_usage, NULL
		};

		if (!run_certutil(certutil, make, error)) {
			g_prefix_error(error, "generating %s: ", c->nick);
			return FALSE;
		}
	}
	(void)g_unlink(noise);
	return TRUE;
}

gboolean ccid_nssdb_ensure(const char *dir, gboolean *created, GError **error)
{
	g_autofree char *parent = NULL;
	g_autofree char *tmpl = NULL;
	g_autofree char *certutil = NULL;

	if (created != NULL)
		*created = FALSE;
	if (g_file_test(dir, G_FILE_TEST_EXISTS))
		return TRUE;

	certutil = g_find_program_in_path("certutil");
	if (certutil == NULL) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NO_CERTUTIL,
			    "cannot create the virtual card's NSS database %s: "
			    "certutil not found in PATH (install libnss3-tools, "
			    "or use virtual:DIR with an existing NSS database)",
			    dir);
		return FALSE;
	}

	parent = g_path_get_dirname(dir);
	if (g_mkdir_with_parents(parent, 0700) != 0) {
		int e = errno;

		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CREATE,
			    "cannot create directory %s: %s", parent,
			    g_strerror(e));
		return FALSE;
	}
	tmpl = g_build_filename(parent, "nssdb.tmp-XXXXXX", NULL);
	if (g_mkdtemp_full(tmpl, 0700) == NULL) {
		int e = errno;

		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CREATE,
			    "cannot create a temporary directory in %s: %s",
			    parent, g_strerror(e));
		return FALSE;
	}

	if (!populate_db(certutil, tmpl, error)) {
		remove_flat_dir(tmpl);
		g_prefix_error(error, "cannot create the virtual card's NSS "
			       "database %s: ", dir);
		return FALSE;
	}

	if (g_rename(tmpl, dir) != 0) {
		int e = errno;

		remove_flat_dir(tmpl);
		/* Another process won the race: its database is complete
		 * too, because it was renamed into place the same way. */
		if (g_file_test(dir, G_FILE_TEST_IS_DIR))
			return TRUE;
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CREATE,
			    "cannot move the new NSS database into %s: %s",
			    dir, g_strerror(e));
		return FALSE;
	}
	if (created != NULL)
		*created = TRUE;
	return TRUE;
}

static gboolean check_db_dir(const char *dir, GError **error)
{
	g_autofree char *sqldb = NULL;

	if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NO_DB,
			    "NSS database directory %s does not exist", dir);
		return FALSE;
	}
	if (g_access(dir, R_OK | X_OK) != 0) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_UNREADABLE,
			    "NSS database directory %s is not readable: %s",
			    dir, g_strerror(errno));
		return FALSE;
	}
	sqldb = g_build_filename(dir, "cert9.db", NULL);
	if (!g_file_test(sqldb, G_FILE_TEST_EXISTS)) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NO_DB,
			    "%s holds no NSS database (no cert9.db; create one "
			    "with certutil -N -d sql:%s)", dir, dir);
		return FALSE;
	}
	if (g_access(sqldb, R_OK) != 0) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_UNREADABLE,
			    "NSS database %s is not readable: %s", sqldb,
			    g_strerror(errno));
		return FALSE;
	}
	return TRUE;
}

static const char *nss_error_string(void)
{
	const char *s = PR_ErrorToString(PR_GetError(), PR_LANGUAGE_I_DEFAULT);

	return (s != NULL && s[0] != '\0') ? s : "unknown NSS error";
}

static gboolean cert_has_key(CERTCertificate *cert)
{
	SECKEYPrivateKey *key = PK11_FindKeyByAnyCert(cert, NULL);

	if (key == NULL)
		return FALSE;
	SECKEY_DestroyPrivateKey(key);
	return TRUE;
}

/* Nicknames of the certificates in the internal token that have keys. */
static GPtrArray *list_keyed_nicknames(void)
{
	GPtrArray *nicks = g_ptr_array_new_with_free_func(g_free);
	PK11SlotInfo *slot = PK11_GetInternalKeySlot();
	CERTCertList *list;

	if (slot == NULL)
		return nicks;
	list = PK11_ListCertsInSlot(slot);
	PK11_FreeSlot(slot);
	if (list == NULL)
		return nicks;
	for (CERTCertListNode *n = CERT_LIST_HEAD(list);
	     !CERT_LIST_END(n, list); n = CERT_LIST_NEXT(n)) {
		const char *nick = n->cert->nickname;

		if (nick == NULL || !cert_has_key(n->cert))
			continue;
		/* A cert with several keys/entries can be listed twice. */
		if (!g_ptr_array_find_with_equal_func(nicks, nick, g_str_equal,
						      NULL))
			g_ptr_array_add(nicks, g_strdup(nick));
	}
	CERT_DestroyCertList(list);
	return nicks;
}

static gint cmp_strptr(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(char *const *)a, *(char *const *)b);
}

static gboolean resolve_in_context(const char *dir, const char *const *wanted,
				   char ***out_nicks, GError **error)
{
	g_autoptr(GPtrArray) keyed = NULL;
	g_autoptr(GStrvBuilder) b = g_strv_builder_new();

	if (wanted != NULL) {
		for (size_t i = 0; i < CCID_NSSDB_N_CERTS; i++) {
			CERTCertificate *cert;
			gboolean ok;

			if (wanted[i] == NULL) {
				g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
					    CCID_CARD_VIRTUAL_ERROR_TOO_FEW_CERTS,
					    "the virtual card needs 3 certificate "
					    "nicknames, %zu given", i);
				return FALSE;
			}
			if (!ccid_nssdb_nickname_usable(wanted[i])) {
				g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
					    CCID_CARD_VIRTUAL_ERROR_BAD_NICKNAME,
					    "certificate nickname \"%s\" cannot be "
					    "used: it must not be empty, start "
					    "with a blank or contain , ) \" or a "
					    "newline", wanted[i]);
				return FALSE;
			}
			cert = PK11_FindCertFromNickname(wanted[i], NULL);
			if (cert == NULL) {
				g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
					    CCID_CARD_VIRTUAL_ERROR_NO_CERT,
					    "NSS database %s has no certificate "
					    "named \"%s\"", dir, wanted[i]);
				return FALSE;
			}
			ok = cert_has_key(cert);
			CERT_DestroyCertificate(cert);
			if (!ok) {
				g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
					    CCID_CARD_VIRTUAL_ERROR_NO_CERT,
					    "certificate \"%s\" in NSS database "
					    "%s has no private key", wanted[i],
					    dir);
				return FALSE;
			}
			g_strv_builder_add(b, wanted[i]);
		}
		*out_nicks = g_strv_builder_end(b);
		return TRUE;
	}

	keyed = list_keyed_nicknames();
	g_ptr_array_sort(keyed, cmp_strptr);
	if (keyed->len < CCID_NSSDB_N_CERTS) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_TOO_FEW_CERTS,
			    "NSS database %s has %u certificate%s with a private "
			    "key; the virtual CAC card needs 3", dir, keyed->len,
			    keyed->len == 1 ? "" : "s");
		return FALSE;
	}
	for (size_t i = 0; i < CCID_NSSDB_N_CERTS; i++) {
		const char *nick = g_ptr_array_index(keyed, i);

		if (!ccid_nssdb_nickname_usable(nick)) {
			g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_BAD_NICKNAME,
				    "certificate nickname \"%s\" in %s cannot "
				    "be passed to libcacard (contains , ) \" "
				    "or a newline, or starts with a blank); "
				    "name the certificates explicitly", nick,
				    dir);
			return FALSE;
		}
		g_strv_builder_add(b, nick);
	}
	*out_nicks = g_strv_builder_end(b);
	return TRUE;
}

gboolean ccid_nssdb_resolve_certs(const char *dir, const char *const *wanted,
				  char ***out_nicks, GError **error)
{
	g_autofree char *configdir = NULL;
	NSSInitContext *ctx;
	gboolean ok;

	if (!check_db_dir(dir, error))
		return FALSE;

	configdir = g_strconcat("sql:", dir, NULL);
	ctx = NSS_InitContext(configdir, "", "", "", NULL,
			      NSS_INIT_READONLY | NSS_INIT_NOROOTINIT |
			      NSS_INIT_NOMODDB);
	if (ctx == NULL) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NSS,
			    "cannot open NSS database %s: %s", dir,
			    nss_error_string());
		return FALSE;
	}
	ok = resolve_in_context(dir, wanted, out_nicks, error);
	if (NSS_ShutdownContext(ctx) != SECSuccess)
		g_debug("NSS_ShutdownContext(%s) failed: %s", dir,
			nss_error_string());
	return ok;
}
