/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual PIV card in the agent: where each slot's card lives
 * (--card piv[:DIR]), and putting one into a card set's slot.  The card
 * kind itself is a row of agent_card_kinds.c.
 */
#ifndef CCID_AGENT_PIV_H
#define CCID_AGENT_PIV_H

#include "agent_cardset.h"

#include <ccid_card_piv.h>
#include <glib.h>

G_BEGIN_DECLS

/* The store directory of slot @index for --card piv[:@dir] (@dir NULL =
 * the default card): slot 0 uses the directory itself, slot N > 0 the
 * sibling "DIR-N", so every slot has its own card. */
char *agent_piv_slot_dir(const char *dir, unsigned index);

/* A virtual PIV card on slot @index of @cs, inserted; @cs owns it.  The
 * store is created on first use.  Store write failures are logged with
 * g_warning() naming the file. */
ccid_card_piv *agent_piv_add(agent_cardset *cs, unsigned index,
			     const char *dir, GError **error);

G_END_DECLS

#endif /* CCID_AGENT_PIV_H */
