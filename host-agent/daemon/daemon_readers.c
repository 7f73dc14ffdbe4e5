/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PC/SC reader discovery (see daemon_readers.h).
 *
 * Event-driven like the pcsc card's own monitor (pcsc_monitor.c): the
 * thread sleeps inside pcscd until a reader's state or the reader list
 * ("\\?PnP?\Notification") changes, or until free() cancels the call with
 * SCardCancel (the wait is bounded, READERS_WAIT_MS, for a cancel that
 * comes just before the call).  One change does not end the wait: a free
 * reader whose card a host application connects to exclusively (pcsc-lite
 * 1.9.9's SCardGetStatusChange, in winscard_clnt.c, raises
 * SCARD_STATE_CHANGED for EXCLUSIVE only when the caller last saw INUSE);
 * the states a timed-out wait leaves behind are therefore looked at too,
 * so such a hold shows within READERS_WAIT_MS.  Its end does end the
 * wait.  Contexts are made and released through
 * ccid_pcsc_client.h, the process's one lock for those calls.
 */
#include "daemon_readers.h"

#include <ccid_pcsc_client.h>
#include <string.h>
#include <winscard.h>
#include <reader.h>

#define PNP_READER "\\\\?PnP?\\Notification"
/* SCardCancel from free() can land just before the thread enters
 * SCardGetStatusChange; a bounded wait makes such a lost wake-up cost at
 * most this long.  It is also how soon an exclusive hold shows (above). */
#define READERS_WAIT_MS 1000u
/* More readers than this are not watched (pcscd's own limit is 16). */
#define READERS_MAX 32u

/* What the thread and the main context share. */
struct shared {
	gint ref;
	GMutex lock;
	GCond cond;
	gboolean stop;
	SCARDCONTEXT ctx;
	gboolean have_ctx;
	daemon_readers_fn changed;   /* main context only */
	void *user;
	GMainContext *main;
};

struct daemon_readers {
	struct shared *sh;
	GThread *thread;
};

static struct shared *shared_ref(struct shared *sh)
{
	g_atomic_int_inc(&sh->ref);
	return sh;
}

static void shared_unref(struct shared *sh)
{
	if (!g_atomic_int_dec_and_test(&sh->ref))
		return;
	g_mutex_clear(&sh->lock);
	g_cond_clear(&sh->cond);
	g_main_context_unref(sh->main);
	g_free(sh);
}

static void reader_free(gpointer p)
{
	struct daemon_reader *r = p;

	g_free(r->name);
	g_free(r->atr);
	g_free(r);
}

static gboolean stopping(struct shared *sh)
{
	gboolean stop;

	g_mutex_lock(&sh->lock);
	stop = sh->stop;
	g_mutex_unlock(&sh->lock);
	return stop;
}

/* Sleeps @ms or until free() asks the thread to stop. */
static void wait_or_stop(struct shared *sh, guint ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	g_mutex_lock(&sh->lock);
	while (!sh->stop && g_cond_wait_until(&sh->cond, &sh->lock, end))
		;
	g_mutex_unlock(&sh->lock);
}

/* --- posting to the main context ------------------------------------------ */

struct post {
	struct shared *sh;
	GPtrArray *readers;
};

static gboolean deliver(gpointer data)
{
	struct post *p = data;
	gboolean stop;

	g_mutex_lock(&p->sh->lock);
	stop = p->sh->stop;
	g_mutex_unlock(&p->sh->lock);
	/* free() runs on this context too: once it set stop, the user may
	 * be gone. */
	if (!stop)
		p->sh->changed(p->sh->user, p->readers);
	return G_SOURCE_REMOVE;
}

static void post_free(gpointer data)
{
	struct post *p = data;

	g_ptr_array_unref(p->readers);
	shared_unref(p->sh);
	g_free(p);
}

static void post(struct shared *sh, GPtrArray *readers)
{
	struct post *p = g_new0(struct post, 1);

	p->sh = shared_ref(sh);
	p->readers = g_ptr_array_ref(readers);
	g_main_context_invoke_full(sh->main, G_PRIORITY_DEFAULT, deliver, p,
				   post_free);
}

static gboolean same(const GPtrArray *a, const GPtrArray *b)
{
	if (a == NULL || a->len != b->len)
		return FALSE;
	for (guint i = 0; i < a->len; i++) {
		const struct daemon_reader *x = g_ptr_array_index(a, i);
		const struct daemon_reader *y = g_ptr_array_index(b, i);

		if (strcmp(x->name, y->name) != 0 || x->present != y->present ||
		    x->exclusive != y->exclusive || strcmp(x->atr, y->atr) != 0)
			return FALSE;
	}
	return TRUE;
}

/* --- the thread ------------------------------------------------------------ */

static char *atr_hex(const SCARD_READERSTATE *rs)
{
	GString *s = g_string_new(NULL);
	DWORD n = MIN(rs->cbAtr, (DWORD)sizeof(rs->rgbAtr));

	for (DWORD i = 0; i < n; i++)
		g_string_append_printf(s, "%02X", rs->rgbAtr[i]);
	return g_string_free(s, FALSE);
}

/* SCARD_ATTR_CHANNEL_ID of reader @name (a direct connection, which
 * needs no card and takes nothing from other users), or 0. */
static guint32 channel_id(SCARDCONTEXT ctx, const char *name)
{
	SCARDHANDLE h;
	DWORD proto = 0;
	unsigned char buf[8];
	DWORD len = sizeof(buf);
	guint32 id = 0;

	if (SCardConnect(ctx, name, SCARD_SHARE_DIRECT, 0, &h, &proto) !=
	    SCARD_S_SUCCESS)
		return 0;
	if (SCardGetAttrib(h, SCARD_ATTR_CHANNEL_ID, buf, &len) ==
	    SCARD_S_SUCCESS && len == 4)
		memcpy(&id, buf, sizeof(id));   /* a host-order DWORD */
	ccid_pcsc_card_disconnect(h, SCARD_LEAVE_CARD);
	return id;
}

/* The reader names now (a multi-string pcscd owns the bounds of), or
 * NULL with *@rv.  No reader is an empty list. */
static GPtrArray *list_readers(SCARDCONTEXT ctx, LONG *rv)
{
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	g_autofree char *buf = NULL;
	DWORD len = 0;

	*rv = SCardListReaders(ctx, NULL, NULL, &len);
	if (*rv == (LONG)SCARD_E_NO_READERS_AVAILABLE) {
		*rv = SCARD_S_SUCCESS;
		return names;
	}
	if (*rv != SCARD_S_SUCCESS || len == 0 || len > 65536) {
		g_ptr_array_unref(names);
		return NULL;
	}
	buf = g_malloc0(len + 1);
	*rv = SCardListReaders(ctx, NULL, buf, &len);
	if (*rv == (LONG)SCARD_E_NO_READERS_AVAILABLE) {
		*rv = SCARD_S_SUCCESS;
		return names;
	}
	if (*rv != SCARD_S_SUCCESS) {
		g_ptr_array_unref(names);
		return NULL;
	}
	/* buf[len] stays NUL whatever pcscd wrote. */
	for (DWORD off = 0; off < len && buf[off] != '\0' &&
	     names->len < READERS_MAX;) {
		gsize n = strnlen(buf + off, len - off);

		g_ptr_array_add(names, g_strndup(buf + off, n));
		off += (DWORD)n + 1;
	}
	return names;
}

static void drop_context(struct shared *sh)
{
	SCARDCONTEXT ctx;

	g_mutex_lock(&sh->lock);
	ctx = sh->ctx;
	sh->have_ctx = FALSE;
	g_mutex_unlock(&sh->lock);
	ccid_pcsc_context_release(ctx);
}

static gpointer readers_thread(gpointer data)
{
	struct shared *sh = data;
	g_autoptr(GPtrArray) last = NULL;
	/* Last event state of each reader, by name, and of the list. */
	g_autoptr(GHashTable) known = g_hash_table_new_full(g_str_hash,
		g_str_equal, g_free, NULL);
	DWORD pnp_state = SCARD_STATE_UNAWARE;
	/* Reader name -> its channel id + 1 (0: not asked yet). */
	g_autoptr(GHashTable) channels = g_hash_table_new_full(g_str_hash,
		g_str_equal, g_free, NULL);

	while (!stopping(sh)) {
		SCARD_READERSTATE rs[READERS_MAX + 1];
		g_autoptr(GPtrArray) names = NULL;
		g_autoptr(GPtrArray) now = NULL;
		SCARDCONTEXT ctx;
		LONG rv;
		guint n;

		g_mutex_lock(&sh->lock);
		if (!sh->have_ctx) {
			g_mutex_unlock(&sh->lock);
			rv = ccid_pcsc_context_establish(&ctx);
			g_mutex_lock(&sh->lock);
			if (rv == SCARD_S_SUCCESS) {
				sh->ctx = ctx;
				sh->have_ctx = TRUE;
			}
		}
		ctx = sh->ctx;
		rv = sh->have_ctx ? SCARD_S_SUCCESS : SCARD_E_NO_SERVICE;
		g_mutex_unlock(&sh->lock);
		if (rv == SCARD_S_SUCCESS)
			names = list_readers(ctx, &rv);
		if (names == NULL) {
			/* No pcscd (or it went away): no readers, for now. */
			if (rv != (LONG)SCARD_E_NO_SERVICE)
				g_debug("PC/SC readers: %s",
					pcsc_stringify_error(rv));
			if (sh->have_ctx)
				drop_context(sh);
			now = g_ptr_array_new_with_free_func(reader_free);
			if (!same(last, now)) {
				post(sh, now);
				g_clear_pointer(&last, g_ptr_array_unref);
				last = g_ptr_array_ref(now);
			}
			g_hash_table_remove_all(known);
			g_hash_table_remove_all(channels);
			pnp_state = SCARD_STATE_UNAWARE;
			wait_or_stop(sh, DAEMON_READERS_RETRY_MS);
			continue;
		}
		n = names->len;
		memset(rs, 0, sizeof(rs));
		for (guint i = 0; i < n; i++) {
			rs[i].szReader = g_ptr_array_index(names, i);
			rs[i].dwCurrentState = GPOINTER_TO_UINT(
				g_hash_table_lookup(known, rs[i].szReader));
		}
		rs[n].szReader = PNP_READER;
		rs[n].dwCurrentState = pnp_state;
		rv = SCardGetStatusChange(ctx, READERS_WAIT_MS, rs, n + 1);
		if (rv == (LONG)SCARD_E_CANCELLED)
			continue;    /* free() */
		if (rv != SCARD_S_SUCCESS && rv != (LONG)SCARD_E_TIMEOUT) {
			g_debug("PC/SC readers: SCardGetStatusChange: %s",
				pcsc_stringify_error(rv));
			drop_context(sh);
			wait_or_stop(sh, DAEMON_READERS_RETRY_MS);
			continue;
		}
		/* A timeout leaves each reader's state, not the list's. */
		if (rv == SCARD_S_SUCCESS)
			pnp_state = rs[n].dwEventState &
				    ~(DWORD)SCARD_STATE_CHANGED;
		g_hash_table_remove_all(known);
		now = g_ptr_array_new_with_free_func(reader_free);
		for (guint i = 0; i < n; i++) {
			struct daemon_reader *r = g_new0(struct daemon_reader, 1);
			DWORD ev = rs[i].dwEventState;

			g_hash_table_insert(known, g_strdup(rs[i].szReader),
				GUINT_TO_POINTER(ev & ~(DWORD)SCARD_STATE_CHANGED));
			/* A reader that left during the call: the next round
			 * lists readers again. */
			if (ev & (SCARD_STATE_UNKNOWN | SCARD_STATE_IGNORE)) {
				reader_free(r);
				continue;
			}
			r->name = g_strdup(rs[i].szReader);
			r->present = (ev & SCARD_STATE_PRESENT) != 0;
			r->exclusive = (ev & SCARD_STATE_EXCLUSIVE) != 0;
			r->atr = r->present ? atr_hex(&rs[i]) : g_strdup("");
			if (!g_hash_table_contains(channels, r->name))
				g_hash_table_insert(channels, g_strdup(r->name),
					GUINT_TO_POINTER(channel_id(ctx,
								    r->name) +
							 1u));
			r->channel_id = GPOINTER_TO_UINT(g_hash_table_lookup(
				channels, r->name)) - 1u;
			g_ptr_array_add(now, r);
		}
		/* A reader that left may come back at another address. */
		{
			GHashTableIter it;
			gpointer key;

			g_hash_table_iter_init(&it, channels);
			while (g_hash_table_iter_next(&it, &key, NULL))
				if (!g_hash_table_contains(known, key))
					g_hash_table_iter_remove(&it);
		}
		if (!same(last, now)) {
			post(sh, now);
			g_clear_pointer(&last, g_ptr_array_unref);
			last = g_ptr_array_ref(now);
		}
	}
	if (sh->have_ctx)
		drop_context(sh);
	shared_unref(sh);
	return NULL;
}

daemon_readers *daemon_readers_new(daemon_readers_fn changed, void *user)
{
	daemon_readers *r = g_new0(daemon_readers, 1);
	struct shared *sh = g_new0(struct shared, 1);

	sh->ref = 1;
	g_mutex_init(&sh->lock);
	g_cond_init(&sh->cond);
	sh->changed = changed;
	sh->user = user;
	sh->main = g_main_context_ref_thread_default();
	r->sh = sh;
	r->thread = g_thread_new("ccid-pcsc-readers", readers_thread,
				 shared_ref(sh));
	return r;
}

void daemon_readers_free(daemon_readers *r)
{
	if (r == NULL)
		return;
	g_mutex_lock(&r->sh->lock);
	r->sh->stop = TRUE;
	g_cond_broadcast(&r->sh->cond);
	/* Wakes the thread out of SCardGetStatusChange(INFINITE). */
	if (r->sh->have_ctx)
		SCardCancel(r->sh->ctx);
	g_mutex_unlock(&r->sh->lock);
	g_thread_join(r->thread);
	shared_unref(r->sh);
	g_free(r);
}
