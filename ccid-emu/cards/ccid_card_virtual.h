/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual card: a CAC card emulated by libcacard in soft mode, backed by
 * three certificates with private keys from an NSS database.
 *
 * With no database given it uses the embedded default, created on first use
 * (ccid_virtual_nssdb.h), so it works with no manual step.
 *
 * Threading: create, use and free a card on the thread that owns its
 * ccid_dev.  Card insert/remove events from libcacard arrive on the
 * GMainContext given at creation (the thread-default one if NULL), which must
 * be iterated by that thread.  APDUs are processed synchronously inside
 * transmit(): a soft card answers in microseconds, an RSA-2048 private-key
 * operation in about a millisecond, which is not worth a thread hop.
 */
#ifndef CCID_EMU_CARD_VIRTUAL_H
#define CCID_EMU_CARD_VIRTUAL_H

#include <ccid-emu/ccid_emu.h>
#include <glib.h>

G_BEGIN_DECLS

#define CCID_CARD_VIRTUAL_ERROR (ccid_card_virtual_error_quark())
GQuark ccid_card_virtual_error_quark(void);

enum ccid_card_virtual_error {
	CCID_CARD_VIRTUAL_ERROR_NO_DB,          /* directory missing or holds no NSS DB */
	CCID_CARD_VIRTUAL_ERROR_UNREADABLE,     /* directory or DB files not readable */
	CCID_CARD_VIRTUAL_ERROR_NSS,            /* NSS refused to open / read the DB */
	CCID_CARD_VIRTUAL_ERROR_TOO_FEW_CERTS,  /* fewer than three usable certs */
	CCID_CARD_VIRTUAL_ERROR_NO_CERT,        /* a requested nickname is absent or keyless */
	CCID_CARD_VIRTUAL_ERROR_BAD_NICKNAME,   /* nickname libcacard cannot be given */
	CCID_CARD_VIRTUAL_ERROR_NO_CERTUTIL,    /* certutil not found in PATH */
	CCID_CARD_VIRTUAL_ERROR_CERTUTIL,       /* certutil failed */
	CCID_CARD_VIRTUAL_ERROR_CREATE,         /* filesystem error while creating the DB */
	CCID_CARD_VIRTUAL_ERROR_CONFLICT,       /* libcacard already set up differently */
	CCID_CARD_VIRTUAL_ERROR_LIBCACARD,      /* libcacard failed */
	CCID_CARD_VIRTUAL_ERROR_BUSY,           /* every soft reader is in use */
};

struct ccid_card_virtual_config {
	/* NSS database directory; NULL = the embedded default, created if it
	 * does not exist. */
	const char *nssdb_dir;
	/* Nicknames of the three certificates (CAC PKI applets 0, 1, 2); NULL
	 * = the generated ones for the default DB, or for another DB the first
	 * three certificates with private keys in nickname order. */
	const char *const *cert_nicknames;
	/* Where insert/remove events are delivered; NULL = thread default. */
	GMainContext *context;
};

typedef struct ccid_card_virtual ccid_card_virtual;

/* Creates a card bound to @slot.  The caller then attaches it with
 * ccid_slot_set_card(slot, ccid_card_virtual_ops(), card,
 * ccid_card_virtual_is_present(card)). */
ccid_card_virtual *ccid_card_virtual_new(ccid_slot *slot,
					 const struct ccid_card_virtual_config *cfg,
					 GError **error);
/* Accepts NULL.  Detach the card from its slot first (or free the device). */
void ccid_card_virtual_free(ccid_card_virtual *card);
const struct ccid_card_ops *ccid_card_virtual_ops(void);

gboolean ccid_card_virtual_is_present(const ccid_card_virtual *card);
/* The ATR the card presents (learnt with a power-on at creation, when a
 * card was in): written to @atr (room for CCID_EMU_MAX_ATR bytes); its
 * length, 0 when not known. */
gsize ccid_card_virtual_get_atr(const ccid_card_virtual *card, guint8 *atr);
/* Simulates pulling the card out of / pushing it back into its reader.  The
 * slot learns about it through the libcacard event, on the card's main
 * context. */
gboolean ccid_card_virtual_set_inserted(ccid_card_virtual *card,
					gboolean inserted, GError **error);

/* The database directory in use and the three nicknames (for reports). */
const char *ccid_card_virtual_get_nssdb_dir(const ccid_card_virtual *card);
const char *const *ccid_card_virtual_get_nicknames(const ccid_card_virtual *card);
/* Whether this card's creation generated the default database. */
gboolean ccid_card_virtual_created_db(const ccid_card_virtual *card);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_card_virtual, ccid_card_virtual_free)

G_END_DECLS

#endif /* CCID_EMU_CARD_VIRTUAL_H */
