/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The nss card's seam, for fuzzing and tests (tests/fuzz/fuzz_nss_card.c),
 * like the pcsc card's ccid_pcsc_card_new_unstarted().
 *
 * Everything the nss backend learns from libcacard (and, through it, from
 * NSS and the token) comes from three calls its worker makes and from the
 * service's token events.  The seam replaces the first with a table and
 * lets the caller play the worker and the event thread, so whatever a
 * hostile token or a broken libcacard could hand over (answers of any
 * length and status, failures, an ATR of any length, insertions and
 * removals at any moment, an op that never comes back) goes through the
 * backend's own code on its way to the guest.
 */
#ifndef CCID_EMU_NSS_PRIVATE_H
#define CCID_EMU_NSS_PRIVATE_H

#include "ccid_card_nss.h"

#include <cacard/libcacard.h>

G_BEGIN_DECLS

/* What the worker calls, with libcacard's own signatures; a real card
 * uses vreader_power_on(), vreader_power_off() and vreader_xfr_bytes(). */
struct ccid_nss_reader_fns {
	VReaderStatus (*power_on)(VReader *reader, unsigned char *atr,
				  int *atr_len);
	VReaderStatus (*power_off)(VReader *reader);
	VReaderStatus (*xfr_bytes)(VReader *reader, unsigned char *send,
				   int send_len, unsigned char *recv,
				   int *recv_len);
};

/* A card bound to @slot with no libcacard service, no reader (@fns get a
 * NULL one) and no worker thread.  @present: the token is in at creation;
 * then the ATR is probed at once through @fns, as ccid_card_nss_new() does
 * on its worker.  @timeout_ms: each op's deadline (0 = the default); the
 * caller may end it early with ccid_nss_card_expire().  Results and
 * events go to the thread-default GMainContext.  Freed with
 * ccid_card_nss_free(), which runs what is still queued (a dead card's
 * jobs are dropped, as a stuck worker would never run them). */
ccid_card_nss *ccid_nss_card_new_unstarted(ccid_slot *slot,
					   const struct ccid_nss_reader_fns *fns,
					   gboolean present, guint timeout_ms);
/* Plays the worker: runs the oldest queued job through @fns on the calling
 * thread and posts its result, as the worker thread would.  FALSE when
 * none is queued. */
gboolean ccid_nss_card_run_job(ccid_card_nss *card);
/* Plays the service's event thread: the token went in or out. */
void ccid_nss_card_event(ccid_card_nss *card, gboolean present);
/* The op in flight misses its deadline now (its timer fires). */
void ccid_nss_card_expire(ccid_card_nss *card);

G_END_DECLS

#endif /* CCID_EMU_NSS_PRIVATE_H */
