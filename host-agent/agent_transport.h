/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A ccid_dev driven by a GLib main context: the clock is
 * g_get_monotonic_time(), the device timer and the loopback card's timer
 * are GSources on the context, and debug logs go to g_debug() (or stderr
 * when verbose).
 */
#ifndef CCID_AGENT_TRANSPORT_H
#define CCID_AGENT_TRANSPORT_H

#include "agent_cardset.h"

#include <ccid-emu/ccid_emu.h>
#include <ccid_card_loopback.h>
#include <glib.h>

G_BEGIN_DECLS

typedef struct agent_transport agent_transport;

/* @ctx: the context the device lives on (NULL = global default). */
agent_transport *agent_transport_new(GMainContext *ctx, gboolean verbose);
void agent_transport_free(agent_transport *t);   /* accepts NULL */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(agent_transport, agent_transport_free)

/* Creates the device on this transport.  The device belongs to the
 * transport: agent_transport_free() frees it. */
ccid_dev *agent_transport_create_dev(agent_transport *t,
				     const struct ccid_config *cfg,
				     GError **error);
ccid_dev *agent_transport_get_dev(agent_transport *t);
GMainContext *agent_transport_get_context(agent_transport *t);

/* Incremented by the bulk_in_ready / intr_in_ready callbacks. */
guint agent_transport_bulk_wakeups(agent_transport *t);
guint agent_transport_intr_wakeups(agent_transport *t);

/* The cards of the device (NULL until the device exists); freed by the
 * transport after the device. */
agent_cardset *agent_transport_get_cardset(agent_transport *t);

/* Hands @card to the transport's card set: @free_fn runs after the device
 * is freed, in reverse order of registration. */
void agent_transport_own_card(agent_transport *t, gpointer card,
			      GDestroyNotify free_fn);

/* A loopback card on slot @index with a GSource timer on the transport's
 * context (agent_cardset_add_loopback()).  Attached to the slot as
 * present; freed by the transport after the device. */
ccid_card_loopback *agent_transport_add_loopback(agent_transport *t,
						 unsigned index,
						 GError **error);

G_END_DECLS

#endif /* CCID_AGENT_TRANSPORT_H */
