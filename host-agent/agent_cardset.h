/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cards behind one device's slots: who owns them, the GSource timers
 * the loopback card needs, and pulling a card out of its slot or pushing
 * it back while the device runs.
 *
 * It works on any ccid_dev, whichever transport created it: the
 * selftest's agent_transport and the usbredir bridge of `serve` both hand
 * their device to a card set.  Everything runs on the thread that owns the
 * device and iterates @ctx.
 */
#ifndef CCID_AGENT_CARDSET_H
#define CCID_AGENT_CARDSET_H

#include "agent_card_kinds.h"

#include <ccid-emu/ccid_emu.h>
#include <ccid_card_loopback.h>
#include <glib.h>

G_BEGIN_DECLS

#define AGENT_CARDSET_ERROR (agent_cardset_error_quark())
GQuark agent_cardset_error_quark(void);

enum agent_cardset_error {
	AGENT_CARDSET_ERROR_NO_CARD,    /* the slot has no card to move */
	AGENT_CARDSET_ERROR_BUSY,       /* a change is already under way */
	AGENT_CARDSET_ERROR_TIMED_OUT,  /* the backend never reported it */
	AGENT_CARDSET_ERROR_CANCELLED,  /* the set was freed first */
	AGENT_CARDSET_ERROR_BACKEND,    /* the card backend refused */
};

typedef struct agent_cardset agent_cardset;

/* @ctx: where card timers and events run (NULL = global default). */
agent_cardset *agent_cardset_new(ccid_dev *dev, GMainContext *ctx);
/* Accepts NULL.  Frees the cards in reverse order of registration.  Call
 * it after the device is freed, which detaches the cards from the slots.
 * Changes still waiting to complete report AGENT_CARDSET_ERROR_CANCELLED. */
void agent_cardset_free(agent_cardset *cs);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(agent_cardset, agent_cardset_free)

ccid_dev *agent_cardset_get_dev(agent_cardset *cs);
GMainContext *agent_cardset_get_context(agent_cardset *cs);

/* Hands @card to the set: @free_fn runs at agent_cardset_free().  The
 * caller binds such a card to its slot itself, and it cannot be removed
 * through agent_cardset_set_inserted(). */
void agent_cardset_own(agent_cardset *cs, gpointer card,
		       GDestroyNotify free_fn);

/* The card @spec names, on slot @index (see agent_card_kinds.h): the
 * kind's handle, owned by the set.  A card whose presence depends on
 * something outside the agent (pcsc, nss) is announced with g_message(). */
gpointer agent_cardset_add(agent_cardset *cs, unsigned index,
			   const struct agent_card_spec *spec, GError **error);

/* A loopback card on slot @index, inserted.  It sits behind a gate that
 * answers "no card" while the card is pulled out. */
ccid_card_loopback *agent_cardset_add_loopback(agent_cardset *cs,
					       unsigned index, GError **error);

/* Whether slot @index has a card added by the functions above, and
 * whether that card is in the reader right now. */
gboolean agent_cardset_has_card(agent_cardset *cs, unsigned index);
gboolean agent_cardset_is_present(agent_cardset *cs, unsigned index);
/* The kind's name ("virtual", "loopback", ...) or NULL. */
const char *agent_cardset_card_name(agent_cardset *cs, unsigned index);
/* What the card is, for people (g_free it), or NULL. */
char *agent_cardset_describe(agent_cardset *cs, unsigned index);
/* The ATR the card of slot @index presents, upper-case hex (g_free it);
 * NULL when not known. */
char *agent_cardset_atr_hex(agent_cardset *cs, unsigned index);

/* How many PIN commands of the guest the PIN-retry guard of slot @index
 * refused (0 without a card or with pin_guard=off). */
guint agent_cardset_pin_refusals(agent_cardset *cs, unsigned index);

/* Told each refusal of the guard of any slot, after its log line:
 * @command is the command's name ("VERIFY", "CHANGE REFERENCE DATA",
 * "RESET RETRY COUNTER"), @reference the PIN reference it would have
 * spent a try of.  Never any PIN bytes.  It runs while the device handles
 * the guest's command: it must not free the set. */
typedef void (*agent_cardset_pin_refused_fn)(void *user, unsigned index,
					     const char *command,
					     guint8 reference);
void agent_cardset_set_pin_refused_handler(agent_cardset *cs,
					   agent_cardset_pin_refused_fn fn,
					   void *user);

/* @error is NULL on success; @changed says whether the card moved (FALSE
 * when it already was where it was asked to be). */
typedef void (*agent_cardset_done_fn)(void *user, gboolean changed,
				      const GError *error);

/* Pulls the card of slot @index out (@inserted FALSE) or pushes it back
 * in.  The slot sees it as ccid_slot_card_removed() / _inserted(), so the
 * guest gets a NotifySlotChange.  @done runs once the slot has the new
 * state: before this returns for a loopback card, after libcacard's event
 * for a virtual one.  One change per slot at a time. */
void agent_cardset_set_inserted(agent_cardset *cs, unsigned index,
				gboolean inserted, agent_cardset_done_fn done,
				void *user);

G_END_DECLS

#endif /* CCID_AGENT_CARDSET_H */
