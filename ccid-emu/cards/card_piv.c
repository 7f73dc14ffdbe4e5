/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual PIV card behind struct ccid_card_ops: a worker thread runs
 * the applet (ccid_piv_applet.h) on a store (ccid_piv_store.h) and posts
 * each answer back to the owner's context.
 *
 * Jobs run in the order the ops were called.  cancel() only bumps a
 * generation number: the job keeps running to its end (the applet's state
 * must stay whole, and a half-generated key is never saved), and its
 * result is dropped when it arrives.
 */
#include "ccid_card_piv.h"
#include "ccid_piv_applet.h"
#include "ccid_piv_store.h"

#include <string.h>
#include <unistd.h>

/* T=1 only: TS 3B, T0 8E (TD1, 14 historical bytes), TD1 81 (T=1, TD2),
 * TD2 31 (TA3 TB3, T=1), TA3 FE (IFSC 254), TB3 45 (BWI 4, CWI 5); then
 * category 80, card capabilities 73 C0 21 C0, card issuer's data 58
 * "ccid-PIV", and TCK. */
static const guint8 piv_atr[] = {
	0x3B, 0x8E, 0x81, 0x31, 0xFE, 0x45, 0x80, 0x73, 0xC0, 0x21, 0xC0,
	0x58, 'c', 'c', 'i', 'd', '-', 'P', 'I', 'V',
	0x00   /* TCK, filled in by ccid_card_piv_atr() */
};

const guint8 *ccid_card_piv_atr(gsize *len)
{
	static guint8 atr[sizeof(piv_atr)];
	static gsize once;

	if (g_once_init_enter(&once)) {
		guint8 tck = 0;

		memcpy(atr, piv_atr, sizeof(atr));
		for (gsize i = 1; i + 1 < sizeof(atr); i++)
			tck ^= atr[i];
		atr[sizeof(atr) - 1] = tck;
		g_once_init_leave(&once, 1);
	}
	*len = sizeof(atr);
	return atr;
}

enum job_kind { JOB_POWER_ON, JOB_POWER_OFF, JOB_XFR, JOB_QUIT };

/* What the worker and the posted results share; the card itself is only
 * touched on the owner thread. */
struct piv_shared {
	gint ref;
	piv_applet *applet;        /* worker thread only */
	char *dir;
	GMainContext *ctx;
	ccid_card_piv *card;       /* owner thread only; NULL once freed */
};

struct job {
	struct piv_shared *sh;
	enum job_kind kind;
	guint gen;
	guint8 *apdu;
	gsize len;
	guint8 *resp;
	gsize resp_len;
	char *save_error;          /* a failed save to report */
};

struct ccid_card_piv {
	ccid_slot *slot;           /* NULL once detached */
	struct piv_shared *sh;
	GThread *worker;
	GAsyncQueue *jobs;
	guint gen;                 /* bumped by cancel() */
	gboolean present;          /* in the reader (set_inserted) */
	gboolean created;
	int lock_fd;
	void (*store_error)(void *user, const char *message);
	void *user;
};

static struct piv_shared *shared_ref(struct piv_shared *sh)
{
	g_atomic_int_inc(&sh->ref);
	return sh;
}

static void shared_unref(struct piv_shared *sh)
{
	if (!g_atomic_int_dec_and_test(&sh->ref))
		return;
	piv_applet_free(sh->applet);
	g_main_context_unref(sh->ctx);
	g_free(sh->dir);
	g_free(sh);
}

static void job_free(struct job *j)
{
	shared_unref(j->sh);
	g_free(j->apdu);
	g_free(j->resp);
	g_free(j->save_error);
	g_free(j);
}

static gboolean job_done_cb(gpointer data)
{
	struct job *j = data;
	ccid_card_piv *card = j->sh->card;

	if (card == NULL)
		return G_SOURCE_REMOVE;
	if (j->save_error != NULL) {
		if (card->store_error != NULL)
			card->store_error(card->user, j->save_error);
		else
			g_debug("piv card: %s", j->save_error);
	}
	if (j->gen != card->gen || card->slot == NULL)
		return G_SOURCE_REMOVE;
	if (j->kind == JOB_POWER_ON) {
		gsize len;
		const guint8 *atr = ccid_card_piv_atr(&len);

		ccid_slot_power_on_done(card->slot, CCID_CARD_OK, atr, len);
	} else if (j->kind == JOB_XFR) {
		ccid_slot_apdu_done(card->slot, CCID_CARD_OK, j->resp,
				    j->resp_len);
	}
	return G_SOURCE_REMOVE;
}

static void post_done(struct job *j)
{
	GSource *src = g_idle_source_new();

	g_source_set_priority(src, G_PRIORITY_DEFAULT);
	g_source_set_callback(src, job_done_cb, j, (GDestroyNotify)job_free);
	g_source_set_name(src, "ccid-emu piv card result");
	g_source_attach(src, j->sh->ctx);
	g_source_unref(src);
}

static gpointer worker_main(gpointer data)
{
	GAsyncQueue *q = data;

	for (;;) {
		struct job *j = g_async_queue_pop(q);
		const char *err;

		if (j->kind == JOB_QUIT) {
			job_free(j);
			break;
		}
		if (j->kind == JOB_XFR) {
			j->resp = g_malloc(PIV_APPLET_RESP_CAP);
			j->resp_len = piv_applet_process(j->sh->applet, j->apdu,
							 j->len, j->resp);
			err = piv_applet_last_save_error(j->sh->applet);
			if (err != NULL)
				j->save_error = g_strdup(err);
		} else {
			/* Power on and off both leave a fresh session. */
			piv_applet_reset(j->sh->applet);
		}
		post_done(j);
	}
	g_async_queue_unref(q);
	return NULL;
}

static void queue_job(ccid_card_piv *card, enum job_kind kind,
		      const guint8 *apdu, gsize len)
{
	struct job *j = g_new0(struct job, 1);

	j->sh = shared_ref(card->sh);
	j->kind = kind;
	j->gen = card->gen;
	if (apdu != NULL) {
		j->apdu = g_memdup2(apdu, len);
		j->len = len;
	}
	g_async_queue_push(card->jobs, j);
}

static int piv_power_on(void *opaque)
{
	ccid_card_piv *card = opaque;

	if (card->slot == NULL)
		return -1;
	if (!card->present) {
		ccid_slot_power_on_done(card->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	queue_job(card, JOB_POWER_ON, NULL, 0);
	return 0;
}

static void piv_power_off(void *opaque)
{
	ccid_card_piv *card = opaque;

	queue_job(card, JOB_POWER_OFF, NULL, 0);
}

static int piv_transmit(void *opaque, const uint8_t *apdu, size_t len)
{
	ccid_card_piv *card = opaque;

	if (card->slot == NULL || len == 0 || len > CCID_EMU_MAX_APDU_CMD)
		return -1;
	if (!card->present) {
		ccid_slot_apdu_done(card->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	queue_job(card, JOB_XFR, apdu, len);
	return 0;
}

static void piv_cancel(void *opaque)
{
	ccid_card_piv *card = opaque;

	card->gen++;
}

static void piv_detach(void *opaque)
{
	ccid_card_piv *card = opaque;

	card->gen++;
	card->slot = NULL;
}

static const struct ccid_card_ops piv_ops = {
	.name = "piv",
	.power_on = piv_power_on,
	.power_off = piv_power_off,
	.transmit = piv_transmit,
	.cancel = piv_cancel,
	.detach = piv_detach,
};

const struct ccid_card_ops *ccid_card_piv_ops(void)
{
	return &piv_ops;
}

/* Runs on the worker thread, inside the applet. */
static gboolean save_to_store(void *user, const struct piv_data *d,
			      GError **error)
{
	struct piv_shared *sh = user;

	return ccid_piv_store_save(sh->dir, d, error);
}

ccid_card_piv *ccid_card_piv_new(ccid_slot *slot,
				 const struct ccid_card_piv_config *cfg,
				 GError **error)
{
	g_autofree char *dir = NULL;
	struct piv_data *d;
	ccid_card_piv *card;
	gboolean created = FALSE;
	int fd;

	g_return_val_if_fail(slot != NULL, NULL);
	dir = cfg != NULL && cfg->dir != NULL ? g_strdup(cfg->dir) :
		ccid_piv_store_default_dir();
	if (!ccid_piv_store_ensure(dir, &created, error))
		return NULL;
	fd = ccid_piv_store_lock(dir, error);
	if (fd < 0)
		return NULL;
	d = ccid_piv_store_load(dir, error);
	if (d == NULL) {
		close(fd);
		return NULL;
	}

	card = g_new0(ccid_card_piv, 1);
	card->slot = slot;
	card->present = TRUE;
	card->created = created;
	card->lock_fd = fd;
	if (cfg != NULL) {
		card->store_error = cfg->store_error;
		card->user = cfg->user;
	}
	card->sh = g_new0(struct piv_shared, 1);
	card->sh->ref = 1;
	card->sh->dir = g_steal_pointer(&dir);
	card->sh->ctx = cfg != NULL && cfg->context != NULL ?
		g_main_context_ref(cfg->context) :
		g_main_context_ref_thread_default();
	card->sh->card = card;
	card->sh->applet = piv_applet_new(d, save_to_store, card->sh);
	card->jobs = g_async_queue_new();
	card->worker = g_thread_new("ccid-piv-card", worker_main,
				    g_async_queue_ref(card->jobs));
	return card;
}

void ccid_card_piv_free(ccid_card_piv *card)
{
	struct job *quit;

	if (card == NULL)
		return;
	card->sh->card = NULL;
	quit = g_new0(struct job, 1);
	quit->sh = shared_ref(card->sh);
	quit->kind = JOB_QUIT;
	g_async_queue_push(card->jobs, quit);
	g_thread_join(card->worker);
	g_async_queue_unref(card->jobs);
	shared_unref(card->sh);
	if (card->lock_fd >= 0)
		close(card->lock_fd);
	g_free(card);
}

gboolean ccid_card_piv_is_present(const ccid_card_piv *card)
{
	return card->present;
}

void ccid_card_piv_set_inserted(ccid_card_piv *card, gboolean inserted)
{
	if (card->present == inserted)
		return;
	card->present = inserted;
	if (!inserted) {
		/* The slot cancels an op in flight; then the card loses power
		 * (and its session) as a real one would. */
		if (card->slot != NULL)
			ccid_slot_card_removed(card->slot);
		card->gen++;
		queue_job(card, JOB_POWER_OFF, NULL, 0);
	} else if (card->slot != NULL) {
		ccid_slot_card_inserted(card->slot);
	}
}

const char *ccid_card_piv_get_dir(const ccid_card_piv *card)
{
	return card->sh->dir;
}

gboolean ccid_card_piv_created(const ccid_card_piv *card)
{
	return card->created;
}
