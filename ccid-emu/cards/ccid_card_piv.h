/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual PIV card: a writable NIST SP 800-73-4 PIV card (with the
 * Yubico extensions yubico-piv-tool needs) whose state lives in a directory
 * on the host (ccid_piv_store.h).  It is a test and development card: its
 * keys live in a file, not in a secure element.  Commands and security
 * conditions: ccid_piv_applet.h and docs/piv-card.md.
 *
 * Its ATR offers T=1 only and carries the historical bytes "ccid-PIV".
 *
 * Threading: create, use and free a card on the thread that owns its
 * ccid_dev; that thread must iterate the GMainContext of the config.  Every
 * APDU runs on the card's own worker thread, because some take a while (an
 * RSA-2048 key generation takes up to a second or more, and each change is
 * written and fsynced before the answer); the device sends the guest time
 * extensions meanwhile.  Results come back through an idle source on the
 * context.
 */
#ifndef CCID_EMU_CARD_PIV_H
#define CCID_EMU_CARD_PIV_H

#include <ccid-emu/ccid_emu.h>
#include <glib.h>

G_BEGIN_DECLS

struct ccid_card_piv_config {
	/* The card's directory; NULL = ccid_piv_store_default_dir().  A
	 * missing card is created with the defaults (PIN 123456, PUK
	 * 12345678, 3DES management key 0102..08 three times). */
	const char *dir;
	/* Where results are delivered; NULL = thread default. */
	GMainContext *context;
	/* Called on the context's thread when a change could not be saved
	 * (the guest got 65 81); NULL = g_debug(). */
	void (*store_error)(void *user, const char *message);
	void *user;
};

typedef struct ccid_card_piv ccid_card_piv;

/* Creates (on first use), locks and loads the card's store, and binds the
 * card to @slot.  Attach it with ccid_slot_set_card(slot,
 * ccid_card_piv_ops(), card, true).  Errors are CCID_PIV_STORE_ERROR and
 * name the file. */
ccid_card_piv *ccid_card_piv_new(ccid_slot *slot,
				 const struct ccid_card_piv_config *cfg,
				 GError **error);
/* Accepts NULL.  Detach it from its slot first (or free the device).
 * Waits for an operation still running on the worker (a key generation). */
void ccid_card_piv_free(ccid_card_piv *card);
const struct ccid_card_ops *ccid_card_piv_ops(void);

/* Whether the card is in its reader (it is after creation), and pulling
 * it out / pushing it back: the slot is told at once (NotifySlotChange);
 * a card pulled out loses its session (PIN verification, management-key
 * authentication) like a real one. */
gboolean ccid_card_piv_is_present(const ccid_card_piv *card);
void ccid_card_piv_set_inserted(ccid_card_piv *card, gboolean inserted);

/* The store directory in use, and whether this card's creation made it. */
const char *ccid_card_piv_get_dir(const ccid_card_piv *card);
gboolean ccid_card_piv_created(const ccid_card_piv *card);

/* The card's ATR (for tests and reports). */
const guint8 *ccid_card_piv_atr(gsize *len);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_card_piv, ccid_card_piv_free)

G_END_DECLS

#endif /* CCID_EMU_CARD_PIV_H */
