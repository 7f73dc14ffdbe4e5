/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The card kinds the agent knows, in one table: the spec prefix a user
 * writes, how the text after it is parsed, how the card is created on a
 * slot, its card ops, whether it is present, how it is pulled out or
 * pushed back, and how it describes itself.  A new card kind is one row
 * in agent_card_kinds.c; the card set (agent_cardset.c) and the spec
 * parser (agent_cards.c) only walk the table.
 */
#ifndef CCID_AGENT_CARD_KINDS_H
#define CCID_AGENT_CARD_KINDS_H

#include <ccid-emu/ccid_emu.h>
#include <ccid_card_pin_guard.h>
#include <glib.h>

G_BEGIN_DECLS

enum agent_card_kind {
	AGENT_CARD_VIRTUAL,
	AGENT_CARD_LOOPBACK,
	AGENT_CARD_PCSC,
	AGENT_CARD_NSS,
	AGENT_CARD_PIV,
	AGENT_CARD_N_KINDS
};

/* A parsed card specification (see agent_cards.h for the syntax). */
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
	/* Every kind, ",pin_guard=keep-last|off": the PIN-retry guard. */
	enum ccid_pin_guard_policy pin_guard;
};

/* What the card set gives a kind to create a card on one slot. */
struct agent_card_env {
	ccid_slot *slot;
	unsigned index;          /* slot number, for log lines */
	GMainContext *ctx;       /* where the card's timers and events run */
};

struct agent_card_kind_info {
	enum agent_card_kind kind;
	const char *name;        /* the spec prefix, and the name shown */
	const char *syntax;      /* how a spec of this kind is written */
	/* Fills @spec (already zeroed, kind set) from the text after
	 * "NAME:", or from NULL when the spec is just NAME. */
	gboolean (*parse)(const char *arg, struct agent_card_spec *spec,
			  GError **error);
	/* Creates the card for @env->slot; the card set binds it to the
	 * slot with ops(card) and frees it with free_card. */
	gpointer (*create)(const struct agent_card_env *env,
			   const struct agent_card_spec *spec, GError **error);
	const struct ccid_card_ops *(*ops)(gpointer card);
	gboolean (*is_present)(gpointer card);
	void (*free_card)(gpointer card);
	/* "virtual CAC card on NSS database DIR", ... (g_free it). */
	char *(*describe)(gpointer card);
	/* Asks the card to leave (@inserted FALSE) or come back.  The set
	 * then waits until is_present() agrees.  NULL when the user cannot
	 * move this card from here; the user is told "slot N MOVED_WHAT:
	 * insert|remove MOVED_HOW". */
	gboolean (*set_inserted)(gpointer card, gboolean inserted,
				 GError **error);
	const char *moved_what;
	const char *moved_how;
	/* The ATR the card presents, upper-case hex (g_free it), or NULL
	 * when not known.  @card NULL: without a card, for kinds whose
	 * ATR is fixed.  NULL for kinds whose ATR comes from elsewhere
	 * (pcsc: the reader's card). */
	char *(*atr_hex)(gpointer card);
	/* Log describe() when the card is created (its presence depends on
	 * something outside the agent, worth a line). */
	gboolean announce;
};

const struct agent_card_kind_info *agent_card_kind_get(enum agent_card_kind kind);
/* The kind whose name is @text or prefixes it as "NAME:", or NULL. */
const struct agent_card_kind_info *agent_card_kind_for_spec(const char *text);
/* "virtual, virtual:NSSDB_DIR, loopback, ..." for error messages. */
char *agent_card_kinds_syntax(void);

/* libcacard is set up once per process (ccid_cacard_service.h) for the
 * kind of the first card made: a program that will make cards of both
 * @soft (a virtual spec) and @hw (an nss spec) sets it up for both first,
 * whichever card comes first.  Opens the NSS databases (the default one
 * of the virtual card is made when missing). */
gboolean agent_card_kinds_prepare_cacard(const struct agent_card_spec *soft,
					 const struct agent_card_spec *hw,
					 GError **error);

/* The loopback card inside the kind's handle (the handle adds the gate
 * that lets it be pulled out). */
struct ccid_card_loopback *agent_card_loopback_inner(gpointer card);

G_END_DECLS

#endif /* CCID_AGENT_CARD_KINDS_H */
