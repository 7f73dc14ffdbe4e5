/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pcsc card backend, owner side: struct ccid_card_ops, the card state
 * the slot sees, the lock timeout, and the messages the monitor and worker
 * threads post (see ccid_pcsc_private.h for who does what).
 *
 * Power: a guest power-on answers with the ATR pcscd reported for the
 * card, without touching the card (it is shared; resetting it would break
 * the other applications' sessions).  The connection is made by the first
 * APDU; power-off disconnects, leaving the card as it is.
 */
#include "ccid_pcsc_private.h"

#include <stdarg.h>
#include <string.h>

struct ccid_card_pcsc {
	ccid_slot *slot;              /* NULL once detached */
	struct ccid_pcsc_shared *sh;
	GThread *monitor, *worker;
	guint lock_timeout_ms;
	ccid_card_pcsc_event_fn event;
	void *event_user;

	struct ccid_pcsc_state state; /* the monitor's latest report */
	char *reader;                 /* last reader matched */
	gboolean powered;
	guint64 next_gen;
	guint64 op_gen;               /* XFR in flight; 0 = none */
	GSource *lock_timer;
	struct ccid_card_pcsc_stats stats;
};

/* --- shared state ------------------------------------------------------------ */

struct ccid_pcsc_shared *ccid_pcsc_shared_ref(struct ccid_pcsc_shared *sh)
{
	g_atomic_ref_count_inc(&sh->ref);
	return sh;
}

static void job_free(gpointer p)
{
	struct ccid_pcsc_job *job = p;

	g_free(job->apdu);
	g_free(job);
}

void ccid_pcsc_shared_unref(struct ccid_pcsc_shared *sh)
{
	if (sh == NULL || !g_atomic_ref_count_dec(&sh->ref))
		return;
	g_queue_clear_full(&sh->jobs, job_free);
	g_free(sh->reader);
	g_free(sh->pattern);
	g_mutex_clear(&sh->lock);
	g_cond_clear(&sh->cond);
	g_main_context_unref(sh->ctx);
	g_free(sh);
}

void ccid_pcsc_state_clear(struct ccid_pcsc_state *st)
{
	g_clear_pointer(&st->reader, g_free);
	g_clear_pointer(&st->detail, g_free);
}

void ccid_pcsc_state_copy(struct ccid_pcsc_state *dst,
			  const struct ccid_pcsc_state *src)
{
	*dst = *src;
	dst->reader = g_strdup(src->reader);
	dst->detail = g_strdup(src->detail);
}

gboolean ccid_pcsc_state_equal(const struct ccid_pcsc_state *a,
			       const struct ccid_pcsc_state *b)
{
	return a->service == b->service && a->present == b->present &&
	       a->mute == b->mute && a->counter == b->counter &&
	       a->atr_len == b->atr_len &&
	       memcmp(a->atr, b->atr, a->atr_len) == 0 &&
	       g_strcmp0(a->reader, b->reader) == 0 &&
	       g_strcmp0(a->detail, b->detail) == 0;
}

/* Same card as before: inserted both times, same insertion (pcsc-lite's
 * event counter), same ATR, same reader. */
static gboolean same_card(const struct ccid_pcsc_state *a,
			  const struct ccid_pcsc_state *b)
{
	return a->present && b->present && a->counter == b->counter &&
	       a->atr_len == b->atr_len &&
	       memcmp(a->atr, b->atr, a->atr_len) == 0 &&
	       g_strcmp0(a->reader, b->reader) == 0;
}

/* --- posting to the owner ------------------------------------------------------ */

struct state_msg {
	struct ccid_pcsc_shared *sh;
	struct ccid_pcsc_state st;
};

struct result_msg {
	struct ccid_pcsc_shared *sh;
	struct ccid_pcsc_result res;
};

/*
 * An explicit source, never g_main_context_invoke(): invoke runs the
 * function at once in the calling thread when nobody owns the context at
 * that moment, and the slot must only ever be touched by its owner.
 */
static void post(struct ccid_pcsc_shared *sh, GSourceFunc fn, gpointer msg,
		 GDestroyNotify free_fn)
{
	GSource *src = g_idle_source_new();

	g_source_set_priority(src, G_PRIORITY_DEFAULT);
	g_source_set_callback(src, fn, msg, free_fn);
	g_source_set_name(src, "ccid-emu pcsc card");
	g_source_attach(src, sh->ctx);
	g_source_unref(src);
}

static void state_msg_free(gpointer p)
{
	struct state_msg *m = p;

	ccid_pcsc_state_clear(&m->st);
	ccid_pcsc_shared_unref(m->sh);
	g_free(m);
}

static void result_msg_free(gpointer p)
{
	struct result_msg *m = p;

	g_free(m->res.resp);
	g_free(m->res.why);
	ccid_pcsc_shared_unref(m->sh);
	g_free(m);
}

static gboolean on_state(gpointer data);
static gboolean on_result(gpointer data);

void ccid_pcsc_post_state(struct ccid_pcsc_shared *sh,
			  const struct ccid_pcsc_state *st)
{
	struct state_msg *m = g_new0(struct state_msg, 1);

	m->sh = ccid_pcsc_shared_ref(sh);
	ccid_pcsc_state_copy(&m->st, st);
	post(sh, on_state, m, state_msg_free);
}

void ccid_pcsc_post_result(struct ccid_pcsc_shared *sh,
			   struct ccid_pcsc_result *res)
{
	struct result_msg *m = g_new0(struct result_msg, 1);

	m->sh = ccid_pcsc_shared_ref(sh);
	m->res = *res;                /* takes resp and why */
	memset(res, 0, sizeof(*res));
	post(sh, on_result, m, result_msg_free);
}

/* --- owner side ------------------------------------------------------------------ */

static void emit(ccid_card_pcsc *card, enum ccid_card_pcsc_event ev,
		 const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void emit(ccid_card_pcsc *card, enum ccid_card_pcsc_event ev,
		 const char *fmt, ...)
{
	g_autofree char *detail = NULL;
	va_list ap;

	va_start(ap, fmt);
	detail = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_debug("pcsc card: %s", detail);
	if (card->event != NULL)
		card->event(card->event_user, ev, detail);
}

static void queue_job(ccid_card_pcsc *card, enum ccid_pcsc_job_kind kind,
		      guint64 gen, const uint8_t *apdu, size_t len)
{
	struct ccid_pcsc_job *job = g_new0(struct ccid_pcsc_job, 1);
	struct ccid_pcsc_shared *sh = card->sh;

	job->kind = kind;
	job->gen = gen;
	if (apdu != NULL) {
		job->apdu = g_malloc(len);
		memcpy(job->apdu, apdu, len);
		job->len = len;
	}
	g_mutex_lock(&sh->lock);
	if (kind == CCID_PCSC_JOB_XFR) {
		sh->live_gen = gen;
		sh->acquired_gen = 0;
	}
	g_queue_push_tail(&sh->jobs, job);
	g_cond_broadcast(&sh->cond);
	g_mutex_unlock(&sh->lock);
}

static void stop_lock_timer(ccid_card_pcsc *card)
{
	if (card->lock_timer != NULL) {
		g_source_destroy(card->lock_timer);
		g_source_unref(card->lock_timer);
		card->lock_timer = NULL;
	}
}

/* Forget the XFR in flight: no completion for it will reach the slot. */
static void withdraw(ccid_card_pcsc *card)
{
	struct ccid_pcsc_shared *sh = card->sh;

	stop_lock_timer(card);
	card->op_gen = 0;
	g_mutex_lock(&sh->lock);
	sh->live_gen = 0;
	g_cond_broadcast(&sh->cond);
	g_mutex_unlock(&sh->lock);
}

static gboolean on_lock_timeout(gpointer data)
{
	ccid_card_pcsc *card = data;
	struct ccid_pcsc_shared *sh = card->sh;
	gboolean transmitting;

	g_source_unref(card->lock_timer);
	card->lock_timer = NULL;
	if (card->op_gen == 0)
		return G_SOURCE_REMOVE;
	/* Decide and withdraw under one lock: the worker claims the APDU
	 * under the same lock just before it transmits. */
	g_mutex_lock(&sh->lock);
	transmitting = sh->acquired_gen == card->op_gen;
	if (!transmitting) {
		sh->live_gen = 0;
		g_cond_broadcast(&sh->cond);
	}
	g_mutex_unlock(&sh->lock);
	/* The card has the APDU: however long it takes now is the card's
	 * business, and the reader's own timeouts apply. */
	if (transmitting)
		return G_SOURCE_REMOVE;

	card->op_gen = 0;
	card->stats.lock_timeouts++;
	emit(card, CCID_CARD_PCSC_EVENT_LOCK_TIMEOUT,
	     "another application kept the card for more than %u ms; the "
	     "APDU was not sent", card->lock_timeout_ms);
	if (card->slot != NULL)
		ccid_slot_apdu_done(card->slot, CCID_CARD_EHW, NULL, 0);
	return G_SOURCE_REMOVE;
}

static void slot_card_gone(ccid_card_pcsc *card)
{
	card->powered = FALSE;
	if (card->slot != NULL)
		ccid_slot_card_removed(card->slot);   /* cancels the op */
	queue_job(card, CCID_PCSC_JOB_DISCONNECT, 0, NULL, 0);
}

static gboolean on_state(gpointer data)
{
	struct state_msg *m = data;
	ccid_card_pcsc *card = m->sh->card;
	struct ccid_pcsc_state *old, *st = &m->st;
	gboolean same;

	if (card == NULL)
		return G_SOURCE_REMOVE;
	old = &card->state;
	if (old->service && !st->service)
		emit(card, CCID_CARD_PCSC_EVENT_SERVICE_GONE, "%s",
		     st->detail != NULL ? st->detail : "pcscd went away");
	else if (old->reader != NULL && st->reader == NULL && st->service)
		emit(card, CCID_CARD_PCSC_EVENT_READER_GONE, "%s",
		     st->detail != NULL ? st->detail : "the reader is gone");
	if (st->reader != NULL && g_strcmp0(old->reader, st->reader) != 0) {
		g_free(card->reader);
		card->reader = g_strdup(st->reader);
		emit(card, CCID_CARD_PCSC_EVENT_READER_BACK,
		     "using reader '%s'", st->reader);
	}

	same = same_card(old, st);
	if (old->present && !same) {
		emit(card, CCID_CARD_PCSC_EVENT_REMOVED,
		     "card removed from '%s'", old->reader);
		slot_card_gone(card);
	}
	if (st->present && !same) {
		emit(card, CCID_CARD_PCSC_EVENT_INSERTED,
		     "card inserted in '%s'", st->reader);
		if (card->slot != NULL)
			ccid_slot_card_inserted(card->slot);
	}
	ccid_pcsc_state_clear(old);
	ccid_pcsc_state_copy(old, st);
	return G_SOURCE_REMOVE;
}

static gboolean on_result(gpointer data)
{
	struct result_msg *m = data;
	ccid_card_pcsc *card = m->sh->card;
	struct ccid_pcsc_result *res = &m->res;
	gboolean live;

	if (card == NULL)
		return G_SOURCE_REMOVE;
	live = res->gen != 0 && res->gen == card->op_gen;
	if (res->reset) {
		/* Never swallowed, even for a withdrawn APDU: the guest's idea
		 * of the card's state is wrong now.  It sees the card leave
		 * and come back, and powers it on again. */
		card->stats.resets++;
		card->powered = FALSE;
		emit(card, CCID_CARD_PCSC_EVENT_RESET, "%s", res->why);
		if (live) {
			stop_lock_timer(card);
			card->op_gen = 0;
			if (card->slot != NULL)
				ccid_slot_apdu_done(card->slot,
						    CCID_CARD_ENOCARD, NULL, 0);
		} else if (card->slot != NULL) {
			ccid_slot_card_removed(card->slot);
		}
		if (card->slot != NULL && card->state.present)
			ccid_slot_card_inserted(card->slot);
		return G_SOURCE_REMOVE;
	}
	if (!live)
		return G_SOURCE_REMOVE;
	stop_lock_timer(card);
	card->op_gen = 0;
	if (res->st != CCID_CARD_OK) {
		card->stats.errors++;
		emit(card, CCID_CARD_PCSC_EVENT_ERROR, "APDU failed: %s",
		     res->why != NULL ? res->why : "PC/SC error");
	}
	if (card->slot != NULL)
		ccid_slot_apdu_done(card->slot, res->st, res->resp, res->len);
	return G_SOURCE_REMOVE;
}

/* --- struct ccid_card_ops ------------------------------------------------------- */

static int pcsc_power_on(void *opaque)
{
	ccid_card_pcsc *card = opaque;
	const struct ccid_pcsc_state *st = &card->state;

	if (card->slot == NULL)
		return -1;
	if (!st->present) {
		ccid_slot_power_on_done(card->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	if (st->mute || st->atr_len < 2) {
		ccid_slot_power_on_done(card->slot, CCID_CARD_EMUTE, NULL, 0);
		return 0;
	}
	card->powered = TRUE;
	ccid_slot_power_on_done(card->slot, CCID_CARD_OK, st->atr, st->atr_len);
	return 0;
}

static void pcsc_power_off(void *opaque)
{
	ccid_card_pcsc *card = opaque;

	card->powered = FALSE;
	queue_job(card, CCID_PCSC_JOB_DISCONNECT, 0, NULL, 0);
}

static int pcsc_transmit(void *opaque, const uint8_t *apdu, size_t len)
{
	ccid_card_pcsc *card = opaque;

	if (card->slot == NULL || !card->powered || card->op_gen != 0 ||
	    len == 0 || len > CCID_EMU_MAX_APDU_CMD)
		return -1;
	card->op_gen = ++card->next_gen;
	queue_job(card, CCID_PCSC_JOB_XFR, card->op_gen, apdu, len);
	card->lock_timer = g_timeout_source_new(card->lock_timeout_ms);
	g_source_set_callback(card->lock_timer, on_lock_timeout, card, NULL);
	g_source_set_name(card->lock_timer, "ccid-emu pcsc lock timeout");
	g_source_attach(card->lock_timer, card->sh->ctx);
	return 0;
}

static void pcsc_cancel(void *opaque)
{
	withdraw(opaque);
}

static void pcsc_detach(void *opaque)
{
	ccid_card_pcsc *card = opaque;

	withdraw(card);
	card->slot = NULL;
	card->powered = FALSE;
	queue_job(card, CCID_PCSC_JOB_DISCONNECT, 0, NULL, 0);
}

static const struct ccid_card_ops pcsc_ops = {
	.name = "pcsc",
	.power_on = pcsc_power_on,
	.power_off = pcsc_power_off,
	.transmit = pcsc_transmit,
	.cancel = pcsc_cancel,
	.detach = pcsc_detach,
};

const struct ccid_card_ops *ccid_card_pcsc_ops(void)
{
	return &pcsc_ops;
}

/* --- creation -------------------------------------------------------------------- */

static const char *service_socket(void)
{
	const char *env = g_getenv("PCSCLITE_CSOCK_NAME");

	return env != NULL && env[0] != '\0' ? env : "/run/pcscd/pcscd.comm";
}

static gboolean pcsc_error(GError **error, int code, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);

static gboolean pcsc_error(GError **error, int code, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error_literal(error, CCID_CARD_PCSC_ERROR, code, msg);
	return FALSE;
}

/* Picks the reader and reads its state, with a context of our own that
 * lives only for this. */
static gboolean initial_state(const char *pattern, struct ccid_pcsc_state *st,
			      GError **error)
{
	g_autofree char *list = NULL;
	g_autofree char *name = NULL;
	g_autofree char *known = NULL;
	SCARD_READERSTATE rs = { 0 };
	SCARDCONTEXT ctx;
	gsize len = 0;
	LONG rv;

	rv = ccid_pcsc_context_establish(&ctx);
	if (rv == SCARD_E_NO_SERVICE)
		return pcsc_error(error, CCID_CARD_PCSC_ERROR_NO_SERVICE,
				  "pcscd is not running (no PC/SC service "
				  "at %s)", service_socket());
	if (rv != SCARD_S_SUCCESS)
		return pcsc_error(error, CCID_CARD_PCSC_ERROR_PCSC,
				  "cannot talk to pcscd at %s: %s [0x%08lX]",
				  service_socket(), ccid_pcsc_strerror(rv),
				  (unsigned long)rv);

	list = ccid_pcsc_list_readers(ctx, &len, &rv);
	if (list == NULL && rv != SCARD_E_NO_READERS_AVAILABLE) {
		(void)ccid_pcsc_context_release(ctx);
		return pcsc_error(error, CCID_CARD_PCSC_ERROR_PCSC,
				  "cannot list the PC/SC readers: %s "
				  "[0x%08lX]", ccid_pcsc_strerror(rv),
				  (unsigned long)rv);
	}
	switch (ccid_pcsc_reader_match(list, len, pattern, &name)) {
	case CCID_PCSC_MATCH_ONE:
		break;
	case CCID_PCSC_MATCH_NONE:
		(void)ccid_pcsc_context_release(ctx);
		known = ccid_pcsc_reader_list_text(list, len, NULL);
		if (pattern[0] == '\0')
			return pcsc_error(error, CCID_CARD_PCSC_ERROR_NO_READER,
					  "pcscd has no reader");
		return pcsc_error(error, CCID_CARD_PCSC_ERROR_NO_READER,
				  "no PC/SC reader matches '%s' (readers: %s)",
				  pattern, known);
	case CCID_PCSC_MATCH_MANY:
		(void)ccid_pcsc_context_release(ctx);
		known = ccid_pcsc_reader_list_text(list, len, pattern);
		if (pattern[0] == '\0')
			return pcsc_error(error, CCID_CARD_PCSC_ERROR_AMBIGUOUS,
					  "pcscd has several readers, name "
					  "one with pcsc:READER (readers: %s)",
					  known);
		return pcsc_error(error, CCID_CARD_PCSC_ERROR_AMBIGUOUS,
				  "'%s' matches several PC/SC readers: %s; "
				  "give the full name or a longer part of "
				  "it", pattern, known);
	}

	rs.szReader = name;
	rs.dwCurrentState = SCARD_STATE_UNAWARE;
	rv = SCardGetStatusChange(ctx, 0, &rs, 1);
	(void)ccid_pcsc_context_release(ctx);
	if (rv != SCARD_S_SUCCESS)
		return pcsc_error(error, CCID_CARD_PCSC_ERROR_PCSC,
				  "cannot read the state of reader '%s': %s "
				  "[0x%08lX]", name, ccid_pcsc_strerror(rv),
				  (unsigned long)rv);
	st->service = TRUE;
	st->present = (rs.dwEventState & SCARD_STATE_PRESENT) != 0;
	st->mute = (rs.dwEventState & SCARD_STATE_MUTE) != 0;
	st->counter = (guint)(rs.dwEventState >> 16);
	if (st->present && rs.cbAtr <= sizeof(st->atr)) {
		memcpy(st->atr, rs.rgbAtr, rs.cbAtr);
		st->atr_len = rs.cbAtr;
	}
	st->reader = g_steal_pointer(&name);
	return TRUE;
}

static GThread *start_thread(ccid_card_pcsc *card, const char *name,
			     GThreadFunc fn, GError **error)
{
	GThread *t;

	t = g_thread_try_new(name, fn, ccid_pcsc_shared_ref(card->sh), error);
	if (t == NULL) {
		ccid_pcsc_shared_unref(card->sh);
		g_prefix_error(error, "pcsc card: cannot start a thread: ");
	}
	return t;
}

static gboolean config_ok(const struct ccid_card_pcsc_config *cfg,
			  GError **error)
{
	if (cfg->lock_timeout_ms < 1 ||
	    cfg->lock_timeout_ms > CCID_CARD_PCSC_MAX_MS ||
	    cfg->idle_ms > CCID_CARD_PCSC_MAX_MS)
		return pcsc_error(error, CCID_CARD_PCSC_ERROR_SPEC,
				  "pcsc card: idle must be 0..%u ms and "
				  "lock_timeout 1..%u ms",
				  CCID_CARD_PCSC_MAX_MS, CCID_CARD_PCSC_MAX_MS);
	return TRUE;
}

/* The card and what it shares with its threads, from @st (taken), before
 * any thread runs. */
static ccid_card_pcsc *card_create(const struct ccid_card_pcsc_config *cfg,
				   struct ccid_pcsc_state *st)
{
	ccid_card_pcsc *card;
	struct ccid_pcsc_shared *sh;
	GMainContext *ctx;

	card = g_new0(ccid_card_pcsc, 1);
	card->state = *st;
	memset(st, 0, sizeof(*st));
	card->reader = g_strdup(card->state.reader);
	card->lock_timeout_ms = cfg->lock_timeout_ms;
	card->event = cfg->event;
	card->event_user = cfg->event_user;

	ctx = cfg->context != NULL ? cfg->context :
	      g_main_context_get_thread_default();
	if (ctx == NULL)
		ctx = g_main_context_default();
	sh = g_new0(struct ccid_pcsc_shared, 1);
	g_atomic_ref_count_init(&sh->ref);
	g_mutex_init(&sh->lock);
	g_cond_init(&sh->cond);
	g_queue_init(&sh->jobs);
	sh->ctx = g_main_context_ref(ctx);
	sh->pattern = g_strdup(cfg->reader != NULL ? cfg->reader : "");
	sh->idle_ms = cfg->idle_ms;
	sh->reader = g_strdup(card->state.reader);
	sh->card = card;
	card->sh = sh;
	return card;
}

ccid_card_pcsc *ccid_card_pcsc_new(ccid_slot *slot,
				   const struct ccid_card_pcsc_config *cfg,
				   GError **error)
{
	g_autoptr(ccid_card_pcsc) card = NULL;
	struct ccid_card_pcsc_config defaults;
	struct ccid_pcsc_state st = { 0 };

	g_return_val_if_fail(slot != NULL, NULL);
	if (cfg == NULL) {
		ccid_card_pcsc_config_init(&defaults);
		cfg = &defaults;
	}
	if (!config_ok(cfg, error) ||
	    !initial_state(cfg->reader != NULL ? cfg->reader : "", &st, error))
		return NULL;
	card = card_create(cfg, &st);
	card->worker = start_thread(card, "ccid-pcsc-io", ccid_pcsc_worker_run,
				    error);
	if (card->worker == NULL)
		return NULL;
	card->monitor = start_thread(card, "ccid-pcsc-mon",
				     ccid_pcsc_monitor_run, error);
	if (card->monitor == NULL)
		return NULL;
	card->slot = slot;
	return g_steal_pointer(&card);
}

ccid_card_pcsc *ccid_pcsc_card_new_unstarted(ccid_slot *slot,
					     const struct ccid_card_pcsc_config *cfg,
					     const struct ccid_pcsc_state *initial)
{
	struct ccid_pcsc_state st = { 0 };
	ccid_card_pcsc *card;

	if (!config_ok(cfg, NULL))
		return NULL;
	ccid_pcsc_state_copy(&st, initial);
	card = card_create(cfg, &st);
	card->slot = slot;
	return card;
}

struct ccid_pcsc_shared *ccid_pcsc_card_shared(ccid_card_pcsc *card)
{
	return card->sh;
}

/* Waits until *@done or the grace period ends; TRUE if done.  Called with
 * the lock held.  @poke (may be NULL) is called before every wait. */
static gboolean wait_done(struct ccid_pcsc_shared *sh, const gboolean *done,
			  void (*poke)(struct ccid_pcsc_shared *sh))
{
	gint64 end = g_get_monotonic_time() +
		     (gint64)CCID_PCSC_STOP_GRACE_MS * 1000;

	while (!*done) {
		gint64 step = g_get_monotonic_time() + 50 * 1000;

		if (poke != NULL)
			poke(sh);
		if (g_get_monotonic_time() >= end)
			return FALSE;
		g_cond_wait_until(&sh->cond, &sh->lock, MIN(step, end));
	}
	return TRUE;
}

/* The monitor sleeps inside SCardGetStatusChange; cancelling also covers
 * the moment just before it enters the call, hence the repeats. */
static void poke_monitor(struct ccid_pcsc_shared *sh)
{
	if (sh->mon_ctx_set)
		(void)SCardCancel(sh->mon_ctx);
}

static void join_or_leave(GThread *t, gboolean done)
{
	if (t == NULL)
		return;
	if (done)
		g_thread_join(t);
	else
		g_thread_unref(t);   /* it drops its own reference later */
}

void ccid_card_pcsc_free(ccid_card_pcsc *card)
{
	struct ccid_pcsc_shared *sh;
	gboolean mon_done = TRUE, work_done = TRUE;

	if (card == NULL)
		return;
	sh = card->sh;
	stop_lock_timer(card);
	if (sh != NULL) {
		sh->card = NULL;
		g_mutex_lock(&sh->lock);
		sh->stop = TRUE;
		sh->live_gen = 0;
		g_cond_broadcast(&sh->cond);
		if (card->monitor != NULL)
			mon_done = wait_done(sh, &sh->monitor_done,
					     poke_monitor);
		if (card->worker != NULL)
			work_done = wait_done(sh, &sh->worker_done, NULL);
		g_mutex_unlock(&sh->lock);
		if (!mon_done || !work_done)
			g_debug("pcsc card: a thread is still inside pcscd; "
				"it will finish on its own");
		join_or_leave(card->monitor, mon_done);
		join_or_leave(card->worker, work_done);
		ccid_pcsc_shared_unref(sh);
	}
	ccid_pcsc_state_clear(&card->state);
	g_free(card->reader);
	g_free(card);
}

gboolean ccid_card_pcsc_is_present(const ccid_card_pcsc *card)
{
	return card->state.present;
}

const char *ccid_card_pcsc_get_reader(const ccid_card_pcsc *card)
{
	return card->reader;
}

void ccid_card_pcsc_get_stats(const ccid_card_pcsc *card,
			      struct ccid_card_pcsc_stats *stats)
{
	*stats = card->stats;
	g_mutex_lock(&card->sh->lock);
	stats->apdus = card->sh->n_apdus;
	stats->transactions = card->sh->n_transactions;
	stats->lock_waits = card->sh->n_lock_waits;
	g_mutex_unlock(&card->sh->lock);
}
