/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pcsc card's monitor thread: watches the chosen reader and pcscd's
 * reader list with SCardGetStatusChange(INFINITE) and posts every change
 * of what it sees to the owner (ccid_pcsc_post_state).
 *
 * Event-driven: the thread sleeps inside pcscd until the reader's state,
 * its event counter or the reader list changes, or until free() cancels
 * the call with SCardCancel.  The only timed wait is for a pcscd that is
 * not there at all: it is tried again every CCID_PCSC_SERVICE_RETRY_MS.
 *
 * While no reader matches, the thread waits on pcscd's "\\?PnP?\Notification"
 * pseudo reader alone and matches the pattern again whenever the reader
 * list changes, so a reader that is plugged back in (even under a new
 * index) is picked up again.
 */
#include "ccid_pcsc_private.h"

#include <string.h>

/* pcsc-lite's pseudo reader that changes when a reader comes or goes. */
#define PNP_READER "\\\\?PnP?\\Notification"

struct monitor {
	struct ccid_pcsc_shared *sh;
	SCARDCONTEXT ctx;
	gboolean have_ctx;
	char *reader;                 /* matched reader, or NULL */
	SCARD_READERSTATE rs;         /* the reader's state */
	SCARD_READERSTATE pnp;        /* the reader list's state */
	struct ccid_pcsc_state last;  /* last state posted */
	gboolean posted;
};

static gboolean stopping(struct ccid_pcsc_shared *sh)
{
	gboolean stop;

	g_mutex_lock(&sh->lock);
	stop = sh->stop;
	g_mutex_unlock(&sh->lock);
	return stop;
}

/* Sleeps @ms or until free() asks the thread to stop. */
static void wait_or_stop(struct ccid_pcsc_shared *sh, guint ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;

	g_mutex_lock(&sh->lock);
	while (!sh->stop && g_cond_wait_until(&sh->cond, &sh->lock, end))
		;
	g_mutex_unlock(&sh->lock);
}

static void post(struct monitor *m, struct ccid_pcsc_state *st)
{
	if (m->posted && ccid_pcsc_state_equal(&m->last, st)) {
		ccid_pcsc_state_clear(st);
		return;
	}
	ccid_pcsc_post_state(m->sh, st);
	ccid_pcsc_state_clear(&m->last);
	m->last = *st;                /* takes the strings */
	memset(st, 0, sizeof(*st));
	m->posted = TRUE;
}

static void set_reader(struct monitor *m, const char *name)
{
	g_free(m->reader);
	m->reader = g_strdup(name);
	g_mutex_lock(&m->sh->lock);
	g_free(m->sh->reader);
	m->sh->reader = g_strdup(name);
	g_mutex_unlock(&m->sh->lock);
	memset(&m->rs, 0, sizeof(m->rs));
	m->rs.szReader = m->reader;
	m->rs.dwCurrentState = SCARD_STATE_UNAWARE;
}

static void post_missing(struct monitor *m, gboolean service, char *detail)
{
	struct ccid_pcsc_state st = { 0 };

	st.service = service;
	st.detail = detail;
	post(m, &st);
}

static void drop_context(struct monitor *m, LONG why)
{
	set_reader(m, NULL);
	if (m->have_ctx) {
		g_mutex_lock(&m->sh->lock);
		m->sh->mon_ctx_set = FALSE;
		g_mutex_unlock(&m->sh->lock);
		(void)ccid_pcsc_context_release(m->ctx);
		m->have_ctx = FALSE;
	}
	post_missing(m, FALSE, g_strdup_printf("PC/SC service unavailable: "
					       "%s [0x%08lX]",
					       ccid_pcsc_strerror(why),
					       (unsigned long)why));
}

static gboolean ensure_context(struct monitor *m)
{
	LONG rv;

	if (m->have_ctx)
		return TRUE;
	rv = ccid_pcsc_context_establish(&m->ctx);
	if (rv != SCARD_S_SUCCESS) {
		drop_context(m, rv);
		return FALSE;
	}
	m->have_ctx = TRUE;
	memset(&m->pnp, 0, sizeof(m->pnp));
	m->pnp.szReader = PNP_READER;
	m->pnp.dwCurrentState = SCARD_STATE_UNAWARE;
	g_mutex_lock(&m->sh->lock);
	m->sh->mon_ctx = m->ctx;
	m->sh->mon_ctx_set = TRUE;
	g_mutex_unlock(&m->sh->lock);
	return TRUE;
}

/* Looks for the reader again; FALSE if pcscd failed. */
static gboolean match_reader(struct monitor *m)
{
	g_autofree char *list = NULL;
	g_autofree char *name = NULL;
	gsize len = 0;
	LONG rv;

	list = ccid_pcsc_list_readers(m->ctx, &len, &rv);
	if (list == NULL && rv != SCARD_E_NO_READERS_AVAILABLE) {
		drop_context(m, rv);
		return FALSE;
	}
	switch (ccid_pcsc_reader_match(list, len, m->sh->pattern, &name)) {
	case CCID_PCSC_MATCH_ONE:
		set_reader(m, name);
		break;
	case CCID_PCSC_MATCH_NONE:
		post_missing(m, TRUE, g_strdup_printf(
			"no reader matches '%s'", m->sh->pattern));
		break;
	case CCID_PCSC_MATCH_MANY:
		post_missing(m, TRUE, g_strdup_printf(
			"'%s' matches several readers", m->sh->pattern));
		break;
	}
	return TRUE;
}

static void post_reader_state(struct monitor *m)
{
	struct ccid_pcsc_state st = { 0 };
	DWORD ev = m->rs.dwEventState;

	st.service = TRUE;
	st.reader = g_strdup(m->reader);
	st.present = (ev & SCARD_STATE_PRESENT) != 0;
	st.mute = (ev & SCARD_STATE_MUTE) != 0;
	st.counter = (guint)(ev >> 16);
	if (st.present && m->rs.cbAtr <= sizeof(st.atr)) {
		memcpy(st.atr, m->rs.rgbAtr, m->rs.cbAtr);
		st.atr_len = m->rs.cbAtr;
	}
	post(m, &st);
}

static void reader_gone(struct monitor *m)
{
	g_autofree char *was = g_strdup(m->reader);

	set_reader(m, NULL);
	post_missing(m, TRUE, g_strdup_printf("reader '%s' disappeared", was));
}

/* One SCardGetStatusChange round. */
static void watch_once(struct monitor *m)
{
	SCARD_READERSTATE rs[2];
	DWORD n = 0;
	LONG rv;

	if (m->reader != NULL)
		rs[n++] = m->rs;
	rs[n++] = m->pnp;
	rv = SCardGetStatusChange(m->ctx, INFINITE, rs, n);
	switch (rv) {
	case SCARD_S_SUCCESS:
		break;
	case SCARD_E_TIMEOUT:
	case SCARD_E_CANCELLED:
		return;
	case SCARD_E_UNKNOWN_READER:
	case SCARD_E_READER_UNAVAILABLE:
		if (m->reader != NULL)
			reader_gone(m);
		return;
	default:
		drop_context(m, rv);
		return;
	}

	m->pnp.dwEventState = rs[n - 1].dwEventState;
	m->pnp.dwCurrentState = m->pnp.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
	if (m->reader == NULL)
		return;      /* the next round matches the pattern again */

	m->rs.dwEventState = rs[0].dwEventState;
	m->rs.cbAtr = rs[0].cbAtr;
	memcpy(m->rs.rgbAtr, rs[0].rgbAtr, sizeof(m->rs.rgbAtr));
	if (m->rs.dwEventState & (SCARD_STATE_UNKNOWN | SCARD_STATE_IGNORE)) {
		reader_gone(m);
		return;
	}
	/* pcsc-lite compares the whole word, event counter included. */
	m->rs.dwCurrentState = m->rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
	post_reader_state(m);
}

gpointer ccid_pcsc_monitor_run(gpointer data)
{
	struct monitor m = { .sh = data };

	while (!stopping(m.sh)) {
		if (!ensure_context(&m)) {
			wait_or_stop(m.sh, CCID_PCSC_SERVICE_RETRY_MS);
			continue;
		}
		if (m.reader == NULL && !match_reader(&m)) {
			wait_or_stop(m.sh, CCID_PCSC_SERVICE_RETRY_MS);
			continue;
		}
		watch_once(&m);
		if (!m.have_ctx)
			wait_or_stop(m.sh, CCID_PCSC_SERVICE_RETRY_MS);
	}

	g_mutex_lock(&m.sh->lock);
	m.sh->mon_ctx_set = FALSE;
	g_mutex_unlock(&m.sh->lock);
	if (m.have_ctx)
		(void)ccid_pcsc_context_release(m.ctx);
	ccid_pcsc_state_clear(&m.last);
	g_free(m.reader);

	g_mutex_lock(&m.sh->lock);
	m.sh->monitor_done = TRUE;
	g_cond_broadcast(&m.sh->cond);
	g_mutex_unlock(&m.sh->lock);
	ccid_pcsc_shared_unref(m.sh);
	return NULL;
}
