/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Card specifications on the command line and adding the cards they name
 * to a device's slots.
 *
 *   virtual          the embedded virtual CAC card (NSS DB created on
 *                    first use under $XDG_DATA_HOME/ccid-emu/nssdb)
 *   virtual:DIR      a virtual CAC card on the NSS database in DIR
 *   loopback         the deterministic loopback test card
 *   pcsc[:READER[,idle=MS][,lock_timeout=MS]]
 *                    the real card in a host PC/SC reader, shared with the
 *                    host's applications (READER: exact name or a unique
 *                    part of it; none: the only reader)
 *   nss:DIR[,token=NAME][,timeout=MS]
 *                    libcacard re-emulating a PKCS#11 token of the NSS
 *                    database in DIR as a CAC card (one token per slot)
 *
 * Any of them may end in ",pin_guard=keep-last" (the default: the agent
 * never forwards a PIN command that could spend the card's last try) or
 * ",pin_guard=off" (the guest may spend every try).
 */
#ifndef CCID_AGENT_CARDS_H
#define CCID_AGENT_CARDS_H

#include "agent_cardset.h"
#include "agent_transport.h"

#include <glib.h>

G_BEGIN_DECLS

/* enum agent_card_kind and struct agent_card_spec: agent_card_kinds.h. */

gboolean agent_card_spec_parse(const char *text, struct agent_card_spec *spec,
			       GError **error);
/* Parses "A,B,C" into spec->nicknames. */
gboolean agent_card_spec_set_nicknames(struct agent_card_spec *spec,
				       const char *list, GError **error);
void agent_card_spec_clear(struct agent_card_spec *spec);
const char *agent_card_kind_name(enum agent_card_kind kind);

/* Adds one card per slot, for slots 0..n_slots-1, to @cs, which owns them
 * afterwards.  For virtual cards, *@db_dir (may be NULL) receives the
 * database directory in use and *@created_db whether it was generated
 * now. */
gboolean agent_cards_add(agent_cardset *cs, const struct agent_card_spec *spec,
			 unsigned n_slots, char **db_dir, gboolean *created_db,
			 GError **error);

/* agent_cards_add() on the transport's card set. */
gboolean agent_cards_attach(agent_transport *t, const struct agent_card_spec *spec,
			    unsigned n_slots, char **db_dir,
			    gboolean *created_db, GError **error);

G_END_DECLS

#endif /* CCID_AGENT_CARDS_H */
