/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The on-disk store of a virtual PIV card (see ccid_piv_store.h).
 */
#include "ccid_piv_crypto.h"
#include "ccid_piv_store.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

G_DEFINE_QUARK(ccid-piv-store-error-quark, ccid_piv_store_error)

#define STORE_FORMAT 1

char *ccid_piv_store_default_dir(void)
{
	return g_build_filename(g_get_user_data_dir(), "ccid-emu", "piv",
				"default", NULL);
}

static char *store_path(const char *dir)
{
	return g_build_filename(dir, CCID_PIV_STORE_FILE, NULL);
}

static const char *const policy_names[] = {
	[PIV_PIN_POLICY_DEFAULT] = "default",
	[PIV_PIN_POLICY_NEVER] = "never",
	[PIV_PIN_POLICY_ONCE] = "once",
	[PIV_PIN_POLICY_ALWAYS] = "always",
};

static const char *const origin_names[] = {
	[PIV_ORIGIN_NONE] = "none",
	[PIV_ORIGIN_GENERATED] = "generated",
	[PIV_ORIGIN_IMPORTED] = "imported",
};

static int name_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (g_strcmp0(names[i], s) == 0)
			return (int)i;
	return -1;
}

static uint8_t alg_by_name(const char *s)
{
	for (unsigned v = 1; v < 0x20; v++) {
		const char *n = piv_alg_name((uint8_t)v);

		if (n != NULL && g_strcmp0(n, s) == 0)
			return (uint8_t)v;
	}
	return 0;
}

static char *slot_group(const struct piv_slot_info *s)
{
	return g_strdup_printf("slot %02x", s->ref);
}

/* --- save ------------------------------------------------------------------- */

static void set_ref(GKeyFile *kf, const char *group, const uint8_t *v,
		    uint8_t max, uint8_t left)
{
	g_autofree char *hex = g_malloc(2 * PIV_PIN_LEN + 1);

	for (size_t i = 0; i < PIV_PIN_LEN; i++)
		g_snprintf(hex + 2 * i, 3, "%02x", v[i]);
	g_key_file_set_string(kf, group, "value", hex);
	g_key_file_set_integer(kf, group, "retries", max);
	g_key_file_set_integer(kf, group, "remaining", left);
}

static gboolean add_object(gpointer key, gpointer value, gpointer data)
{
	GKeyFile *kf = data;
	g_autofree char *name = g_strdup_printf("%X", GPOINTER_TO_UINT(key));
	gsize len;
	const guint8 *v = g_bytes_get_data(value, &len);
	g_autofree char *b64 = g_base64_encode(v, len);

	g_key_file_set_string(kf, "objects", name, b64);
	return FALSE;
}

static char *to_text(const struct piv_data *d, gsize *len, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autofree char *mgmt = g_malloc(2 * PIV_MAX_MGMT_KEY + 1);

	g_key_file_set_comment(kf, NULL, NULL,
			       " ccid-emu virtual PIV card (a test card: "
			       "PIN, PUK and keys in the clear)", NULL);
	g_key_file_set_integer(kf, "card", "format", STORE_FORMAT);
	g_key_file_set_uint64(kf, "card", "serial", d->serial);
	set_ref(kf, "pin", d->pin, d->pin_max, d->pin_left);
	set_ref(kf, "puk", d->puk, d->puk_max, d->puk_left);
	mgmt[0] = '\0';
	for (size_t i = 0; i < d->mgmt_len; i++)
		g_snprintf(mgmt + 2 * i, 3, "%02x", d->mgmt_key[i]);
	g_key_file_set_string(kf, "management-key", "algorithm",
			      piv_alg_name(d->mgmt_alg));
	g_key_file_set_string(kf, "management-key", "key", mgmt);
	g_key_file_set_comment(kf, "objects", NULL,
			       " data objects: tag = base64 value", NULL);
	g_tree_foreach(d->objects, add_object, kf);
	for (unsigned i = 0; i < PIV_N_SLOTS; i++) {
		const struct piv_slot_info *s = piv_slot_by_index(i);
		const struct piv_key *k = &d->keys[i];
		g_autofree char *group = NULL;
		g_autofree char *b64 = NULL;
		g_autoptr(GBytes) der = NULL;

		if (k->alg == 0)
			continue;
		der = piv_crypto_key_to_der(k->pkey);
		if (der == NULL) {
			g_set_error(error, CCID_PIV_STORE_ERROR,
				    CCID_PIV_STORE_ERROR_IO,
				    "cannot encode the key of slot %s",
				    s->name);
			return NULL;
		}
		group = slot_group(s);
		b64 = g_base64_encode(g_bytes_get_data(der, NULL),
				      g_bytes_get_size(der));
		g_key_file_set_string(kf, group, "algorithm",
				      piv_alg_name(k->alg));
		g_key_file_set_string(kf, group, "origin",
				      origin_names[k->origin]);
		g_key_file_set_string(kf, group, "pin-policy",
				      policy_names[k->pin_policy]);
		g_key_file_set_string(kf, group, "private-key", b64);
	}
	return g_key_file_to_data(kf, len, error);
}

static gboolean fsync_dir(const char *dir, GError **error)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int saved;

	if (fd < 0 || fsync(fd) != 0) {
		saved = errno;
		if (fd >= 0)
			close(fd);
		g_set_error(error, CCID_PIV_STORE_ERROR, CCID_PIV_STORE_ERROR_IO,
			    "cannot sync directory %s: %s", dir,
			    g_strerror(saved));
		return FALSE;
	}
	close(fd);
	return TRUE;
}

gboolean ccid_piv_store_save(const char *dir, const struct piv_data *d,
			     GError **error)
{
	g_autofree char *path = store_path(dir);
	g_autofree char *text = NULL;
	gsize len = 0;

	text = to_text(d, &len, error);
	if (text == NULL)
		return FALSE;
	/* CONSISTENT|DURABLE: temporary file, fsync, rename. */
	if (!g_file_set_contents_full(path, text, (gssize)len,
				      G_FILE_SET_CONTENTS_CONSISTENT |
				      G_FILE_SET_CONTENTS_DURABLE,
				      0600, error)) {
		g_prefix_error(error, "PIV card store: ");
		if (error != NULL && *error != NULL &&
		    (*error)->domain != CCID_PIV_STORE_ERROR) {
			(*error)->domain = CCID_PIV_STORE_ERROR;
			(*error)->code = CCID_PIV_STORE_ERROR_IO;
		}
		return FALSE;
	}
	explicit_bzero(text, len);
	/* The rename itself is durable only once the directory is. */
	return fsync_dir(dir, error);
}

/* --- load ------------------------------------------------------------------- */

static gboolean corrupt(GError **error, const char *path, const char *group,
			const char *key, const char *why)
{
	g_set_error(error, CCID_PIV_STORE_ERROR, CCID_PIV_STORE_ERROR_CORRUPT,
		    "%s: [%s] %s: %s (fix or remove the file; `ccid-agent piv "
		    "reset DIR` makes a new card)", path, group,
		    key != NULL ? key : "", why);
	return FALSE;
}

static gboolean get_hex(GKeyFile *kf, const char *path, const char *group,
			const char *key, uint8_t *out, size_t min, size_t max,
			size_t *len, GError **error)
{
	g_autofree char *s = g_key_file_get_string(kf, group, key, NULL);
	size_t n;

	if (s == NULL)
		return corrupt(error, path, group, key, "missing");
	n = strlen(s);
	if (n % 2 != 0 || n / 2 < min || n / 2 > max)
		return corrupt(error, path, group, key,
			       "wrong number of hex digits");
	for (size_t i = 0; i < n / 2; i++) {
		int hi = g_ascii_xdigit_value(s[2 * i]);
		int lo = g_ascii_xdigit_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return corrupt(error, path, group, key,
				       "not hexadecimal");
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return TRUE;
}

static gboolean get_count(GKeyFile *kf, const char *path, const char *group,
			  const char *key, uint8_t *out, GError **error)
{
	g_autoptr(GError) why = NULL;
	gint v = g_key_file_get_integer(kf, group, key, &why);

	if (why != NULL)
		return corrupt(error, path, group, key, why->message);
	if (v < 0 || v > 255)
		return corrupt(error, path, group, key, "not in 0..255");
	*out = (uint8_t)v;
	return TRUE;
}

static gboolean load_ref(GKeyFile *kf, const char *path, const char *group,
			 uint8_t *value, uint8_t *max, uint8_t *left,
			 GError **error)
{
	size_t len;

	if (!get_hex(kf, path, group, "value", value, PIV_PIN_LEN,
		     PIV_PIN_LEN, &len, error) ||
	    !get_count(kf, path, group, "retries", max, error) ||
	    !get_count(kf, path, group, "remaining", left, error))
		return FALSE;
	if (*max == 0 || *left > *max)
		return corrupt(error, path, group, "remaining",
			       "retries must be 1..255 and remaining at most "
			       "retries");
	return TRUE;
}

static gboolean load_objects(GKeyFile *kf, const char *path,
			     struct piv_data *d, GError **error)
{
	g_auto(GStrv) keys = NULL;

	if (!g_key_file_has_group(kf, "objects"))
		return TRUE;
	keys = g_key_file_get_keys(kf, "objects", NULL, NULL);
	for (guint i = 0; keys != NULL && keys[i] != NULL; i++) {
		g_autofree char *b64 = g_key_file_get_string(kf, "objects",
							     keys[i], NULL);
		char *end = NULL;
		guint64 tag = g_ascii_strtoull(keys[i], &end, 16);
		gsize len = 0;
		guchar *v;

		if (end == keys[i] || *end != '\0' || tag == 0 ||
		    tag > 0xFFFFFF)
			return corrupt(error, path, "objects", keys[i],
				       "not a data object tag in hex");
		v = g_base64_decode(b64 != NULL ? b64 : "", &len);
		if (len == 0 || len > PIV_MAX_OBJECT) {
			g_free(v);
			return corrupt(error, path, "objects", keys[i],
				       "empty, too large or not base64");
		}
		g_tree_insert(d->objects, GUINT_TO_POINTER((guint)tag),
			      g_bytes_new_take(v, len));
	}
	return TRUE;
}

static gboolean load_slot(GKeyFile *kf, const char *path, unsigned i,
			  struct piv_data *d, GError **error)
{
	const struct piv_slot_info *s = piv_slot_by_index(i);
	g_autofree char *group = slot_group(s);
	g_autofree char *alg = NULL, *origin = NULL, *policy = NULL, *b64 = NULL;
	g_autofree guchar *der = NULL;
	struct piv_key *k = &d->keys[i];
	gsize len = 0;
	int o, p;

	if (!g_key_file_has_group(kf, group))
		return TRUE;
	alg = g_key_file_get_string(kf, group, "algorithm", NULL);
	origin = g_key_file_get_string(kf, group, "origin", NULL);
	policy = g_key_file_get_string(kf, group, "pin-policy", NULL);
	b64 = g_key_file_get_string(kf, group, "private-key", NULL);
	k->alg = alg != NULL ? alg_by_name(alg) : 0;
	if (k->alg == 0 || piv_crypto_block_len(k->alg) != 0)
		return corrupt(error, path, group, "algorithm",
			       "not RSA1024, RSA2048, ECCP256 or ECCP384");
	o = name_index(origin_names, G_N_ELEMENTS(origin_names), origin);
	if (o <= PIV_ORIGIN_NONE)
		return corrupt(error, path, group, "origin",
			       "not generated or imported");
	p = name_index(policy_names, G_N_ELEMENTS(policy_names), policy);
	if (p <= PIV_PIN_POLICY_DEFAULT)
		return corrupt(error, path, group, "pin-policy",
			       "not never, once or always");
	k->origin = (enum piv_key_origin)o;
	k->pin_policy = (enum piv_pin_policy)p;
	der = g_base64_decode(b64 != NULL ? b64 : "", &len);
	k->pkey = len > 0 ? piv_crypto_key_from_der(der, len) : NULL;
	if (der != NULL)
		explicit_bzero(der, len);
	if (k->pkey == NULL || piv_crypto_key_alg(k->pkey) != k->alg) {
		k->alg = 0;
		return corrupt(error, path, group, "private-key",
			       "not a PKCS#8 key of that algorithm");
	}
	return TRUE;
}

struct piv_data *ccid_piv_store_load(const char *dir, GError **error)
{
	g_autofree char *path = store_path(dir);
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(piv_data) d = NULL;
	g_autoptr(GError) why = NULL;
	g_autofree char *alg = NULL;
	size_t len;
	guint64 v;

	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &why)) {
		if (g_error_matches(why, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			g_set_error(error, CCID_PIV_STORE_ERROR,
				    CCID_PIV_STORE_ERROR_MISSING,
				    "%s: no PIV card there (`ccid-agent piv "
				    "init %s` creates one)", path, dir);
		else
			g_set_error(error, CCID_PIV_STORE_ERROR,
				    why->domain == G_KEY_FILE_ERROR ?
					    CCID_PIV_STORE_ERROR_CORRUPT :
					    CCID_PIV_STORE_ERROR_IO,
				    "%s: %s", path, why->message);
		return NULL;
	}
	d = piv_data_new_default();
	v = g_key_file_get_uint64(kf, "card", "format", NULL);
	if (v != STORE_FORMAT)
		return corrupt(error, path, "card", "format",
			       "missing or not 1"), NULL;
	v = g_key_file_get_uint64(kf, "card", "serial", &why);
	if (why != NULL || v > G_MAXUINT32)
		return corrupt(error, path, "card", "serial",
			       "not a 32-bit number"), NULL;
	d->serial = (uint32_t)v;
	if (!load_ref(kf, path, "pin", d->pin, &d->pin_max, &d->pin_left,
		      error) ||
	    !load_ref(kf, path, "puk", d->puk, &d->puk_max, &d->puk_left,
		      error))
		return NULL;
	alg = g_key_file_get_string(kf, "management-key", "algorithm", NULL);
	d->mgmt_alg = alg != NULL ? alg_by_name(alg) : 0;
	if (piv_crypto_block_len(d->mgmt_alg) == 0)
		return corrupt(error, path, "management-key", "algorithm",
			       "not 3DES, AES128, AES192 or AES256"), NULL;
	memset(d->mgmt_key, 0, sizeof(d->mgmt_key));
	if (!get_hex(kf, path, "management-key", "key", d->mgmt_key,
		     piv_mgmt_key_len(d->mgmt_alg),
		     piv_mgmt_key_len(d->mgmt_alg), &len, error))
		return NULL;
	d->mgmt_len = len;
	if (!load_objects(kf, path, d, error))
		return NULL;
	for (unsigned i = 0; i < PIV_N_SLOTS; i++)
		if (!load_slot(kf, path, i, d, error))
			return NULL;
	return g_steal_pointer(&d);
}

gboolean ccid_piv_store_ensure(const char *dir, gboolean *created,
			       GError **error)
{
	g_autofree char *path = store_path(dir);
	g_autoptr(piv_data) d = NULL;

	if (created != NULL)
		*created = FALSE;
	if (g_mkdir_with_parents(dir, 0700) != 0) {
		int e = errno;

		g_set_error(error, CCID_PIV_STORE_ERROR, CCID_PIV_STORE_ERROR_IO,
			    "cannot create PIV card directory %s: %s", dir,
			    g_strerror(e));
		return FALSE;
	}
	if (g_file_test(path, G_FILE_TEST_EXISTS))
		return TRUE;
	d = piv_data_new_default();
	if (!ccid_piv_store_save(dir, d, error))
		return FALSE;
	if (created != NULL)
		*created = TRUE;
	return TRUE;
}

int ccid_piv_store_lock(const char *dir, GError **error)
{
	g_autofree char *path = g_build_filename(dir, "lock", NULL);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	int e;

	if (fd < 0) {
		e = errno;
		g_set_error(error, CCID_PIV_STORE_ERROR, CCID_PIV_STORE_ERROR_IO,
			    "cannot open %s: %s", path, g_strerror(e));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			g_set_error(error, CCID_PIV_STORE_ERROR,
				    CCID_PIV_STORE_ERROR_LOCKED,
				    "PIV card %s is in use by another process "
				    "(lock %s)", dir, path);
		else
			g_set_error(error, CCID_PIV_STORE_ERROR,
				    CCID_PIV_STORE_ERROR_IO,
				    "cannot lock %s: %s", path, g_strerror(e));
		return -1;
	}
	return fd;
}
