/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The nss card backend: a libcacard hardware reader borrowed from the
 * process-wide service, driven from a worker thread with a deadline per op
 * (see ccid_card_nss.h for why).
 */
#include "ccid_card_nss.h"
#include "ccid_cacard_service.h"
#include "ccid_card_virtual.h"
#include "ccid_nss_private.h"

#include <stdlib.h>
#include <string.h>

#define NSS_RESP_CAP (CCID_EMU_MAX_APDU_RESP + 1u)

enum job_kind {
	JOB_POWER_ON,
	JOB_POWER_OFF,
	JOB_XFR,
	JOB_QUIT,      /* power off, then leave the thread */
	JOB_PROBE,     /* power on for the ATR, then off; result in sh */
};

/* What the card and its worker share.  Reference counted because a stuck
 * worker keeps its reference for ever while the card goes away. */
struct nss_shared {
	gatomicrefcount ref;
	GAsyncQueue *jobs;
	VReader *reader;        /* the card's reference, used by the worker */
	/* libcacard's calls (libcacard_fns), or the seam's
	 * (ccid_nss_private.h). */
	const struct ccid_nss_reader_fns *fns;
	GMainContext *ctx;
	guint8 *resp;           /* the worker's response buffer */
	GMutex lock;
	GCond cond;
	gboolean finished;      /* the worker left its loop */
	gboolean probed;        /* JOB_PROBE is done: probe_atr is set */
	guint8 probe_atr[CCID_EMU_MAX_ATR];
	gsize probe_atr_len;
	ccid_card_nss *card;    /* owner thread only; NULL once freed */
};

struct job {
	enum job_kind kind;
	guint gen;
	struct nss_shared *sh;
	guint8 *buf;            /* command, then response */
	size_t len;
	VReaderStatus st;
	guint8 atr[CCID_EMU_MAX_ATR];
	int atr_len;
};

struct ccid_card_nss {
	ccid_slot *slot;        /* NULL once detached */
	ccid_cacard_service *svc;   /* NULL: made by the seam, no reader */
	VReader *reader;
	struct nss_shared *sh;
	GThread *worker;        /* NULL: made by the seam, no thread */
	GMainContext *ctx;
	guint watch_id;
	guint timeout_ms;
	gboolean present;
	gboolean powered;
	/* The ATR the card presents (libcacard's CAC ATR), learnt at creation
	 * and at every power-on; 0: not known. */
	guint8 atr[CCID_EMU_MAX_ATR];
	gsize atr_len;
	gboolean dead;
	/* The op in flight (power on / transmit), if any. */
	enum job_kind busy_kind;
	gboolean busy;
	guint gen;
	GSource *deadline;
};

static const struct ccid_nss_reader_fns libcacard_fns = {
	.power_on = vreader_power_on,
	.power_off = vreader_power_off,
	.xfr_bytes = vreader_xfr_bytes,
};

static const char *reader_name(const ccid_card_nss *card)
{
	return card->reader != NULL ? vreader_get_name(card->reader) :
		"(no reader: made by the seam)";
}

static struct nss_shared *shared_ref(struct nss_shared *sh)
{
	g_atomic_ref_count_inc(&sh->ref);
	return sh;
}

static void shared_unref(struct nss_shared *sh)
{
	if (!g_atomic_ref_count_dec(&sh->ref))
		return;
	g_async_queue_unref(sh->jobs);
	g_main_context_unref(sh->ctx);
	g_free(sh->resp);
	g_mutex_clear(&sh->lock);
	g_cond_clear(&sh->cond);
	g_free(sh);
}

static void job_free(struct job *j)
{
	shared_unref(j->sh);
	g_free(j->buf);
	g_free(j);
}

/* ---- card side of completions ---------------------------------------- */

static void disarm_deadline(ccid_card_nss *card)
{
	if (card->deadline != NULL) {
		g_source_destroy(card->deadline);
		g_source_unref(card->deadline);
		card->deadline = NULL;
	}
}

/* libcacard answered "no card": its reader lost the token before the
 * service's event about it came.  The slot takes CCID_CARD_ENOCARD as the
 * card gone, so the card says so too (found by fuzz_nss_card: the slot
 * reported no card while the backend still said present); the event, when
 * it comes, is then no change, and an insertion brings it back. */
static void card_gone(ccid_card_nss *card)
{
	card->present = FALSE;
	card->powered = FALSE;
}

static void finish_power_on(ccid_card_nss *card, struct job *j)
{
	/* An ATR the slot would refuse (libcacard's length is whatever it
	 * says) leaves the card off, as the slot does. */
	if (j->st == VREADER_OK &&
	    (j->atr_len < 2 || j->atr_len > (int)sizeof(j->atr))) {
		g_debug("nss card: libcacard gave a %d-byte ATR", j->atr_len);
		j->st = VREADER_OUT_OF_MEMORY;
	}
	if (j->st != VREADER_OK) {
		card->powered = FALSE;
		if (j->st == VREADER_NO_CARD)
			card_gone(card);
		ccid_slot_power_on_done(card->slot,
					j->st == VREADER_NO_CARD ?
					CCID_CARD_ENOCARD : CCID_CARD_EHW,
					NULL, 0);
		return;
	}
	card->powered = TRUE;
	if (j->atr_len > 0 && j->atr_len <= (int)sizeof(card->atr)) {
		memcpy(card->atr, j->atr, (size_t)j->atr_len);
		card->atr_len = (gsize)j->atr_len;
	}
	ccid_slot_power_on_done(card->slot, CCID_CARD_OK, j->atr,
				(size_t)j->atr_len);
}

static void finish_xfr(ccid_card_nss *card, struct job *j)
{
	if (j->st == VREADER_NO_CARD) {
		card_gone(card);
		ccid_slot_apdu_done(card->slot, CCID_CARD_ENOCARD, NULL, 0);
		return;
	}
	if (j->st != VREADER_OK || j->len < 2 ||
	    j->len > CCID_EMU_MAX_APDU_RESP) {
		g_debug("nss card: libcacard answered status %d with %zu bytes",
			(int)j->st, j->len);
		ccid_slot_apdu_done(card->slot, CCID_CARD_EHW, NULL, 0);
		return;
	}
	ccid_slot_apdu_done(card->slot, CCID_CARD_OK, j->buf, j->len);
}

static gboolean job_done_cb(gpointer data)
{
	struct job *j = data;
	ccid_card_nss *card = j->sh->card;

	/* A stale result: the op was cancelled, timed out, or the card is
	 * gone. */
	if (card == NULL || card->dead || !card->busy || j->gen != card->gen ||
	    card->slot == NULL)
		return G_SOURCE_REMOVE;
	card->busy = FALSE;
	disarm_deadline(card);
	if (j->kind == JOB_POWER_ON)
		finish_power_on(card, j);
	else if (j->kind == JOB_XFR)
		finish_xfr(card, j);
	return G_SOURCE_REMOVE;
}

static void post_done(struct job *j)
{
	GSource *src = g_idle_source_new();

	g_source_set_priority(src, G_PRIORITY_DEFAULT);
	g_source_set_callback(src, job_done_cb, j, (GDestroyNotify)job_free);
	g_source_set_name(src, "ccid-emu nss card result");
	g_source_attach(src, j->sh->ctx);
	g_source_unref(src);
}

/* ---- worker ---------------------------------------------------------- */

static void run_job(struct nss_shared *sh, struct job *j)
{
	int n;

	switch (j->kind) {
	case JOB_POWER_ON:
		j->atr_len = (int)sizeof(j->atr);
		j->st = sh->fns->power_on(sh->reader, j->atr, &j->atr_len);
		break;
	case JOB_PROBE:
		/* libcacard knows a card's ATR only by a power-on; with no
		 * token this fails and the ATR stays unknown. */
		j->atr_len = (int)sizeof(j->atr);
		j->st = sh->fns->power_on(sh->reader, j->atr, &j->atr_len);
		(void)sh->fns->power_off(sh->reader);
		g_mutex_lock(&sh->lock);
		if (j->st == VREADER_OK && j->atr_len > 0 &&
		    j->atr_len <= (int)sizeof(sh->probe_atr)) {
			memcpy(sh->probe_atr, j->atr, (size_t)j->atr_len);
			sh->probe_atr_len = (gsize)j->atr_len;
		}
		sh->probed = TRUE;
		g_cond_broadcast(&sh->cond);
		g_mutex_unlock(&sh->lock);
		break;
	case JOB_POWER_OFF:
	case JOB_QUIT:
		(void)sh->fns->power_off(sh->reader);
		break;
	case JOB_XFR:
		n = (int)NSS_RESP_CAP;
		j->st = sh->fns->xfr_bytes(sh->reader, j->buf, (int)j->len,
					   sh->resp, &n);
		g_free(j->buf);
		/* libcacard cuts an answer to the buffer; a length beyond it
		 * would be its bug, and is not read. */
		if (n > (int)NSS_RESP_CAP) {
			j->st = VREADER_OUT_OF_MEMORY;
			n = 0;
		}
		j->len = n > 0 ? (size_t)n : 0;
		j->buf = j->len > 0 ? g_memdup2(sh->resp, j->len) : NULL;
		break;
	}
}

/* One job as the worker runs it; TRUE when it was the last (JOB_QUIT). */
static gboolean worker_step(struct nss_shared *sh, struct job *j)
{
	enum job_kind kind = j->kind;

	run_job(sh, j);
	if (kind == JOB_POWER_ON || kind == JOB_XFR)
		post_done(j);
	else
		job_free(j);
	return kind == JOB_QUIT;
}

static gpointer worker_main(gpointer data)
{
	struct nss_shared *sh = data;

	while (!worker_step(sh, g_async_queue_pop(sh->jobs)))
		;
	g_mutex_lock(&sh->lock);
	sh->finished = TRUE;
	g_cond_broadcast(&sh->cond);
	g_mutex_unlock(&sh->lock);
	shared_unref(sh);
	return NULL;
}

/* ---- deadline -------------------------------------------------------- */

static void mark_dead(ccid_card_nss *card, const char *what)
{
	card->dead = TRUE;
	g_warning("nss card on reader '%s': %s did not finish within %u ms; "
		  "NSS is presumably deadlocked (login vs. the module's "
		  "event polling, see docs/shared-mode.md).  The card is now "
		  "unusable and reported removed; restart the agent to use "
		  "this token again", reader_name(card), what,
		  card->timeout_ms);
	/* The worker may never come back: the reader stays with the stuck
	 * thread, the service never touches it again. */
	if (card->svc != NULL)
		ccid_cacard_service_abandon_reader(card->svc, card->reader);
}

static gboolean deadline_cb(gpointer data)
{
	ccid_card_nss *card = data;
	enum job_kind kind = card->busy_kind;

	g_clear_pointer(&card->deadline, g_source_unref);
	if (!card->busy || card->dead)
		return G_SOURCE_REMOVE;
	card->busy = FALSE;
	card->gen++;
	mark_dead(card, kind == JOB_POWER_ON ? "a power-on" : "an APDU");
	if (card->slot == NULL)
		return G_SOURCE_REMOVE;
	if (kind == JOB_POWER_ON)
		ccid_slot_power_on_done(card->slot, CCID_CARD_EHW, NULL, 0);
	else
		ccid_slot_apdu_done(card->slot, CCID_CARD_EHW, NULL, 0);
	card->powered = FALSE;
	if (card->present) {
		card->present = FALSE;
		ccid_slot_card_removed(card->slot);
	}
	return G_SOURCE_REMOVE;
}

static void queue_job(ccid_card_nss *card, enum job_kind kind,
		      const uint8_t *apdu, size_t len)
{
	struct job *j = g_new0(struct job, 1);

	j->kind = kind;
	j->sh = shared_ref(card->sh);
	if (apdu != NULL) {
		j->buf = g_memdup2(apdu, len);
		j->len = len;
	}
	if (kind == JOB_POWER_ON || kind == JOB_XFR) {
		j->gen = ++card->gen;
		card->busy = TRUE;
		card->busy_kind = kind;
		disarm_deadline(card);
		/* Counted from now, so a worker still stuck in an earlier
		 * op is caught too. */
		card->deadline = g_timeout_source_new(card->timeout_ms);
		g_source_set_callback(card->deadline, deadline_cb, card, NULL);
		g_source_set_name(card->deadline, "ccid-emu nss card deadline");
		g_source_attach(card->deadline, card->ctx);
	}
	g_async_queue_push(card->sh->jobs, j);
}

/* ---- card ops -------------------------------------------------------- */

static int nss_power_on(void *opaque)
{
	ccid_card_nss *card = opaque;

	if (card->slot == NULL)
		return -1;
	if (card->dead || !card->present) {
		ccid_slot_power_on_done(card->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	queue_job(card, JOB_POWER_ON, NULL, 0);
	return 0;
}

static void nss_power_off(void *opaque)
{
	ccid_card_nss *card = opaque;

	card->powered = FALSE;
	if (!card->dead)
		queue_job(card, JOB_POWER_OFF, NULL, 0);
}

static int nss_transmit(void *opaque, const uint8_t *apdu, size_t len)
{
	ccid_card_nss *card = opaque;

	if (card->slot == NULL || len == 0 || len > CCID_EMU_MAX_APDU_CMD)
		return -1;
	if (card->dead) {
		ccid_slot_apdu_done(card->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	/* libcacard keeps answering after vreader_power_off(); a card that
	 * is off must not. */
	if (!card->powered) {
		ccid_slot_apdu_done(card->slot, CCID_CARD_EMUTE, NULL, 0);
		return 0;
	}
	queue_job(card, JOB_XFR, apdu, len);
	return 0;
}

static void nss_cancel(void *opaque)
{
	ccid_card_nss *card = opaque;

	/* The worker finishes the op; its result is dropped.  The deadline
	 * goes too: the next op gets its own. */
	card->busy = FALSE;
	card->gen++;
	disarm_deadline(card);
}

static void nss_detach(void *opaque)
{
	ccid_card_nss *card = opaque;

	nss_cancel(card);
	card->slot = NULL;
}

static const struct ccid_card_ops nss_ops = {
	.name = "nss-cac",
	.power_on = nss_power_on,
	.power_off = nss_power_off,
	.transmit = nss_transmit,
	.cancel = nss_cancel,
	.detach = nss_detach,
};

const struct ccid_card_ops *ccid_card_nss_ops(void)
{
	return &nss_ops;
}

static void nss_card_event(void *user, gboolean present)
{
	ccid_card_nss *card = user;

	/* libcacard repeats "removed" for empty slots on every NSS poll, so
	 * only changes count. */
	if (card->dead || present == card->present)
		return;
	card->present = present;
	if (!present)
		card->powered = FALSE;
	g_message("nss card: token %s reader '%s'",
		  present ? "inserted into" : "removed from",
		  reader_name(card));
	if (card->slot == NULL)
		return;
	if (present)
		ccid_slot_card_inserted(card->slot);
	else
		ccid_slot_card_removed(card->slot);
}

/* ---- spec ------------------------------------------------------------ */

static gboolean parse_ms(const char *val, guint *out, GError **error)
{
	char *end = NULL;
	guint64 v;

	if (!g_ascii_isdigit(val[0]) ||
	    (v = g_ascii_strtoull(val, &end, 10), *end != '\0') || v == 0 ||
	    v > CCID_CARD_NSS_MAX_TIMEOUT_MS) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "timeout=%s is not a number of milliseconds from "
			    "1 to %u", val, CCID_CARD_NSS_MAX_TIMEOUT_MS);
		return FALSE;
	}
	*out = (guint)v;
	return TRUE;
}

gboolean ccid_card_nss_spec_parse(const char *text, char **nssdb_dir,
				  char **token, guint *timeout_ms,
				  GError **error)
{
	g_auto(GStrv) parts = g_strsplit(text != NULL ? text : "", ",", -1);
	g_autofree char *tok = NULL;
	guint ms = 0;

	if (parts[0] == NULL || parts[0][0] == '\0') {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "needs an NSS database directory: nss:DIR"
			    "[,token=NAME][,timeout=MS]");
		return FALSE;
	}
	for (guint i = 1; parts[i] != NULL; i++) {
		const char *p = parts[i];

		if (g_str_has_prefix(p, "token=") && p[6] != '\0' &&
		    tok == NULL) {
			tok = g_strdup(p + 6);
		} else if (g_str_has_prefix(p, "timeout=") && ms == 0) {
			if (!parse_ms(p + 8, &ms, error))
				return FALSE;
		} else {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "unknown, empty or repeated option \"%s\" "
				    "(known: token=NAME, timeout=MS)", p);
			return FALSE;
		}
	}
	*nssdb_dir = g_strdup(parts[0]);
	*token = g_steal_pointer(&tok);
	*timeout_ms = ms;
	return TRUE;
}

/* ---- lifetime -------------------------------------------------------- */

/* The card and what it shares with its worker, no thread yet. */
static ccid_card_nss *card_alloc(ccid_slot *slot, guint timeout_ms,
				 GMainContext *ctx,
				 const struct ccid_nss_reader_fns *fns)
{
	ccid_card_nss *card = g_new0(ccid_card_nss, 1);
	struct nss_shared *sh = g_new0(struct nss_shared, 1);

	card->timeout_ms = timeout_ms != 0 ? timeout_ms :
		CCID_CARD_NSS_DEFAULT_TIMEOUT_MS;
	card->ctx = ctx != NULL ? g_main_context_ref(ctx) :
		g_main_context_ref_thread_default();
	g_atomic_ref_count_init(&sh->ref);
	sh->jobs = g_async_queue_new();
	sh->fns = fns;
	sh->ctx = g_main_context_ref(card->ctx);
	sh->resp = g_malloc(NSS_RESP_CAP);
	g_mutex_init(&sh->lock);
	g_cond_init(&sh->cond);
	sh->card = card;
	card->sh = sh;
	card->slot = slot;
	return card;
}

/* With a token in, the ATR of the power-on the worker was asked for (the
 * Atr a UI shows before any guest powers the card); waited for with the
 * card's deadline, as every op that reaches NSS. */
static void card_wait_probe(ccid_card_nss *card)
{
	struct nss_shared *sh = card->sh;
	gboolean probed;
	gint64 until = g_get_monotonic_time() +
		(gint64)card->timeout_ms * G_TIME_SPAN_MILLISECOND;

	g_mutex_lock(&sh->lock);
	while (!sh->probed && g_cond_wait_until(&sh->cond, &sh->lock, until))
		;
	probed = sh->probed;
	if (probed) {
		memcpy(card->atr, sh->probe_atr, sh->probe_atr_len);
		card->atr_len = sh->probe_atr_len;
	}
	g_mutex_unlock(&sh->lock);
	if (!probed) {
		mark_dead(card, "the power-on that reads the ATR");
		card->present = FALSE;
	}
}

ccid_card_nss *ccid_card_nss_new(ccid_slot *slot,
				 const struct ccid_card_nss_config *cfg,
				 GError **error)
{
	struct ccid_cacard_config scfg = { 0 };
	ccid_cacard_service *svc;
	VReader *reader;
	ccid_card_nss *card;

	g_return_val_if_fail(slot != NULL && cfg != NULL, NULL);
	if (cfg->nssdb_dir == NULL || cfg->nssdb_dir[0] == '\0') {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_NO_DB,
			    "the nss card needs an NSS database directory");
		return NULL;
	}
	scfg.hw_nssdb_dir = cfg->nssdb_dir;
	svc = ccid_cacard_service_get(&scfg, error);
	if (svc == NULL)
		return NULL;
	reader = ccid_cacard_service_acquire_hw_reader(svc, cfg->token, error);
	if (reader == NULL)
		return NULL;

	card = card_alloc(slot, cfg->apdu_timeout_ms, cfg->context,
			  &libcacard_fns);
	card->svc = svc;
	card->reader = reader;
	card->sh->reader = reader;
	card->worker = g_thread_new("ccid-nss-card", worker_main,
				    shared_ref(card->sh));

	/* Watch before reading the state, so no change falls in between. */
	card->watch_id = ccid_cacard_service_watch(card->svc, card->reader,
						   card->ctx, nss_card_event,
						   card);
	card->present = vreader_card_is_present(card->reader) == VREADER_OK;
	/* Start from a clean card (logged out) even if a previous user left
	 * it on; on the worker, like everything that reaches NSS.  With a
	 * token in, a power-on first tells the ATR. */
	if (!card->present) {
		queue_job(card, JOB_POWER_OFF, NULL, 0);
		return card;
	}
	queue_job(card, JOB_PROBE, NULL, 0);
	card_wait_probe(card);
	return card;
}

/* ---- the seam (ccid_nss_private.h) ------------------------------------ */

ccid_card_nss *ccid_nss_card_new_unstarted(ccid_slot *slot,
					   const struct ccid_nss_reader_fns *fns,
					   gboolean present, guint timeout_ms)
{
	ccid_card_nss *card;

	g_return_val_if_fail(slot != NULL && fns != NULL, NULL);
	card = card_alloc(slot, timeout_ms, NULL, fns);
	card->present = present;
	if (!present) {
		queue_job(card, JOB_POWER_OFF, NULL, 0);
		return card;
	}
	queue_job(card, JOB_PROBE, NULL, 0);
	(void)ccid_nss_card_run_job(card);
	card_wait_probe(card);
	return card;
}

gboolean ccid_nss_card_run_job(ccid_card_nss *card)
{
	struct job *j;

	g_return_val_if_fail(card->worker == NULL, FALSE);
	j = g_async_queue_try_pop(card->sh->jobs);
	if (j == NULL)
		return FALSE;
	(void)worker_step(card->sh, j);
	return TRUE;
}

void ccid_nss_card_event(ccid_card_nss *card, gboolean present)
{
	nss_card_event(card, present);
}

void ccid_nss_card_expire(ccid_card_nss *card)
{
	if (card->deadline == NULL)
		return;
	/* As the timer firing: the source goes, its callback runs once. */
	g_source_destroy(card->deadline);
	(void)deadline_cb(card);
}

/* ---- end of life ------------------------------------------------------ */

/* A seam card (no thread): what is still queued runs here, up to the
 * JOB_QUIT free() queued, unless the card is dead (a stuck worker would
 * never run them).  Queued jobs hold references to the shared state. */
static void seam_drain(ccid_card_nss *card)
{
	struct job *j;

	while ((j = g_async_queue_try_pop(card->sh->jobs)) != NULL) {
		if (card->dead)
			job_free(j);
		else
			(void)worker_step(card->sh, j);
	}
}

void ccid_card_nss_free(ccid_card_nss *card)
{
	gboolean finished = FALSE;

	if (card == NULL)
		return;
	if (card->watch_id != 0)
		ccid_cacard_service_unwatch(card->svc, card->watch_id);
	disarm_deadline(card);
	card->sh->card = NULL;

	if (card->worker == NULL) {
		if (!card->dead)
			queue_job(card, JOB_QUIT, NULL, 0);
		seam_drain(card);
	} else if (!card->dead) {
		gint64 until = g_get_monotonic_time() +
			(gint64)card->timeout_ms * G_TIME_SPAN_MILLISECOND;

		queue_job(card, JOB_QUIT, NULL, 0);
		g_mutex_lock(&card->sh->lock);
		while (!card->sh->finished &&
		       g_cond_wait_until(&card->sh->cond, &card->sh->lock,
					 until))
			;
		finished = card->sh->finished;
		g_mutex_unlock(&card->sh->lock);
		if (!finished)
			mark_dead(card, "the final power-off");
	}
	if (card->worker == NULL) {
		/* nothing to join or give back */
	} else if (finished) {
		g_thread_join(card->worker);
		ccid_cacard_service_release_hw_reader(card->svc, card->reader);
	} else {
		/* Stuck for good: let it be, with its reader. */
		g_thread_unref(card->worker);
	}
	shared_unref(card->sh);
	g_main_context_unref(card->ctx);
	g_free(card);
}

gboolean ccid_card_nss_is_present(const ccid_card_nss *card)
{
	return card->present;
}

gsize ccid_card_nss_get_atr(const ccid_card_nss *card, guint8 *atr)
{
	if (card->dead || !card->present)
		return 0;
	memcpy(atr, card->atr, card->atr_len);
	return card->atr_len;
}

gboolean ccid_card_nss_is_unusable(const ccid_card_nss *card)
{
	return card->dead;
}

const char *ccid_card_nss_get_reader(const ccid_card_nss *card)
{
	return reader_name(card);
}
