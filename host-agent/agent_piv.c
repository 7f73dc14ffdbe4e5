/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual PIV card in a card set (see agent_piv.h).
 */
#include "agent_piv.h"

#include <ccid_piv_store.h>

char *agent_piv_slot_dir(const char *dir, unsigned index)
{
	g_autofree char *base = dir != NULL ? g_strdup(dir) :
				ccid_piv_store_default_dir();

	if (index == 0)
		return g_steal_pointer(&base);
	return g_strdup_printf("%s-%u", base, index);
}

static void piv_free_notify(gpointer p)
{
	ccid_card_piv_free(p);
}

static gboolean piv_is_present(gpointer card)
{
	return ccid_card_piv_is_present(card);
}

static void piv_set_inserted(gpointer card, gboolean inserted)
{
	ccid_card_piv_set_inserted(card, inserted);
}

static const struct agent_cardset_card_class piv_class = {
	.name = "piv",
	.is_present = piv_is_present,
	.set_inserted = piv_set_inserted,
};

static void piv_store_error(void *user, const char *message)
{
	g_warning("slot %u: PIV card not saved: %s", GPOINTER_TO_UINT(user),
		  message);
}

ccid_card_piv *agent_piv_add(agent_cardset *cs, unsigned index,
			     const char *dir, GError **error)
{
	g_autofree char *slot_dir = agent_piv_slot_dir(dir, index);
	struct ccid_card_piv_config cfg = { 0 };
	ccid_dev *dev = agent_cardset_get_dev(cs);
	ccid_slot *slot = dev != NULL ? ccid_dev_get_slot(dev, index) : NULL;
	ccid_card_piv *card;

	if (slot == NULL) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "no slot %u on the device", index);
		return NULL;
	}
	cfg.dir = slot_dir;
	cfg.context = agent_cardset_get_context(cs);
	cfg.store_error = piv_store_error;
	cfg.user = GUINT_TO_POINTER(index);
	card = ccid_card_piv_new(slot, &cfg, error);
	if (card == NULL)
		return NULL;
	if (!agent_cardset_add_card(cs, index, &piv_class, card,
				    piv_free_notify, error)) {
		ccid_card_piv_free(card);
		return NULL;
	}
	ccid_slot_set_card(slot, ccid_card_piv_ops(), card, true);
	g_message("slot %u: virtual PIV card in %s%s", index,
		  ccid_card_piv_get_dir(card),
		  ccid_card_piv_created(card) ?
			  " (created now: PIN 123456, PUK 12345678, default "
			  "management key)" : "");
	return card;
}
