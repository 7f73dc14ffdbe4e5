/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Card specifications and attaching cards (see agent_cards.h).
 */
#include "agent_cards.h"

#include <ccid_card_virtual.h>
#include <string.h>

const char *agent_card_kind_name(enum agent_card_kind kind)
{
	const struct agent_card_kind_info *k = agent_card_kind_get(kind);

	return k != NULL ? k->name : "unknown";
}

gboolean agent_card_spec_parse(const char *text, struct agent_card_spec *spec,
			       GError **error)
{
	const struct agent_card_kind_info *k = agent_card_kind_for_spec(text);
	size_t n;

	memset(spec, 0, sizeof(*spec));
	if (k == NULL) {
		g_autofree char *kinds = agent_card_kinds_syntax();

		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "unknown card '%s' (expected %s)",
			    text != NULL ? text : "", kinds);
		return FALSE;
	}
	spec->kind = k->kind;
	n = strlen(k->name);
	if (!k->parse(text[n] == ':' ? text + n + 1 : NULL, spec, error)) {
		agent_card_spec_clear(spec);
		return FALSE;
	}
	return TRUE;
}

gboolean agent_card_spec_set_nicknames(struct agent_card_spec *spec,
				       const char *list, GError **error)
{
	g_auto(GStrv) parts = g_strsplit(list, ",", -1);

	if (g_strv_length(parts) != 3) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--certs needs exactly three nicknames separated "
			    "by commas, got \"%s\"", list);
		return FALSE;
	}
	for (guint i = 0; i < 3; i++) {
		if (parts[i][0] == '\0') {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "--certs: nickname %u is empty", i + 1);
			return FALSE;
		}
	}
	g_strfreev(spec->nicknames);
	spec->nicknames = g_steal_pointer(&parts);
	return TRUE;
}

void agent_card_spec_clear(struct agent_card_spec *spec)
{
	g_clear_pointer(&spec->nssdb_dir, g_free);
	g_clear_pointer(&spec->nicknames, g_strfreev);
	g_clear_pointer(&spec->reader, g_free);
	g_clear_pointer(&spec->token, g_free);
	g_clear_pointer(&spec->piv_dir, g_free);
}

gboolean agent_cards_add(agent_cardset *cs, const struct agent_card_spec *spec,
			 unsigned n_slots, char **db_dir, gboolean *created_db,
			 GError **error)
{
	if (created_db != NULL)
		*created_db = FALSE;
	for (unsigned i = 0; i < n_slots; i++) {
		gpointer card = agent_cardset_add(cs, i, spec, error);

		if (card == NULL) {
			g_prefix_error(error, "slot %u: ", i);
			return FALSE;
		}
		/* The virtual card may have generated its database now,
		 * which the caller tells the user about. */
		if (spec->kind != AGENT_CARD_VIRTUAL)
			continue;
		if (created_db != NULL && ccid_card_virtual_created_db(card))
			*created_db = TRUE;
		if (db_dir != NULL && *db_dir == NULL)
			*db_dir = g_strdup(ccid_card_virtual_get_nssdb_dir(card));
	}
	return TRUE;
}

gboolean agent_cards_attach(agent_transport *t, const struct agent_card_spec *spec,
			    unsigned n_slots, char **db_dir,
			    gboolean *created_db, GError **error)
{
	agent_cardset *cs = agent_transport_get_cardset(t);

	if (cs == NULL) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "no device to put cards in");
		return FALSE;
	}
	return agent_cards_add(cs, spec, n_slots, db_dir, created_db, error);
}
