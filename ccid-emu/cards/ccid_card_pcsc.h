/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pcsc card: a real card in a host reader, shared through the host's
 * pcscd (libpcsclite).  The guest sees the real card's ATR and gets the
 * real card's answers, while host applications keep using the card.
 *
 * Sharing rules (docs/shared-mode.md has the whole story):
 *
 * - The backend connects in shared mode when the guest sends its first
 *   APDU after a power-on, and disconnects (leaving the card as it is)
 *   when the guest powers the card off.  A guest power-on does not reset
 *   the physical card: other applications may be using it.
 * - The guest's APDUs run inside a PC/SC transaction, taken at the first
 *   APDU and held until the guest has sent nothing for `idle_ms`, so no
 *   other application's APDU lands between two of the guest's (between a
 *   SELECT and the READ that follows it).
 * - While another application holds the card (an exclusive connection or
 *   a transaction of its own) the guest's APDU waits; the device keeps the
 *   guest's driver patient with time extensions.  After `lock_timeout_ms`
 *   the APDU fails with a hardware error and is never sent to the card.
 * - A reset by another application (SCARD_W_RESET_CARD) is reported to the
 *   guest as the card being pulled out and put back: the APDU that found
 *   the reset fails, and the slot signals a card change.
 * - Card insertion/removal and the reader disappearing or coming back are
 *   watched with SCardGetStatusChange on a thread of the backend's own
 *   and reach the slot through the owner's GMainContext.
 *
 * Threading: create, use and free a card on the thread that owns its
 * ccid_dev; that thread must iterate the GMainContext given in the config.
 * Each card runs two threads: a monitor (SCardGetStatusChange, stopped with
 * SCardCancel) and a worker (the blocking PC/SC calls: connect,
 * transactions, SCardTransmit).  Results come back to the owner as
 * sources on the context; a generation number makes sure a cancelled
 * operation never completes.
 *
 * libpcsclite reads PCSCLITE_CSOCK_NAME once per process, at the first
 * SCardEstablishContext: a process talks to a single pcscd.
 */
#ifndef CCID_EMU_CARD_PCSC_H
#define CCID_EMU_CARD_PCSC_H

#include <ccid-emu/ccid_emu.h>
#include <glib.h>

G_BEGIN_DECLS

#define CCID_CARD_PCSC_ERROR (ccid_card_pcsc_error_quark())
GQuark ccid_card_pcsc_error_quark(void);

enum ccid_card_pcsc_error {
	CCID_CARD_PCSC_ERROR_SPEC,        /* malformed card specification */
	CCID_CARD_PCSC_ERROR_NO_SERVICE,  /* pcscd is not running */
	CCID_CARD_PCSC_ERROR_NO_READER,   /* no reader matches */
	CCID_CARD_PCSC_ERROR_AMBIGUOUS,   /* several readers match */
	CCID_CARD_PCSC_ERROR_PCSC,        /* another PC/SC failure */
};

/* How long the guest's transaction outlives its last APDU. */
#define CCID_CARD_PCSC_DEFAULT_IDLE_MS          200u
/* How long an APDU waits for a card another application holds. */
#define CCID_CARD_PCSC_DEFAULT_LOCK_TIMEOUT_MS  30000u
/* Upper bounds accepted for both knobs (one hour). */
#define CCID_CARD_PCSC_MAX_MS                   3600000u

/* Things worth telling the user, reported on the owner thread. */
enum ccid_card_pcsc_event {
	CCID_CARD_PCSC_EVENT_INSERTED,      /* a card appeared in the reader */
	CCID_CARD_PCSC_EVENT_REMOVED,       /* the card left the reader */
	CCID_CARD_PCSC_EVENT_RESET,         /* another application reset it */
	CCID_CARD_PCSC_EVENT_LOCK_TIMEOUT,  /* an APDU gave up waiting */
	CCID_CARD_PCSC_EVENT_READER_GONE,   /* the reader disappeared */
	CCID_CARD_PCSC_EVENT_READER_BACK,   /* a matching reader (re)appeared */
	CCID_CARD_PCSC_EVENT_SERVICE_GONE,  /* pcscd stopped or is unreachable */
	CCID_CARD_PCSC_EVENT_ERROR,         /* a PC/SC call failed an APDU */
};

typedef void (*ccid_card_pcsc_event_fn)(void *user,
					enum ccid_card_pcsc_event ev,
					const char *detail);

struct ccid_card_pcsc_config {
	/* Exact reader name, or a substring matching exactly one reader;
	 * "" (or NULL) picks the only reader there is. */
	const char *reader;
	guint idle_ms;             /* 0 = end the transaction after each APDU */
	guint lock_timeout_ms;     /* >= 1 */
	GMainContext *context;     /* NULL = the thread-default context */
	ccid_card_pcsc_event_fn event;   /* may be NULL */
	void *event_user;
};

/* Defaults: reader "", CCID_CARD_PCSC_DEFAULT_*, no context, no event. */
void ccid_card_pcsc_config_init(struct ccid_card_pcsc_config *cfg);

/*
 * Parses the text after "pcsc:" on a command line:
 *
 *   READER[,idle=DURATION][,lock_timeout=DURATION]
 *
 * DURATION is a number of milliseconds, optionally with a unit suffix
 * "ms" or "s" ("200", "200ms", "30s").  Options are recognised at the end
 * only, so a reader name may itself contain commas.  *@reader receives a
 * newly allocated string; the durations of @cfg are set when given.
 */
gboolean ccid_card_pcsc_spec_parse(const char *text, char **reader,
				   struct ccid_card_pcsc_config *cfg,
				   GError **error);

typedef struct ccid_card_pcsc ccid_card_pcsc;

/* Connects to pcscd, picks the reader and reads its state; fails with a
 * clear message when pcscd is not running or the reader cannot be
 * chosen.  The caller then binds it with ccid_slot_set_card(slot,
 * ccid_card_pcsc_ops(), card, ccid_card_pcsc_is_present(card)). */
ccid_card_pcsc *ccid_card_pcsc_new(ccid_slot *slot,
				   const struct ccid_card_pcsc_config *cfg,
				   GError **error);
/* Accepts NULL.  Detach the card from its slot first (or free the device).
 * Stops both threads; a thread stuck inside pcscd (for instance waiting
 * for another application's transaction) is left to finish on its own
 * after a grace period, so this never blocks for long. */
void ccid_card_pcsc_free(ccid_card_pcsc *card);
const struct ccid_card_ops *ccid_card_pcsc_ops(void);

gboolean ccid_card_pcsc_is_present(const ccid_card_pcsc *card);
/* The full name of the reader in use (the last one matched). */
const char *ccid_card_pcsc_get_reader(const ccid_card_pcsc *card);

struct ccid_card_pcsc_stats {
	guint64 apdus;           /* APDUs that reached SCardTransmit */
	guint64 transactions;    /* PC/SC transactions begun */
	guint64 lock_waits;      /* APDUs that found the card held by another */
	guint64 lock_timeouts;   /* APDUs failed after lock_timeout_ms */
	guint64 resets;          /* resets by other applications reported */
	guint64 errors;          /* APDUs failed by a PC/SC error */
};
void ccid_card_pcsc_get_stats(const ccid_card_pcsc *card,
			      struct ccid_card_pcsc_stats *stats);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_card_pcsc, ccid_card_pcsc_free)

G_END_DECLS

#endif /* CCID_EMU_CARD_PCSC_H */
