/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The process-wide libcacard service (see ccid_cacard_service.h for why it
 * is process-wide and how it is meant to grow).
 */
#include "ccid_cacard_service.h"
#include "ccid_card_virtual.h"
#include "ccid_virtual_nssdb.h"

#include <string.h>

/* NSS headers: avoid prototypes.h redefining uint32 etc. */
#define NO_NSPR_10_SUPPORT
#include <nss.h>
#include <pk11pub.h>
#include <prerror.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct soft_reader {
	VReader *reader;     /* the service's own reference */
	gboolean in_use;
};

struct watch {
	ccid_cacard_service *svc;
	guint id;
	VReader *reader;
	GMainContext *ctx;
	ccid_cacard_event_fn fn;
	void *user;
};

struct ccid_cacard_service {
	char *nssdb_dir;               /* canonical; NULL = no soft readers */
	char **nicknames;
	char *hw_nssdb_dir;            /* canonical; NULL = no hw readers */
	/* NSS contexts opened before libcacard's own (see the header); they
	 * stay open for the process, like libcacard's. */
	NSSInitContext *soft_ctx;
	NSSInitContext *hw_ctx;
	struct soft_reader soft[CCID_CACARD_SOFT_READERS];
	/* Hardware readers borrowed (VReader * set) and the abandoned ones,
	 * which stay borrowed for good. */
	GHashTable *hw_in_use;
	GHashTable *abandoned;
	GThread *event_thread;
	/* Protects soft[].in_use, hw_in_use, abandoned, watches and
	 * next_watch_id. */
	GMutex lock;
	GHashTable *watches;           /* id -> struct watch */
	guint next_watch_id;
};

/* The one instance and the error of a failed vcard_emul_init(), which
 * cannot be retried in this process. */
static GMutex service_lock;
static ccid_cacard_service *service;
static char *service_fatal;

struct event_delivery {
	ccid_cacard_service *svc;
	guint watch_id;
	gboolean present;
};

static gboolean deliver_event(gpointer data)
{
	struct event_delivery *d = data;
	ccid_cacard_event_fn fn = NULL;
	void *user = NULL;
	struct watch *w;

	/* Checked on the owner thread, so an unwatch done there before this
	 * dispatch always wins. */
	g_mutex_lock(&d->svc->lock);
	w = g_hash_table_lookup(d->svc->watches, GUINT_TO_POINTER(d->watch_id));
	if (w != NULL) {
		fn = w->fn;
		user = w->user;
	}
	g_mutex_unlock(&d->svc->lock);
	if (fn != NULL)
		fn(user, d->present);
	return G_SOURCE_REMOVE;
}

static void forward_event(ccid_cacard_service *svc, VEvent *ev)
{
	gboolean present;
	GHashTableIter it;
	gpointer value;

	if (ev->type == VEVENT_CARD_INSERT)
		present = TRUE;
	else if (ev->type == VEVENT_CARD_REMOVE)
		present = FALSE;
	else
		return;   /* reader insert/remove: the pool is fixed */

	g_mutex_lock(&svc->lock);
	g_hash_table_iter_init(&it, svc->watches);
	while (g_hash_table_iter_next(&it, NULL, &value)) {
		struct watch *w = value;
		struct event_delivery *d;
		GSource *src;

		if (w->reader != ev->reader)
			continue;
		d = g_new(struct event_delivery, 1);
		d->svc = svc;
		d->watch_id = w->id;
		d->present = present;
		/* An explicit source, never g_main_context_invoke(): that
		 * would run the callback right here if this thread happened
		 * to be able to acquire the context. */
		src = g_idle_source_new();
		g_source_set_priority(src, G_PRIORITY_DEFAULT);
		g_source_set_callback(src, deliver_event, d, g_free);
		g_source_set_name(src, "ccid-emu cacard event");
		g_source_attach(src, w->ctx);
		g_source_unref(src);
	}
	g_mutex_unlock(&svc->lock);
}

static gpointer event_thread_main(gpointer data)
{
	ccid_cacard_service *svc = data;

	for (;;) {
		VEvent *ev = vevent_wait_next_vevent();

		if (ev == NULL)
			continue;
		forward_event(svc, ev);
		vevent_delete(ev);
	}
	return NULL;
}

static void watch_free(gpointer p)
{
	struct watch *w = p;

	/* Called with svc->lock held.  vreader_free() only takes the
	 * reader's own short-lived lock, never NSS's, but an abandoned
	 * reader is left alone entirely on principle. */
	if (!g_hash_table_contains(w->svc->abandoned, w->reader))
		vreader_free(w->reader);
	g_main_context_unref(w->ctx);
	g_free(w);
}

/* Builds libcacard's option string.  Its parser needs the path quoted and
 * cannot escape, so paths with '"' or newlines were refused earlier.
 * use_hw=removable, not =yes: see the header. */
static char *build_options(const char *dir, char *const *nicks,
			   const char *hw_dir)
{
	GString *s = g_string_new(NULL);

	g_string_append_printf(s, "db=\"sql:%s\" use_hw=%s",
			       dir != NULL ? dir : hw_dir,
			       hw_dir != NULL ? "removable" : "no");
	/* No hw_type=: CAC is libcacard's default, and its parser lets
	 * hw_type= swallow the rest of the string. */
	for (unsigned i = 0; dir != NULL && i < CCID_CACARD_SOFT_READERS; i++)
		g_string_append_printf(s, " soft=(," CCID_CACARD_SOFT_READER_PREFIX
				       "%u,CAC,,%s,%s,%s)", i, nicks[0],
				       nicks[1], nicks[2]);
	return g_string_free(s, FALSE);
}

static const char *nss_error_string(void)
{
	const char *s = PR_ErrorToString(PR_GetError(), PR_LANGUAGE_I_DEFAULT);

	return (s != NULL && s[0] != '\0') ? s : "unknown NSS error";
}

static gboolean check_path_usable(const char *dir, GError **error)
{
	if (strpbrk(dir, "\"\n") != NULL) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NO_DB,
			    "NSS database path %s contains '\"' or a newline, "
			    "which libcacard cannot be given", dir);
		return FALSE;
	}
	return TRUE;
}

static gboolean check_hw_db(const char *dir, GError **error)
{
	g_autofree char *certdb = g_build_filename(dir, "cert9.db", NULL);
	g_autofree char *moddb = g_build_filename(dir, "pkcs11.txt", NULL);

	if (!check_path_usable(dir, error))
		return FALSE;
	if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NO_DB,
			    "NSS database directory %s does not exist", dir);
		return FALSE;
	}
	if (!g_file_test(certdb, G_FILE_TEST_EXISTS) ||
	    !g_file_test(moddb, G_FILE_TEST_EXISTS)) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NO_DB,
			    "%s holds no NSS sql: database (cert9.db and "
			    "pkcs11.txt); create one with certutil -N -d sql:%s "
			    "and add the token's module with modutil -dbdir "
			    "sql:%s -add NAME -libfile MODULE.so", dir, dir, dir);
		return FALSE;
	}
	return TRUE;
}

/* Opens @dir as an extra NSS database of the process (see the header for
 * why, and in which order). */
static NSSInitContext *open_context(const char *dir, GError **error)
{
	g_autofree char *configdir = g_strconcat("sql:", dir, NULL);
	NSSInitContext *ctx = NSS_InitContext(configdir, "", "", "", NULL,
					      NSS_INIT_READONLY);

	if (ctx == NULL)
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NSS,
			    "cannot open NSS database %s: %s", dir,
			    nss_error_string());
	return ctx;
}

static gboolean nicknames_equal(char *const *a, const char *const *b)
{
	for (size_t i = 0; i < CCID_NSSDB_N_CERTS; i++)
		if (g_strcmp0(a[i], b[i]) != 0)
			return FALSE;
	return TRUE;
}

static gboolean service_compatible(const ccid_cacard_service *svc,
				   const char *dir,
				   const char *const *nicks,
				   const char *hw_dir, GError **error)
{
	if (hw_dir != NULL && svc->hw_nssdb_dir == NULL) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CONFLICT,
			    "libcacard was set up in this process without "
			    "hardware tokens (soft cards of %s only) and cannot "
			    "add the tokens of %s later: ask for both before "
			    "the first card", svc->nssdb_dir, hw_dir);
		return FALSE;
	}
	if (hw_dir != NULL && g_strcmp0(svc->hw_nssdb_dir, hw_dir) != 0) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CONFLICT,
			    "libcacard is already using the tokens of NSS "
			    "database %s in this process and cannot be "
			    "re-initialised for %s", svc->hw_nssdb_dir, hw_dir);
		return FALSE;
	}
	if (dir == NULL)
		return TRUE;
	if (svc->nssdb_dir == NULL) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CONFLICT,
			    "libcacard was set up in this process for the "
			    "hardware tokens of %s only and cannot add soft "
			    "cards of %s later: ask for both before the first "
			    "card", svc->hw_nssdb_dir, dir);
		return FALSE;
	}
	if (g_strcmp0(svc->nssdb_dir, dir) != 0) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CONFLICT,
			    "libcacard is already using NSS database %s in this "
			    "process and cannot be re-initialised for %s",
			    svc->nssdb_dir, dir);
		return FALSE;
	}
	if (nicks != NULL && !nicknames_equal(svc->nicknames, nicks)) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CONFLICT,
			    "libcacard is already set up with certificates "
			    "%s, %s, %s in this process", svc->nicknames[0],
			    svc->nicknames[1], svc->nicknames[2]);
		return FALSE;
	}
	return TRUE;
}

/*
 * Process exit with hardware readers: libcacard's NSS event threads (one
 * per PKCS#11 module, unjoinable, no way to stop them: SECMOD_CancelWait
 * only ends one wait and libcacard loops) keep polling the modules while
 * exit() runs the modules' static destructors (softhsm2 is C++).  Measured
 * on Debian 12: a process that exits right after init segfaults in 8 of 30
 * runs with soft+hardware readers, 1 of 30 with hardware readers only.
 * So once hardware readers exist, exit ends the process right after the
 * handlers registered later than this one (and stdio's flush) have run:
 * _exit() with exit()'s status, before any module destructor.  Handlers
 * registered before libcacard's init (and gcov/LSan at-exit work) are
 * skipped; valgrind is unaffected.
 */
static void exit_before_module_destructors(int status, void *arg)
{
	(void)arg;
	fflush(NULL);
	_exit(status);
}

/* Soft database first, so it is NSS's default one (nicknames resolve in
 * its internal key slot), then the hardware one, whose PKCS#11 modules NSS
 * loads.  Only needed when they differ: otherwise libcacard's own context
 * does both. */
static gboolean open_contexts(ccid_cacard_service *svc, GError **error)
{
	if (svc->nssdb_dir == NULL || svc->hw_nssdb_dir == NULL ||
	    strcmp(svc->nssdb_dir, svc->hw_nssdb_dir) == 0)
		return TRUE;
	svc->soft_ctx = open_context(svc->nssdb_dir, error);
	if (svc->soft_ctx == NULL)
		return FALSE;
	svc->hw_ctx = open_context(svc->hw_nssdb_dir, error);
	return svc->hw_ctx != NULL;
}

static void service_free_failed(ccid_cacard_service *svc)
{
	/* Only before vcard_emul_init(): nothing of libcacard's yet. */
	if (svc->hw_ctx != NULL)
		(void)NSS_ShutdownContext(svc->hw_ctx);
	if (svc->soft_ctx != NULL)
		(void)NSS_ShutdownContext(svc->soft_ctx);
	g_free(svc->nssdb_dir);
	g_free(svc->hw_nssdb_dir);
	g_strfreev(svc->nicknames);
	g_free(svc);
}

static ccid_cacard_service *service_init(const char *dir,
					 const char *const *wanted,
					 const char *hw_dir, GError **error)
{
	g_auto(GStrv) nicks = NULL;
	g_autofree char *opts_str = NULL;
	VCardEmulOptions *opts;
	VCardEmulError rc;
	ccid_cacard_service *svc;

	if (dir != NULL && !check_path_usable(dir, error))
		return NULL;
	if (hw_dir != NULL && !check_hw_db(hw_dir, error))
		return NULL;
	if (dir != NULL && !ccid_nssdb_resolve_certs(dir, wanted, &nicks, error))
		return NULL;

	svc = g_new0(ccid_cacard_service, 1);
	svc->nssdb_dir = g_strdup(dir);
	svc->nicknames = g_steal_pointer(&nicks);
	svc->hw_nssdb_dir = g_strdup(hw_dir);
	if (!open_contexts(svc, error)) {
		service_free_failed(svc);
		return NULL;
	}

	opts_str = build_options(dir, svc->nicknames, hw_dir);
	g_debug("vcard_emul_options: %s", opts_str);
	opts = vcard_emul_options(opts_str);
	if (opts == NULL) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_LIBCACARD,
			    "libcacard rejected its options: %s", opts_str);
		service_free_failed(svc);
		return NULL;
	}
	rc = vcard_emul_init(opts);
	if (rc != VCARD_EMUL_OK) {
		service_fatal = g_strdup_printf(
			"libcacard failed to initialise on NSS database %s "
			"(vcard_emul_init returned %d) and cannot be retried "
			"in this process", dir != NULL ? dir : hw_dir, (int)rc);
		g_set_error_literal(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_LIBCACARD,
				    service_fatal);
		/* The contexts stay: NSS may hold references from the
		 * failed init. */
		return NULL;
	}

	g_mutex_init(&svc->lock);
	svc->watches = g_hash_table_new_full(NULL, NULL, NULL, watch_free);
	svc->hw_in_use = g_hash_table_new(NULL, NULL);
	svc->abandoned = g_hash_table_new(NULL, NULL);
	svc->next_watch_id = 1;
	for (unsigned i = 0; dir != NULL && i < CCID_CACARD_SOFT_READERS; i++) {
		g_autofree char *name =
			g_strdup_printf(CCID_CACARD_SOFT_READER_PREFIX "%u", i);

		svc->soft[i].reader = vreader_get_reader_by_name(name);
		if (svc->soft[i].reader == NULL)
			g_debug("libcacard created no reader \"%s\"", name);
	}
	svc->event_thread = g_thread_new("ccid-cacard-events",
					 event_thread_main, svc);
	/* Registered after the modules loaded, so it runs before their
	 * destructors (exit handlers run in reverse order). */
	if (hw_dir != NULL)
		(void)on_exit(exit_before_module_destructors, NULL);
	return svc;
}

ccid_cacard_service *ccid_cacard_service_get(const struct ccid_cacard_config *cfg,
					     GError **error)
{
	g_autofree char *dir = NULL;
	g_autofree char *hw_dir = NULL;
	ccid_cacard_service *svc;

	g_return_val_if_fail(cfg != NULL, NULL);
	g_return_val_if_fail(cfg->nssdb_dir != NULL || cfg->hw_nssdb_dir != NULL,
			     NULL);

	/* Canonical, so the same DB reached two ways is one DB. */
	if (cfg->nssdb_dir != NULL)
		dir = g_canonicalize_filename(cfg->nssdb_dir, NULL);
	if (cfg->hw_nssdb_dir != NULL)
		hw_dir = g_canonicalize_filename(cfg->hw_nssdb_dir, NULL);

	g_mutex_lock(&service_lock);
	if (service_fatal != NULL) {
		g_set_error_literal(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_LIBCACARD,
				    service_fatal);
		svc = NULL;
	} else if (service != NULL) {
		svc = service_compatible(service, dir, cfg->soft_nicknames,
					 hw_dir, error) ? service : NULL;
	} else {
		svc = service = service_init(dir, cfg->soft_nicknames, hw_dir,
					     error);
	}
	g_mutex_unlock(&service_lock);
	return svc;
}

gboolean ccid_cacard_service_prepare(const struct ccid_cacard_config *cfg,
				     GError **error)
{
	return ccid_cacard_service_get(cfg, error) != NULL;
}

const char *ccid_cacard_service_hw_nssdb_dir(const ccid_cacard_service *svc)
{
	return svc->hw_nssdb_dir;
}

static gboolean is_soft_reader(const ccid_cacard_service *svc, VReader *r)
{
	for (unsigned i = 0; i < CCID_CACARD_SOFT_READERS; i++)
		if (svc->soft[i].reader == r)
			return TRUE;
	return g_str_has_prefix(vreader_get_name(r),
				CCID_CACARD_SOFT_READER_PREFIX);
}

/* libcacard's hardware readers, in its order (new references). */
static GPtrArray *hw_readers(ccid_cacard_service *svc)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(
		(GDestroyNotify)vreader_free);
	VReaderList *list = vreader_get_reader_list();

	for (VReaderListEntry *e = vreader_list_get_first(list); e != NULL;
	     e = vreader_list_get_next(e)) {
		VReader *r = vreader_list_get_reader(e);

		if (is_soft_reader(svc, r))
			vreader_free(r);
		else
			g_ptr_array_add(out, r);
	}
	vreader_list_delete(list);
	return out;
}

char **ccid_cacard_service_list_hw_readers(ccid_cacard_service *svc)
{
	g_autoptr(GPtrArray) readers = hw_readers(svc);
	g_autoptr(GStrvBuilder) b = g_strv_builder_new();

	for (guint i = 0; i < readers->len; i++)
		g_strv_builder_add(b, vreader_get_name(readers->pdata[i]));
	return g_strv_builder_end(b);
}

/* The reader of the PKCS#11 slot holding token @token (or named so). */
static VReader *find_token_reader(GPtrArray *readers, const char *token)
{
	PK11SlotInfo *slot = PK11_FindSlotByName(token);
	const char *slot_name;
	VReader *found = NULL;

	if (slot == NULL)
		return NULL;
	slot_name = PK11_GetSlotName(slot);
	for (guint i = 0; i < readers->len && found == NULL; i++)
		if (g_strcmp0(vreader_get_name(readers->pdata[i]), slot_name) == 0)
			found = readers->pdata[i];
	PK11_FreeSlot(slot);
	return found;
}

VReader *ccid_cacard_service_acquire_hw_reader(ccid_cacard_service *svc,
					       const char *token,
					       GError **error)
{
	g_autoptr(GPtrArray) readers = NULL;
	VReader *pick = NULL;

	if (svc->hw_nssdb_dir == NULL) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_CONFLICT,
			    "libcacard was set up in this process without "
			    "hardware tokens");
		return NULL;
	}
	readers = hw_readers(svc);
	if (token != NULL) {
		pick = find_token_reader(readers, token);
		if (pick == NULL) {
			g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_NO_CERT,
				    "no removable PKCS#11 slot of NSS database "
				    "%s holds a token (or is a slot) named "
				    "\"%s\"", svc->hw_nssdb_dir, token);
			return NULL;
		}
	}

	g_mutex_lock(&svc->lock);
	if (pick != NULL) {
		if (g_hash_table_contains(svc->hw_in_use, pick))
			pick = NULL;
	} else {
		/* Prefer a reader that holds a token; then any free one. */
		for (int pass = 0; pass < 2 && pick == NULL; pass++)
			for (guint i = 0; i < readers->len && pick == NULL; i++) {
				VReader *r = readers->pdata[i];

				if (g_hash_table_contains(svc->hw_in_use, r))
					continue;
				if (pass == 0 &&
				    vreader_card_is_present(r) != VREADER_OK)
					continue;
				pick = r;
			}
	}
	if (pick != NULL)
		g_hash_table_add(svc->hw_in_use, vreader_reference(pick));
	g_mutex_unlock(&svc->lock);

	if (pick == NULL) {
		if (readers->len == 0)
			g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_NO_CERT,
				    "NSS database %s loads no PKCS#11 module "
				    "with a removable slot (add one with modutil "
				    "-add; softhsm2 needs slots.removable = true "
				    "in its configuration)", svc->hw_nssdb_dir);
		else if (token != NULL)
			g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_BUSY,
				    "the reader of token \"%s\" is already in "
				    "use", token);
		else
			g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_BUSY,
				    "all %u token readers of this process are in "
				    "use", readers->len);
		return NULL;
	}
	return vreader_reference(pick);
}

void ccid_cacard_service_release_hw_reader(ccid_cacard_service *svc,
					   VReader *reader)
{
	if (reader == NULL)
		return;
	g_mutex_lock(&svc->lock);
	if (!g_hash_table_contains(svc->abandoned, reader) &&
	    g_hash_table_remove(svc->hw_in_use, reader))
		vreader_free(reader);   /* the set's reference */
	g_mutex_unlock(&svc->lock);
	vreader_free(reader);
}

void ccid_cacard_service_abandon_reader(ccid_cacard_service *svc,
					VReader *reader)
{
	if (reader == NULL)
		return;
	/* Both references (the set's and the caller's) are kept forever. */
	g_mutex_lock(&svc->lock);
	g_hash_table_add(svc->abandoned, reader);
	g_mutex_unlock(&svc->lock);
}

const char *ccid_cacard_service_nssdb_dir(const ccid_cacard_service *svc)
{
	return svc->nssdb_dir;
}

const char *const *ccid_cacard_service_nicknames(const ccid_cacard_service *svc)
{
	return (const char *const *)svc->nicknames;
}

VReader *ccid_cacard_service_acquire_reader(ccid_cacard_service *svc,
					    GError **error)
{
	VReader *r = NULL;

	g_mutex_lock(&svc->lock);
	for (unsigned i = 0; i < CCID_CACARD_SOFT_READERS; i++) {
		if (svc->soft[i].reader == NULL || svc->soft[i].in_use)
			continue;
		svc->soft[i].in_use = TRUE;
		r = vreader_reference(svc->soft[i].reader);
		break;
	}
	g_mutex_unlock(&svc->lock);
	if (r == NULL)
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_BUSY,
			    "all %u virtual CAC readers of this process are in "
			    "use", CCID_CACARD_SOFT_READERS);
	return r;
}

void ccid_cacard_service_release_reader(ccid_cacard_service *svc,
					VReader *reader)
{
	if (reader == NULL)
		return;
	if (vreader_card_is_present(reader) != VREADER_OK)
		(void)vcard_emul_force_card_insert(reader);
	(void)vreader_power_off(reader);

	g_mutex_lock(&svc->lock);
	for (unsigned i = 0; i < CCID_CACARD_SOFT_READERS; i++)
		if (svc->soft[i].reader == reader)
			svc->soft[i].in_use = FALSE;
	g_mutex_unlock(&svc->lock);
	vreader_free(reader);
}

guint ccid_cacard_service_watch(ccid_cacard_service *svc, VReader *reader,
				GMainContext *ctx, ccid_cacard_event_fn fn,
				void *user)
{
	struct watch *w = g_new0(struct watch, 1);

	w->svc = svc;
	w->reader = vreader_reference(reader);
	w->ctx = g_main_context_ref(ctx != NULL ? ctx :
				    g_main_context_default());
	w->fn = fn;
	w->user = user;
	g_mutex_lock(&svc->lock);
	w->id = svc->next_watch_id++;
	if (svc->next_watch_id == 0)
		svc->next_watch_id = 1;
	g_hash_table_insert(svc->watches, GUINT_TO_POINTER(w->id), w);
	g_mutex_unlock(&svc->lock);
	return w->id;
}

void ccid_cacard_service_unwatch(ccid_cacard_service *svc, guint id)
{
	g_mutex_lock(&svc->lock);
	g_hash_table_remove(svc->watches, GUINT_TO_POINTER(id));
	g_mutex_unlock(&svc->lock);
}
