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

#define PIN_GUARD_OPTION ",pin_guard="

/* Takes the ",pin_guard=VALUE" option, which every kind accepts, out of
 * @text (a copy the caller frees) and sets spec->pin_guard. */
static gboolean take_pin_guard(char *text, struct agent_card_spec *spec,
			       GError **error)
{
	char *opt, *value, *end;

	spec->pin_guard = CCID_PIN_GUARD_KEEP_LAST;
	while ((opt = strstr(text, PIN_GUARD_OPTION)) != NULL) {
		value = opt + strlen(PIN_GUARD_OPTION);
		end = strchr(value, ',');
		if (end == NULL)
			end = value + strlen(value);
		if ((size_t)(end - value) == strlen("keep-last") &&
		    strncmp(value, "keep-last", (size_t)(end - value)) == 0) {
			spec->pin_guard = CCID_PIN_GUARD_KEEP_LAST;
		} else if ((size_t)(end - value) == strlen("off") &&
			   strncmp(value, "off", (size_t)(end - value)) == 0) {
			spec->pin_guard = CCID_PIN_GUARD_OFF;
		} else {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "card option 'pin_guard=%.*s': expected "
				    "pin_guard=keep-last (keep the card's last "
				    "PIN try for the host user, the default) or "
				    "pin_guard=off", (int)(end - value), value);
			return FALSE;
		}
		memmove(opt, end, strlen(end) + 1);
	}
	return TRUE;
}

gboolean agent_card_spec_parse(const char *text, struct agent_card_spec *spec,
			       GError **error)
{
	g_autofree char *rest = g_strdup(text);
	const struct agent_card_kind_info *k;
	enum ccid_pin_guard_policy pin_guard;
	size_t n;

	memset(spec, 0, sizeof(*spec));
	if (rest != NULL && !take_pin_guard(rest, spec, error))
		return FALSE;
	pin_guard = spec->pin_guard;
	text = rest;
	k = agent_card_kind_for_spec(text);
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
	spec->pin_guard = pin_guard;
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
