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

ccid_card_piv *agent_piv_add(agent_cardset *cs, unsigned index,
			     const char *dir, GError **error)
{
	struct agent_card_spec spec = {
		.kind = AGENT_CARD_PIV,
		.piv_dir = (char *)dir,
	};

	/* The card set walks the card kinds table like for any --card. */
	return agent_cardset_add(cs, index, &spec, error);
}
