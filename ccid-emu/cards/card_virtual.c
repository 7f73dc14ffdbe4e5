/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual CAC card backend: one libcacard soft reader borrowed from the
 * process-wide service, driven through struct ccid_card_ops.
 */
#include "ccid_card_virtual.h"
#include "ccid_cacard_service.h"
#include "ccid_virtual_nssdb.h"

#include <string.h>

G_DEFINE_QUARK(ccid-card-virtual-error-quark, ccid_card_virtual_error)

struct ccid_card_virtual {
	ccid_slot *slot;            /* NULL once detached */
	ccid_cacard_service *svc;
	VReader *reader;
	guint watch_id;
	gboolean present;
	gboolean powered;
	gboolean created_db;
	guint8 atr[CCID_EMU_MAX_ATR];   /* the last ATR the card presented */
	gsize atr_len;                  /* 0: not known */
	/* Command copy (libcacard's API takes a non-const buffer) and the
	 * response, one byte larger than the largest legal answer so that a
	 * truncated answer can be told from a full one: vreader_xfr_bytes()
	 * silently cuts what does not fit. */
	guint8 *cmd;
	guint8 *resp;
};

#define VIRTUAL_RESP_CAP (CCID_EMU_MAX_APDU_RESP + 1u)

static int virtual_power_on(void *opaque)
{
	ccid_card_virtual *card = opaque;
	guint8 atr[CCID_EMU_MAX_ATR];
	int atr_len = (int)sizeof(atr);
	VReaderStatus st;

	if (card->slot == NULL)
		return -1;
	st = vreader_power_on(card->reader, atr, &atr_len);
	if (st != VREADER_OK) {
		card->powered = FALSE;
		ccid_slot_power_on_done(card->slot,
					st == VREADER_NO_CARD ? CCID_CARD_ENOCARD :
								CCID_CARD_EHW,
					NULL, 0);
		return 0;
	}
	card->powered = TRUE;
	if (atr_len > 0 && atr_len <= (int)sizeof(card->atr)) {
		memcpy(card->atr, atr, (size_t)atr_len);
		card->atr_len = (gsize)atr_len;
	}
	ccid_slot_power_on_done(card->slot, CCID_CARD_OK, atr, (size_t)atr_len);
	return 0;
}

static void virtual_power_off(void *opaque)
{
	ccid_card_virtual *card = opaque;

	card->powered = FALSE;
	(void)vreader_power_off(card->reader);
}

static int virtual_transmit(void *opaque, const uint8_t *apdu, size_t len)
{
	ccid_card_virtual *card = opaque;
	int resp_len = (int)VIRTUAL_RESP_CAP;
	VReaderStatus st;

	if (card->slot == NULL || len == 0 || len > CCID_EMU_MAX_APDU_CMD)
		return -1;
	/* libcacard keeps answering APDUs after vreader_power_off(); a card
	 * that is off must not. */
	if (!card->powered) {
		ccid_slot_apdu_done(card->slot, CCID_CARD_EMUTE, NULL, 0);
		return 0;
	}

	memcpy(card->cmd, apdu, len);
	st = vreader_xfr_bytes(card->reader, card->cmd, (int)len, card->resp,
			       &resp_len);
	if (st == VREADER_NO_CARD) {
		ccid_slot_apdu_done(card->slot, CCID_CARD_ENOCARD, NULL, 0);
		return 0;
	}
	if (st != VREADER_OK || resp_len < 2 ||
	    (size_t)resp_len > CCID_EMU_MAX_APDU_RESP) {
		g_debug("virtual card: libcacard answered status %d with %d "
			"bytes", (int)st, resp_len);
		ccid_slot_apdu_done(card->slot, CCID_CARD_EHW, NULL, 0);
		return 0;
	}
	ccid_slot_apdu_done(card->slot, CCID_CARD_OK, card->resp,
			    (size_t)resp_len);
	return 0;
}

/* Nothing is ever in flight: power_on and transmit complete before they
 * return. */
static void virtual_cancel(void *opaque)
{
}

static void virtual_detach(void *opaque)
{
	ccid_card_virtual *card = opaque;

	card->slot = NULL;
}

static const struct ccid_card_ops virtual_ops = {
	.name = "virtual-cac",
	.power_on = virtual_power_on,
	.power_off = virtual_power_off,
	.transmit = virtual_transmit,
	.cancel = virtual_cancel,
	.detach = virtual_detach,
};

const struct ccid_card_ops *ccid_card_virtual_ops(void)
{
	return &virtual_ops;
}

static void virtual_card_event(void *user, gboolean present)
{
	ccid_card_virtual *card = user;

	/* Soft readers replay state, so only changes reach the slot. */
	if (present == card->present)
		return;
	card->present = present;
	if (!present)
		card->powered = FALSE;
	if (card->slot == NULL)
		return;
	if (present)
		ccid_slot_card_inserted(card->slot);
	else
		ccid_slot_card_removed(card->slot);
}

ccid_card_virtual *ccid_card_virtual_new(ccid_slot *slot,
					 const struct ccid_card_virtual_config *cfg,
					 GError **error)
{
	static const char *const default_nicks[] = {
		CCID_NSSDB_NICK_ID, CCID_NSSDB_NICK_SIGN, CCID_NSSDB_NICK_ENC,
		NULL
	};
	struct ccid_cacard_config scfg = { 0 };
	g_autofree char *default_dir = NULL;
	g_autoptr(ccid_card_virtual) card = NULL;
	GMainContext *ctx;

	g_return_val_if_fail(slot != NULL, NULL);

	card = g_new0(ccid_card_virtual, 1);
	scfg.soft_nicknames = cfg != NULL ? cfg->cert_nicknames : NULL;
	if (cfg != NULL && cfg->nssdb_dir != NULL) {
		scfg.nssdb_dir = cfg->nssdb_dir;
	} else {
		default_dir = ccid_nssdb_default_dir();
		if (!ccid_nssdb_ensure(default_dir, &card->created_db, error))
			return NULL;
		scfg.nssdb_dir = default_dir;
		if (scfg.soft_nicknames == NULL)
			scfg.soft_nicknames = default_nicks;
	}

	card->svc = ccid_cacard_service_get(&scfg, error);
	if (card->svc == NULL)
		return NULL;
	card->reader = ccid_cacard_service_acquire_reader(card->svc, error);
	if (card->reader == NULL)
		return NULL;

	card->cmd = g_malloc(CCID_EMU_MAX_APDU_CMD);
	card->resp = g_malloc(VIRTUAL_RESP_CAP);
	card->slot = slot;
	ctx = cfg != NULL && cfg->context != NULL ?
		cfg->context : g_main_context_get_thread_default();
	/* Watch before reading the state, so no change falls in between. */
	card->watch_id = ccid_cacard_service_watch(card->svc, card->reader,
						   ctx, virtual_card_event,
						   card);
	card->present = vreader_card_is_present(card->reader) == VREADER_OK;
	/* The ATR for ccid_card_virtual_get_atr(): only libcacard knows it,
	 * and only by a power-on.  Off again below, before any guest. */
	if (card->present) {
		int len = (int)sizeof(card->atr);

		if (vreader_power_on(card->reader, card->atr, &len) ==
		    VREADER_OK && len > 0 && len <= (int)sizeof(card->atr))
			card->atr_len = (gsize)len;
	}
	/* Start from a clean card even if a previous user left it on. */
	(void)vreader_power_off(card->reader);
	return g_steal_pointer(&card);
}

void ccid_card_virtual_free(ccid_card_virtual *card)
{
	if (card == NULL)
		return;
	if (card->watch_id != 0)
		ccid_cacard_service_unwatch(card->svc, card->watch_id);
	if (card->reader != NULL)
		ccid_cacard_service_release_reader(card->svc, card->reader);
	g_free(card->cmd);
	g_free(card->resp);
	g_free(card);
}

gboolean ccid_card_virtual_is_present(const ccid_card_virtual *card)
{
	return card->present;
}

gboolean ccid_card_virtual_set_inserted(ccid_card_virtual *card,
					gboolean inserted, GError **error)
{
	gboolean now = vreader_card_is_present(card->reader) == VREADER_OK;
	VCardEmulError rc;

	if (now == inserted)
		return TRUE;
	rc = inserted ? vcard_emul_force_card_insert(card->reader) :
			vcard_emul_force_card_remove(card->reader);
	if (rc != VCARD_EMUL_OK) {
		g_set_error(error, CCID_CARD_VIRTUAL_ERROR,
			    CCID_CARD_VIRTUAL_ERROR_LIBCACARD,
			    "libcacard could not %s the virtual card",
			    inserted ? "insert" : "remove");
		return FALSE;
	}
	return TRUE;
}

const char *ccid_card_virtual_get_nssdb_dir(const ccid_card_virtual *card)
{
	return ccid_cacard_service_nssdb_dir(card->svc);
}

const char *const *ccid_card_virtual_get_nicknames(const ccid_card_virtual *card)
{
	return ccid_cacard_service_nicknames(card->svc);
}

gboolean ccid_card_virtual_created_db(const ccid_card_virtual *card)
{
	return card->created_db;
}

gsize ccid_card_virtual_get_atr(const ccid_card_virtual *card, guint8 *atr)
{
	memcpy(atr, card->atr, card->atr_len);
	return card->atr_len;
}
