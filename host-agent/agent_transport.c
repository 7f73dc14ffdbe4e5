/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * GLib main-context transport for a ccid_dev (see agent_transport.h).
 */
#include "agent_transport.h"

#include <stdio.h>

struct agent_transport {
	GMainContext *ctx;
	gboolean verbose;
	ccid_dev *dev;
	GSource *dev_timer;
	guint bulk_wakeups, intr_wakeups;
	agent_cardset *cards;          /* created with the device */
};

/* --- device transport ops ----------------------------------------------- */

static void t_bulk_in_ready(void *user)
{
	agent_transport *t = user;

	t->bulk_wakeups++;
}

static void t_intr_in_ready(void *user)
{
	agent_transport *t = user;

	t->intr_wakeups++;
}

static uint64_t t_now_ms(void *user)
{
	return (uint64_t)(g_get_monotonic_time() / 1000);
}

static gboolean dev_timer_cb(gpointer data)
{
	agent_transport *t = data;

	/* Forget the source first: the device may re-arm from inside. */
	t->dev_timer = NULL;
	if (t->dev != NULL)
		ccid_dev_timer_expired(t->dev);
	return G_SOURCE_REMOVE;
}

static void destroy_source(GSource **src)
{
	if (*src != NULL) {
		g_source_destroy(*src);
		g_source_unref(*src);
		*src = NULL;
	}
}

static GSource *attach_timeout(agent_transport *t, guint ms, GSourceFunc fn,
			       gpointer data, const char *name)
{
	GSource *src = g_timeout_source_new(ms);

	g_source_set_callback(src, fn, data, NULL);
	g_source_set_name(src, name);
	g_source_attach(src, t->ctx);
	return src;    /* caller keeps this reference */
}

static void t_timer_update(void *user, int64_t deadline_ms)
{
	agent_transport *t = user;
	int64_t now = (int64_t)t_now_ms(t);
	int64_t delay;

	destroy_source(&t->dev_timer);
	if (deadline_ms < 0)
		return;
	delay = deadline_ms > now ? deadline_ms - now : 0;
	if (delay > G_MAXUINT)
		delay = G_MAXUINT;
	/* A GLib timeout never fires early, and the delay is measured from a
	 * floored now_ms, so the device never sees an early expiry. */
	t->dev_timer = attach_timeout(t, (guint)delay, dev_timer_cb, t,
				      "ccid-emu device timer");
}

static void t_log(void *user, enum ccid_log_level level, const char *msg)
{
	agent_transport *t = user;

	if (t->verbose)
		fprintf(stderr, "ccid-emu: %s\n", msg);
	else
		g_debug("ccid-emu: %s", msg);
}

static const struct ccid_transport_ops transport_ops = {
	.bulk_in_ready = t_bulk_in_ready,
	.intr_in_ready = t_intr_in_ready,
	.now_ms = t_now_ms,
	.timer_update = t_timer_update,
	.log = t_log,
};

/* --- lifetime ------------------------------------------------------------ */

agent_transport *agent_transport_new(GMainContext *ctx, gboolean verbose)
{
	agent_transport *t = g_new0(agent_transport, 1);

	t->ctx = g_main_context_ref(ctx != NULL ? ctx :
				    g_main_context_default());
	t->verbose = verbose;
	return t;
}

void agent_transport_free(agent_transport *t)
{
	if (t == NULL)
		return;
	/* The device cancels and detaches every card, then the cards go. */
	ccid_dev_free(t->dev);
	t->dev = NULL;
	destroy_source(&t->dev_timer);
	agent_cardset_free(t->cards);
	g_main_context_unref(t->ctx);
	g_free(t);
}

ccid_dev *agent_transport_create_dev(agent_transport *t,
				     const struct ccid_config *cfg,
				     GError **error)
{
	const char *why = NULL;

	g_return_val_if_fail(t->dev == NULL, NULL);
	t->dev = ccid_dev_new(cfg, &transport_ops, t, &why);
	if (t->dev == NULL)
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "invalid device configuration: %s",
			    why != NULL ? why : "unknown reason");
	else
		t->cards = agent_cardset_new(t->dev, t->ctx);
	return t->dev;
}

ccid_dev *agent_transport_get_dev(agent_transport *t)
{
	return t->dev;
}

GMainContext *agent_transport_get_context(agent_transport *t)
{
	return t->ctx;
}

guint agent_transport_bulk_wakeups(agent_transport *t)
{
	return t->bulk_wakeups;
}

guint agent_transport_intr_wakeups(agent_transport *t)
{
	return t->intr_wakeups;
}

agent_cardset *agent_transport_get_cardset(agent_transport *t)
{
	return t->cards;
}

void agent_transport_own_card(agent_transport *t, gpointer card,
			      GDestroyNotify free_fn)
{
	g_return_if_fail(t->cards != NULL);
	agent_cardset_own(t->cards, card, free_fn);
}

ccid_card_loopback *agent_transport_add_loopback(agent_transport *t,
						 unsigned index,
						 GError **error)
{
	if (t->cards == NULL) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "no device to put a card in");
		return NULL;
	}
	return agent_cardset_add_loopback(t->cards, index, error);
}
