/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Card specifications and attaching cards (see agent_cards.h).
 */
#include "agent_cards.h"
#include "agent_piv.h"

#include <ccid_card_nss.h>
#include <ccid_card_pcsc.h>
#include <ccid_card_virtual.h>
#include <string.h>

const char *agent_card_kind_name(enum agent_card_kind kind)
{
	switch (kind) {
	case AGENT_CARD_VIRTUAL:
		return "virtual";
	case AGENT_CARD_LOOPBACK:
		return "loopback";
	case AGENT_CARD_PCSC:
		return "pcsc";
	case AGENT_CARD_NSS:
		return "nss";
	case AGENT_CARD_PIV:
		return "piv";
	}
	return "unknown";
}

gboolean agent_card_spec_parse(const char *text, struct agent_card_spec *spec,
			       GError **error)
{
	memset(spec, 0, sizeof(*spec));
	if (g_strcmp0(text, "loopback") == 0) {
		spec->kind = AGENT_CARD_LOOPBACK;
		return TRUE;
	}
	if (g_strcmp0(text, "virtual") == 0) {
		spec->kind = AGENT_CARD_VIRTUAL;
		return TRUE;
	}
	if (text != NULL && g_str_has_prefix(text, "virtual:")) {
		const char *dir = text + strlen("virtual:");

		if (dir[0] == '\0') {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "card 'virtual:' needs an NSS database "
				    "directory after the colon");
			return FALSE;
		}
		spec->kind = AGENT_CARD_VIRTUAL;
		spec->nssdb_dir = g_strdup(dir);
		return TRUE;
	}
	if (g_strcmp0(text, "pcsc") == 0 ||
	    (text != NULL && g_str_has_prefix(text, "pcsc:"))) {
		struct ccid_card_pcsc_config cfg;
		g_autoptr(GError) why = NULL;

		ccid_card_pcsc_config_init(&cfg);
		if (!ccid_card_pcsc_spec_parse(text[4] == ':' ? text + 5 : "",
					       &spec->reader, &cfg, &why)) {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE, "card '%s': %s",
				    text, why->message);
			return FALSE;
		}
		spec->kind = AGENT_CARD_PCSC;
		spec->idle_ms = cfg.idle_ms;
		spec->lock_timeout_ms = cfg.lock_timeout_ms;
		return TRUE;
	}
	if (text != NULL && (g_strcmp0(text, "nss") == 0 ||
			     g_str_has_prefix(text, "nss:"))) {
		g_autoptr(GError) why = NULL;

		if (!ccid_card_nss_spec_parse(text[3] == ':' ? text + 4 : "",
					      &spec->nssdb_dir, &spec->token,
					      &spec->nss_timeout_ms, &why)) {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE, "card '%s': %s",
				    text, why->message);
			return FALSE;
		}
		spec->kind = AGENT_CARD_NSS;
		return TRUE;
	}
	if (text != NULL && (g_strcmp0(text, "piv") == 0 ||
			     g_str_has_prefix(text, "piv:"))) {
		if (g_strcmp0(text, "piv:") == 0) {
			g_set_error(error, G_OPTION_ERROR,
				    G_OPTION_ERROR_BAD_VALUE,
				    "card 'piv:' needs a card directory after "
				    "the colon (or plain 'piv' for the default "
				    "card)");
			return FALSE;
		}
		spec->kind = AGENT_CARD_PIV;
		spec->piv_dir = text[3] == ':' ? g_strdup(text + 4) : NULL;
		return TRUE;
	}
	g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "unknown card '%s' (expected virtual, virtual:NSSDB_DIR, "
		    "loopback, pcsc:READER, nss:NSSDB_DIR or piv[:DIR])",
		    text != NULL ? text : "");
	return FALSE;
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
		struct ccid_card_virtual_config cfg = { 0 };
		ccid_card_virtual *card;

		if (spec->kind == AGENT_CARD_LOOPBACK) {
			if (agent_cardset_add_loopback(cs, i, error) == NULL)
				return FALSE;
			continue;
		}
		if (spec->kind == AGENT_CARD_PCSC) {
			struct ccid_card_pcsc_config pcfg;

			ccid_card_pcsc_config_init(&pcfg);
			pcfg.reader = spec->reader;
			pcfg.idle_ms = spec->idle_ms;
			pcfg.lock_timeout_ms = spec->lock_timeout_ms;
			if (agent_cardset_add_pcsc(cs, i, &pcfg, error) == NULL) {
				g_prefix_error(error, "slot %u: ", i);
				return FALSE;
			}
			continue;
		}
		if (spec->kind == AGENT_CARD_PIV) {
			if (agent_piv_add(cs, i, spec->piv_dir, error) == NULL) {
				g_prefix_error(error, "slot %u: ", i);
				return FALSE;
			}
			continue;
		}
		if (spec->kind == AGENT_CARD_NSS) {
			struct ccid_card_nss_config ncfg = { 0 };

			ncfg.nssdb_dir = spec->nssdb_dir;
			ncfg.token = spec->token;
			ncfg.apdu_timeout_ms = spec->nss_timeout_ms;
			if (agent_cardset_add_nss(cs, i, &ncfg, error) == NULL) {
				g_prefix_error(error, "slot %u: ", i);
				return FALSE;
			}
			continue;
		}
		cfg.nssdb_dir = spec->nssdb_dir;
		cfg.cert_nicknames = (const char *const *)spec->nicknames;
		card = agent_cardset_add_virtual(cs, i, &cfg, error);
		if (card == NULL) {
			g_prefix_error(error, "slot %u: ", i);
			return FALSE;
		}
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
