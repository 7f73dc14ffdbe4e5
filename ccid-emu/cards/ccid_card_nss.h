/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The nss card: libcacard re-emulating a PKCS#11 token as a CAC card
 * (libcacard's "hardware" mode).  The NSS database names the PKCS#11
 * module(s) (modutil -add); every removable slot of those modules is one
 * libcacard reader, and token insertion/removal are card events.  The
 * guest sees a CAC card whose certificates are the token's and whose
 * private-key operations run on the token, after the guest's VERIFY (the
 * token's user PIN).
 *
 * libcacard is set up through the process-wide service
 * (ccid_cacard_service.h), so virtual (soft) cards and nss cards can live in
 * one process if both are asked for before the first card.
 *
 * Why a worker thread and a deadline: with a module that does not implement
 * C_WaitForSlotEvent (softhsm2 among others), NSS simulates token events by
 * polling the module's slots from libcacard's event thread, and NSS 3.87
 * (Debian 12) can deadlock between that polling and a login (VERIFY): the
 * poller walks NSS's certificate cache and waits for an object's monitor
 * while the login thread holds it and waits for a lock the poller holds.
 * Neither libcacard nor this backend holds a lock on that path, so the
 * deadlock cannot be prevented from outside NSS.  Every libcacard call that
 * can reach NSS (power on/off, APDUs) therefore runs on a worker thread of
 * the card, and each one has a deadline (apdu_timeout_ms).  When it passes,
 * the op fails with a hardware error, the card is marked unusable and
 * reported removed (the guest gets NotifySlotChange), a warning is logged,
 * and the stuck thread and its reader are abandoned: nothing of this
 * backend ever waits for them again.  The agent keeps running; the token
 * stays unusable until the process is restarted, because NSS's locks stay
 * taken.
 *
 * Threading: create, use and free a card on the thread that owns its
 * ccid_dev; that thread must iterate the GMainContext of the config.
 */
#ifndef CCID_EMU_CARD_NSS_H
#define CCID_EMU_CARD_NSS_H

#include <ccid-emu/ccid_emu.h>
#include <glib.h>

G_BEGIN_DECLS

#define CCID_CARD_NSS_DEFAULT_TIMEOUT_MS 10000u
#define CCID_CARD_NSS_MAX_TIMEOUT_MS 600000u

struct ccid_card_nss_config {
	/* NSS database directory whose PKCS#11 modules hold the tokens. */
	const char *nssdb_dir;
	/* Token label (or PKCS#11 slot name) to use; NULL = the first reader
	 * not in use, preferring one that holds a token. */
	const char *token;
	/* Deadline for one op (power on, APDU); 0 = the default. */
	guint apdu_timeout_ms;
	/* Where results and events are delivered; NULL = thread default. */
	GMainContext *context;
};

typedef struct ccid_card_nss ccid_card_nss;

/* Parses the part after "nss:" of a --card spec: "DB[,token=NAME]
 * [,timeout=MS]".  Strings are newly allocated; @token is NULL when not
 * given, @timeout_ms 0. */
gboolean ccid_card_nss_spec_parse(const char *text, char **nssdb_dir,
				  char **token, guint *timeout_ms,
				  GError **error);

/* Creates a card bound to @slot, borrowing one token reader.  Attach it
 * with ccid_slot_set_card(slot, ccid_card_nss_ops(), card,
 * ccid_card_nss_is_present(card)).  Errors are CCID_CARD_VIRTUAL_ERROR. */
ccid_card_nss *ccid_card_nss_new(ccid_slot *slot,
				 const struct ccid_card_nss_config *cfg,
				 GError **error);
/* Accepts NULL.  Detach it from its slot first (or free the device).
 * Waits at most the card's deadline for its worker. */
void ccid_card_nss_free(ccid_card_nss *card);
const struct ccid_card_ops *ccid_card_nss_ops(void);

gboolean ccid_card_nss_is_present(const ccid_card_nss *card);
/* Whether an op missed its deadline (see above): the card is dead. */
gboolean ccid_card_nss_is_unusable(const ccid_card_nss *card);
/* The ATR the card presents while a token is in (learnt with a power-on
 * at creation when the token was in, and at every power-on since):
 * written to @atr (room for CCID_EMU_MAX_ATR bytes); its length, 0 when
 * not known, without a token, or once the card is unusable. */
gsize ccid_card_nss_get_atr(const ccid_card_nss *card, guint8 *atr);
/* libcacard's reader, i.e. the PKCS#11 slot name. */
const char *ccid_card_nss_get_reader(const ccid_card_nss *card);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_card_nss, ccid_card_nss_free)

G_END_DECLS

#endif /* CCID_EMU_CARD_NSS_H */
