/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside the pcsc card: the state its three parties share.
 *
 *   owner thread   card_pcsc.c     ccid_card_ops, the slot, the timers
 *   monitor thread pcsc_monitor.c  SCardGetStatusChange: card and reader
 *   worker thread  pcsc_worker.c   connect, transactions, SCardTransmit
 *
 * The threads never touch the slot.  They post messages to the owner's
 * GMainContext (ccid_pcsc_post); the owner matches results against the
 * generation of the operation it still waits for and drops the rest, which
 * is what makes cancel() final.  Everything below `lock` is protected by
 * it; the struct is reference counted because a thread stuck inside pcscd
 * may outlive the card.
 */
#ifndef CCID_EMU_PCSC_PRIVATE_H
#define CCID_EMU_PCSC_PRIVATE_H

#include "ccid_card_pcsc.h"
#include "ccid_pcsc_client.h"

#include <winscard.h>

G_BEGIN_DECLS

/* How often a worker retries SCardConnect while another application has
 * the card exclusively (pcsc-lite itself polls locks at 100 ms). */
#define CCID_PCSC_LOCK_RETRY_MS     100u
/* How long the monitor waits before trying a pcscd that went away again. */
#define CCID_PCSC_SERVICE_RETRY_MS  1000u
/* How long free() waits for a thread before leaving it to finish alone. */
#define CCID_PCSC_STOP_GRACE_MS     2000u
/* Receive buffer: the largest response APDU, 64 KiB + SW1 SW2. */
#define CCID_PCSC_RESP_CAP          CCID_EMU_MAX_APDU_RESP

enum ccid_pcsc_job_kind {
	CCID_PCSC_JOB_XFR,         /* transmit one APDU for generation gen */
	CCID_PCSC_JOB_DISCONNECT,  /* end the transaction, leave the card */
};

struct ccid_pcsc_job {
	enum ccid_pcsc_job_kind kind;
	guint64 gen;
	guint8 *apdu;
	gsize len;
};

struct ccid_pcsc_shared {
	gatomicrefcount ref;
	GMainContext *ctx;          /* the owner's */
	char *pattern;              /* reader pattern, immutable */
	guint idle_ms;              /* immutable */

	GMutex lock;
	GCond cond;                 /* jobs, stop, live_gen changes */
	char *reader;               /* matched reader; NULL while none */
	GQueue jobs;                /* struct ccid_pcsc_job * */
	guint64 live_gen;           /* the XFR the owner waits for; 0 = none */
	guint64 acquired_gen;       /* that XFR has the card, now transmitting */
	gboolean stop;
	gboolean monitor_done, worker_done;
	SCARDCONTEXT mon_ctx;       /* valid while mon_ctx_set */
	gboolean mon_ctx_set;
	guint64 n_apdus, n_transactions, n_lock_waits;

	/* Owner thread only. */
	ccid_card_pcsc *card;       /* NULL once the card is freed */
};

/* What the monitor saw; posted whenever it differs from the last post. */
struct ccid_pcsc_state {
	gboolean service;           /* pcscd reachable */
	char *reader;               /* matched reader, NULL if none */
	gboolean present;
	gboolean mute;
	guint counter;              /* pcsc-lite's per-reader event counter */
	guint8 atr[CCID_EMU_MAX_ATR];
	gsize atr_len;
	char *detail;               /* why the reader or service is missing */
};

/* The worker's answer to one XFR job. */
struct ccid_pcsc_result {
	guint64 gen;
	enum ccid_card_status st;
	gboolean reset;             /* another application reset the card */
	guint8 *resp;
	gsize len;
	char *why;                  /* failure detail for the event callback */
};

struct ccid_pcsc_shared *ccid_pcsc_shared_ref(struct ccid_pcsc_shared *sh);
void ccid_pcsc_shared_unref(struct ccid_pcsc_shared *sh);

void ccid_pcsc_state_clear(struct ccid_pcsc_state *st);
void ccid_pcsc_state_copy(struct ccid_pcsc_state *dst,
			  const struct ccid_pcsc_state *src);
gboolean ccid_pcsc_state_equal(const struct ccid_pcsc_state *a,
			       const struct ccid_pcsc_state *b);

/* Owner-side handlers (card_pcsc.c); the threads post these. */
void ccid_pcsc_post_state(struct ccid_pcsc_shared *sh,
			  const struct ccid_pcsc_state *st);
void ccid_pcsc_post_result(struct ccid_pcsc_shared *sh,
			   struct ccid_pcsc_result *res);

/* Thread bodies; each holds a reference to @sh and drops it on exit. */
gpointer ccid_pcsc_monitor_run(gpointer sh);
gpointer ccid_pcsc_worker_run(gpointer sh);

/* Reader selection (pcsc_readers.c).  @list is a PC/SC multi-string
 * (names separated by NUL, ending with an empty name). */
enum ccid_pcsc_match {
	CCID_PCSC_MATCH_ONE,
	CCID_PCSC_MATCH_NONE,
	CCID_PCSC_MATCH_MANY,
};
enum ccid_pcsc_match ccid_pcsc_reader_match(const char *list, gsize len,
					    const char *pattern,
					    char **match);
/* "'A', 'B'" for messages; "none" for an empty list. */
char *ccid_pcsc_reader_list_text(const char *list, gsize len,
				 const char *only_matching);
/* Readers pcscd knows now, as a multi-string; NULL with *rv set. */
char *ccid_pcsc_list_readers(SCARDCONTEXT ctx, gsize *len, LONG *rv);
/* English name of a PC/SC return value, never NULL. */
const char *ccid_pcsc_strerror(LONG rv);

/* The seam between the card and its two threads, for fuzzing and tests:
 * a card in @initial's state with no worker, no monitor and no pcscd.
 * Its owner plays both threads: it takes the jobs off
 * ccid_pcsc_card_shared(card)->jobs (under the lock) and answers with
 * ccid_pcsc_post_result(), and reports what a monitor would see with
 * ccid_pcsc_post_state(), so everything a card or pcscd returns reaches
 * the same code as in real use.  NULL for a bad @cfg.  Freed with
 * ccid_card_pcsc_free(). */
ccid_card_pcsc *ccid_pcsc_card_new_unstarted(ccid_slot *slot,
					     const struct ccid_card_pcsc_config *cfg,
					     const struct ccid_pcsc_state *initial);
struct ccid_pcsc_shared *ccid_pcsc_card_shared(ccid_card_pcsc *card);

G_END_DECLS

#endif /* CCID_EMU_PCSC_PRIVATE_H */
