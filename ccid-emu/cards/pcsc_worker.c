/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pcsc card's worker thread: every PC/SC call that can block on the
 * card or on other applications runs here, one job at a time, in the
 * order the owner queued them.
 *
 * An XFR job connects (shared) if needed, takes the PC/SC transaction if
 * it is not held yet, and transmits.  The transaction then stays with us
 * until no job came for idle_ms: that is what keeps another application's
 * APDUs from landing between two of the guest's.
 *
 * Waiting for another application never needs a timer of ours: the owner
 * arms the lock timeout and, when it expires, withdraws the job (live_gen
 * no longer matches).  The worker checks that before it transmits, so an
 * APDU the guest was told failed never reaches the card.  Where pcsc-lite
 * itself blocks (SCardConnect inside pcscd while another application's
 * transaction runs, SCardBeginTransaction's own retry loop) the worker
 * simply finds the job withdrawn when the call returns.
 */
#include "ccid_pcsc_private.h"

#include <string.h>

struct worker {
	struct ccid_pcsc_shared *sh;
	SCARDCONTEXT ctx;
	gboolean have_ctx;
	SCARDHANDLE card;
	gboolean connected;
	DWORD protocol;
	gboolean in_txn;
	guint8 *resp;                 /* CCID_PCSC_RESP_CAP bytes */
};

static void job_free(struct ccid_pcsc_job *job)
{
	if (job == NULL)
		return;
	g_free(job->apdu);
	g_free(job);
}

/* Whether the owner still waits for @gen; waits up to @ms for that to
 * change first when @ms > 0. */
static gboolean still_wanted(struct ccid_pcsc_shared *sh, guint64 gen,
			     guint ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
	gboolean live;

	g_mutex_lock(&sh->lock);
	while (ms > 0 && sh->live_gen == gen && !sh->stop &&
	       g_cond_wait_until(&sh->cond, &sh->lock, end))
		;
	live = sh->live_gen == gen && !sh->stop;
	g_mutex_unlock(&sh->lock);
	return live;
}

static void end_transaction(struct worker *w)
{
	if (w->in_txn)
		(void)SCardEndTransaction(w->card, SCARD_LEAVE_CARD);
	w->in_txn = FALSE;
}

/* Leaves the card as it is for the other applications. */
static void disconnect(struct worker *w)
{
	end_transaction(w);
	if (w->connected)
		(void)ccid_pcsc_card_disconnect(w->card, SCARD_LEAVE_CARD);
	w->connected = FALSE;
}

static void drop_context(struct worker *w)
{
	disconnect(w);
	if (w->have_ctx)
		(void)ccid_pcsc_context_release(w->ctx);
	w->have_ctx = FALSE;
}

/* Maps a PC/SC failure to the slot's vocabulary and forgets whatever the
 * failure made useless.  A card or reader that went away fails the APDU
 * as mute, not as "no card": whether the card is there is the monitor's
 * word alone (pcscd tells it too), so a transient error can never leave
 * the slot empty with the card still in the reader. */
static enum ccid_card_status fail_status(struct worker *w, LONG rv)
{
	switch (rv) {
	case SCARD_W_REMOVED_CARD:
	case SCARD_E_NO_SMARTCARD:
	case SCARD_E_READER_UNAVAILABLE:
	case SCARD_E_UNKNOWN_READER:
	case SCARD_W_UNRESPONSIVE_CARD:
	case SCARD_W_UNPOWERED_CARD:
		disconnect(w);
		return CCID_CARD_EMUTE;
	case SCARD_E_NO_SERVICE:
	case SCARD_E_SERVICE_STOPPED:
	case SCARD_F_COMM_ERROR:
	case SCARD_E_INVALID_HANDLE:
		drop_context(w);
		return CCID_CARD_EHW;
	default:
		return CCID_CARD_EHW;
	}
}

static void finish(struct worker *w, struct ccid_pcsc_result *res,
		   enum ccid_card_status st, char *why)
{
	res->st = st;
	res->why = why;
	ccid_pcsc_post_result(w->sh, res);
}

static void finish_rv(struct worker *w, struct ccid_pcsc_result *res,
		      const char *call, LONG rv)
{
	g_autofree char *why = g_strdup_printf("%s: %s [0x%08lX]", call,
					       ccid_pcsc_strerror(rv),
					       (unsigned long)rv);
	enum ccid_card_status st = fail_status(w, rv);

	finish(w, res, st, g_steal_pointer(&why));
}

/* Someone reset the card: our handle must be given up, and the owner
 * tells the guest its card was exchanged. */
static void finish_reset(struct worker *w, struct ccid_pcsc_result *res)
{
	disconnect(w);
	res->reset = TRUE;
	finish(w, res, CCID_CARD_ENOCARD,
	       g_strdup("the card was reset by another application"));
}

static void note_lock_wait(struct worker *w, gboolean *waited)
{
	if (*waited)
		return;
	*waited = TRUE;
	g_mutex_lock(&w->sh->lock);
	w->sh->n_lock_waits++;
	g_mutex_unlock(&w->sh->lock);
}

static gboolean service_lost(LONG rv)
{
	return rv == SCARD_E_NO_SERVICE || rv == SCARD_E_SERVICE_STOPPED ||
	       rv == SCARD_F_COMM_ERROR || rv == SCARD_E_INVALID_HANDLE;
}

static LONG establish(struct worker *w)
{
	LONG rv = SCARD_S_SUCCESS;

	if (!w->have_ctx) {
		rv = ccid_pcsc_context_establish(&w->ctx);
		w->have_ctx = rv == SCARD_S_SUCCESS;
	}
	return rv;
}

/* Connects in shared mode, waiting while another application has the card
 * exclusively.  FALSE if the job is finished (posted or withdrawn). */
static gboolean connect_card(struct worker *w, struct ccid_pcsc_job *job,
			     struct ccid_pcsc_result *res, gboolean *waited)
{
	gboolean fresh_ctx = !w->have_ctx;
	LONG rv = establish(w);

	if (rv != SCARD_S_SUCCESS) {
		finish_rv(w, res, "SCardEstablishContext", rv);
		return FALSE;
	}
	while (!w->connected) {
		g_autofree char *reader = NULL;

		g_mutex_lock(&w->sh->lock);
		reader = g_strdup(w->sh->reader);
		g_mutex_unlock(&w->sh->lock);
		if (reader == NULL) {
			finish(w, res, CCID_CARD_EMUTE,
			       g_strdup("the reader is gone"));
			return FALSE;
		}
		rv = SCardConnect(w->ctx, reader, SCARD_SHARE_SHARED,
				  SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
				  &w->card, &w->protocol);
		if (rv == SCARD_S_SUCCESS) {
			w->connected = TRUE;
			break;
		}
		if (service_lost(rv) && !fresh_ctx) {
			/* pcscd restarted since we last talked to it: our
			 * context died with the old instance. */
			drop_context(w);
			fresh_ctx = TRUE;
			rv = establish(w);
			if (rv == SCARD_S_SUCCESS)
				continue;
			finish_rv(w, res, "SCardEstablishContext", rv);
			return FALSE;
		}
		if (rv != SCARD_E_SHARING_VIOLATION) {
			finish_rv(w, res, "SCardConnect", rv);
			return FALSE;
		}
		/* Exclusive use by another application: pcscd tells nobody
		 * when it ends, so look again now and then until the owner
		 * gives up on this APDU. */
		note_lock_wait(w, waited);
		if (!still_wanted(w->sh, job->gen, CCID_PCSC_LOCK_RETRY_MS))
			return FALSE;
	}
	return TRUE;
}

/* Takes the transaction if we do not hold it.  *@began tells whether it
 * was taken for this job.  FALSE if the job is finished. */
static gboolean begin_transaction(struct worker *w, struct ccid_pcsc_job *job,
				  struct ccid_pcsc_result *res,
				  gboolean *waited, gboolean *began)
{
	*began = FALSE;
	while (!w->in_txn) {
		gint64 t0 = g_get_monotonic_time();
		LONG rv = SCardBeginTransaction(w->card);

		/* pcsc-lite polls another application's lock inside the
		 * call; a long call means we waited for one. */
		if (g_get_monotonic_time() - t0 > 50 * 1000)
			note_lock_wait(w, waited);
		if (rv == SCARD_S_SUCCESS) {
			w->in_txn = TRUE;
			*began = TRUE;
			g_mutex_lock(&w->sh->lock);
			w->sh->n_transactions++;
			g_mutex_unlock(&w->sh->lock);
			break;
		}
		if (rv == SCARD_W_RESET_CARD) {
			finish_reset(w, res);
			return FALSE;
		}
		if (rv != SCARD_E_SHARING_VIOLATION) {
			finish_rv(w, res, "SCardBeginTransaction", rv);
			return FALSE;
		}
		/* Only with PCSCLITE_NO_BLOCKING set: pcsc-lite returns
		 * instead of waiting itself. */
		note_lock_wait(w, waited);
		if (!still_wanted(w->sh, job->gen, CCID_PCSC_LOCK_RETRY_MS))
			return FALSE;
	}
	return TRUE;
}

static const SCARD_IO_REQUEST *pci_for(DWORD protocol)
{
	switch (protocol) {
	case SCARD_PROTOCOL_T0:
		return SCARD_PCI_T0;
	case SCARD_PROTOCOL_T1:
		return SCARD_PCI_T1;
	default:
		return SCARD_PCI_RAW;
	}
}

static void do_xfr(struct worker *w, struct ccid_pcsc_job *job)
{
	struct ccid_pcsc_result res = { .gen = job->gen };
	gboolean waited = FALSE, began = FALSE, claimed;
	DWORD len = CCID_PCSC_RESP_CAP;
	LONG rv;

	if (!connect_card(w, job, &res, &waited) ||
	    !begin_transaction(w, job, &res, &waited, &began))
		return;

	/* The point of no return: from here on the APDU reaches the card,
	 * and the owner's lock timeout no longer applies. */
	g_mutex_lock(&w->sh->lock);
	claimed = w->sh->live_gen == job->gen && !w->sh->stop;
	if (claimed) {
		w->sh->acquired_gen = job->gen;
		w->sh->n_apdus++;
	}
	g_mutex_unlock(&w->sh->lock);
	if (!claimed) {
		/* Withdrawn while we waited: do not keep a card we did not
		 * use away from the others. */
		if (began)
			end_transaction(w);
		return;
	}

	rv = SCardTransmit(w->card, pci_for(w->protocol), job->apdu,
			   (DWORD)job->len, NULL, w->resp, &len);
	if (rv == SCARD_W_RESET_CARD) {
		finish_reset(w, &res);
		return;
	}
	if (rv != SCARD_S_SUCCESS) {
		finish_rv(w, &res, "SCardTransmit", rv);
		return;
	}
	if (len < 2 || len > CCID_PCSC_RESP_CAP) {
		/* No real card answers without SW1 SW2: vpcd reports a card
		 * that died mid-APDU as success with 0 bytes. */
		disconnect(w);
		finish(w, &res, CCID_CARD_EHW, g_strdup_printf(
			"SCardTransmit returned %lu bytes, not a response "
			"APDU (card or reader lost mid-APDU)",
			(unsigned long)len));
		return;
	}
	res.resp = g_malloc(len);
	memcpy(res.resp, w->resp, len);
	res.len = len;
	/* idle=0 promises the card is free once the guest has its answer:
	 * releasing after posting would let a host application that starts
	 * right then find the lock held and sleep through pcsc-lite's
	 * 100 ms lock poll. */
	if (w->sh->idle_ms == 0)
		end_transaction(w);
	finish(w, &res, CCID_CARD_OK, NULL);
}

gpointer ccid_pcsc_worker_run(gpointer data)
{
	struct worker w = { .sh = data };
	struct ccid_pcsc_shared *sh = w.sh;
	gint64 idle_end = 0;

	w.resp = g_malloc(CCID_PCSC_RESP_CAP);
	g_mutex_lock(&sh->lock);
	while (!sh->stop) {
		struct ccid_pcsc_job *job = g_queue_pop_head(&sh->jobs);

		if (job == NULL) {
			if (!w.in_txn) {
				g_cond_wait(&sh->cond, &sh->lock);
			} else if (!g_cond_wait_until(&sh->cond, &sh->lock,
						      idle_end) &&
				   g_queue_is_empty(&sh->jobs) && !sh->stop) {
				/* The guest went quiet: let others in. */
				g_mutex_unlock(&sh->lock);
				end_transaction(&w);
				g_mutex_lock(&sh->lock);
			}
			continue;
		}
		if (job->kind == CCID_PCSC_JOB_XFR && job->gen != sh->live_gen) {
			job_free(job);       /* cancelled before it started */
			continue;
		}
		g_mutex_unlock(&sh->lock);
		if (job->kind == CCID_PCSC_JOB_XFR)
			do_xfr(&w, job);
		else
			disconnect(&w);
		job_free(job);
		idle_end = g_get_monotonic_time() + (gint64)sh->idle_ms * 1000;
		g_mutex_lock(&sh->lock);
	}
	g_mutex_unlock(&sh->lock);

	drop_context(&w);
	g_free(w.resp);
	g_mutex_lock(&sh->lock);
	sh->worker_done = TRUE;
	g_cond_broadcast(&sh->cond);
	g_mutex_unlock(&sh->lock);
	ccid_pcsc_shared_unref(sh);
	return NULL;
}
