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
 *   piv[:DIR]        a writable virtual PIV card stored in DIR (default
 *                    $XDG_DATA_HOME/ccid-emu/piv/default), created on
 *                    first use; slot N > 0 uses DIR-N
 */
#ifndef CCID_AGENT_CARDS_H
#define CCID_AGENT_CARDS_H

#include "agent_cardset.h"
#include "agent_transport.h"

#include <glib.h>

G_BEGIN_DECLS

enum agent_card_kind {
	AGENT_CARD_VIRTUAL,
	AGENT_CARD_LOOPBACK,
	AGENT_CARD_PCSC,
	AGENT_CARD_NSS,
	AGENT_CARD_PIV,
};

struct agent_card_spec {
	enum agent_card_kind kind;
	char *nssdb_dir;        /* virtual:DIR, else NULL */
	char **nicknames;       /* three, or NULL */
	char *reader;           /* pcsc: reader pattern ("" = the only one) */
	guint idle_ms;          /* pcsc: transaction idle release */
	guint lock_timeout_ms;  /* pcsc: wait for a card held by others */
	char *token;            /* nss: token label, NULL = any (nssdb_dir: DB) */
	guint nss_timeout_ms;   /* nss: deadline per op, 0 = default */
	char *piv_dir;          /* piv: store directory, NULL = default */
};

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
