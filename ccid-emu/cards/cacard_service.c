/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The process-wide libcacard service (see ccid_cacard_service.h for why it
 * is process-wide and how it is meant to grow).
 */
#include "ccid_cacard_service.h"
#include "ccid_card_virtual.h"
#include "ccid_virtual_nssdb.h"

#include <string.h>

struct soft_reader {
	VReader *reader;     /* the service's own reference */
	gboolean in_use;
};

struct watch {
	guint id;
	VReader *reader;
	GMainContext *ctx;
	ccid_cacard_event_fn fn;
	void *user;
};

struct ccid_cacard_service {
	char *nssdb_dir;               /* canonical */
	char **nicknames;
	struct soft_reader soft[CCID_CACARD_SOFT_READERS];
	GThread *event_thread;
	/* Protects soft[].in_use, watches and next_watch_id. */
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

	vreader_free(w->reader);
	g_main_context_unref(w->ctx);
	g_free(w);
}

/* Builds libcacard's option string.  Its parser needs the path quoted and
 * cannot escape, so paths with '"' or newlines were refused earlier. */
static char *build_options(const char *dir, char *const *nicks)
{
	GString *s = g_string_new(NULL);

	g_string_append_printf(s, "db=\"sql:%s\" use_hw=no", dir);
	for (unsigned i = 0; i < CCID_CACARD_SOFT_READERS; i++)
		g_string_append_printf(s, " soft=(," CCID_CACARD_SOFT_READER_PREFIX
				       "%u,CAC,,%s,%s,%s)", i, nicks[0],
				       nicks[1], nicks[2]);
	return g_string_free(s, FALSE);
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
				   const char *const *nicks, GError **error)
{
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

static ccid_cacard_service *service_init(const char *dir,
					 const char *const *wanted,
					 GError **error)
{
	g_auto(GStrv) nicks = NULL;
	g_autofree char *opts_str = NULL;
	VCardEmulOptions *opts;
	VCardEmulError rc;
	ccid_cacard_service *svc;

	if (strpbrk(dir, "\"\n") != NULL) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NO_DB,
			    "NSS database path %s contains '\"' or a newline, "
			    "which libcacard cannot be given", dir);
		return NULL;
	}
	if (!ccid_nssdb_resolve_certs(dir, wanted, &nicks, error))
		return NULL;

	opts_str = build_options(dir, nicks);
	g_debug("vcard_emul_options: %s", opts_str);
	opts = vcard_emul_options(opts_str);
	if (opts == NULL) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_LIBCACARD,
			    "libcacard rejected its options: %s", opts_str);
		return NULL;
	}
	rc = vcard_emul_init(opts);
	if (rc != VCARD_EMUL_OK) {
		service_fatal = g_strdup_printf(
			"libcacard failed to initialise on NSS database %s "
			"(vcard_emul_init returned %d) and cannot be retried "
			"in this process", dir, (int)rc);
		g_set_error_literal(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_LIBCACARD,
				    service_fatal);
		return NULL;
	}

	svc = g_new0(ccid_cacard_service, 1);
	svc->nssdb_dir = g_strdup(dir);
	svc->nicknames = g_steal_pointer(&nicks);
	g_mutex_init(&svc->lock);
	svc->watches = g_hash_table_new_full(NULL, NULL, NULL, watch_free);
	svc->next_watch_id = 1;
	for (unsigned i = 0; i < CCID_CACARD_SOFT_READERS; i++) {
		g_autofree char *name =
			g_strdup_printf(CCID_CACARD_SOFT_READER_PREFIX "%u", i);

		svc->soft[i].reader = vreader_get_reader_by_name(name);
		if (svc->soft[i].reader == NULL)
			g_debug("libcacard created no reader \"%s\"", name);
	}
	svc->event_thread = g_thread_new("ccid-cacard-events",
					 event_thread_main, svc);
	return svc;
}

ccid_cacard_service *ccid_cacard_service_get(const struct ccid_cacard_config *cfg,
					     GError **error)
{
	g_autofree char *dir = NULL;
	ccid_cacard_service *svc;

	g_return_val_if_fail(cfg != NULL && cfg->nssdb_dir != NULL, NULL);

	/* Canonical, so the same DB reached two ways is one DB. */
	dir = g_canonicalize_filename(cfg->nssdb_dir, NULL);

	g_mutex_lock(&service_lock);
	if (service_fatal != NULL) {
		g_set_error_literal(error, CCID_CARD_VIRTUAL_ERROR,
				    CCID_CARD_VIRTUAL_ERROR_LIBCACARD,
				    service_fatal);
		svc = NULL;
	} else if (service != NULL) {
		svc = service_compatible(service, dir, cfg->soft_nicknames,
					 error) ? service : NULL;
	} else {
		svc = service = service_init(dir, cfg->soft_nicknames, error);
	}
	g_mutex_unlock(&service_lock);
	return svc;
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
