/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The served side of the bridge tests (served.h).
 */
#include "served.h"

#include <check.h>
#include <string.h>
#include <sys/socket.h>

#include <glib.h>


static gboolean card_timer_cb(gpointer data)
{
	struct served *s = data;

	s->card_timer = 0;
	ccid_card_loopback_timer_fired(s->card);
	return G_SOURCE_REMOVE;
}

static void card_timer_arm(void *user, uint32_t ms)
{
	struct served *s = user;

	if (s->card_timer)
		g_source_remove(s->card_timer);
	s->card_timer = g_timeout_add(ms, card_timer_cb, s);
}

static void card_timer_disarm(void *user)
{
	struct served *s = user;

	if (s->card_timer)
		g_source_remove(s->card_timer);
	s->card_timer = 0;
}

static const struct ccid_card_loopback_timer_ops card_timer_ops = {
	.arm = card_timer_arm, .disarm = card_timer_disarm,
};

static void served_event(void *user, enum ccid_bridge_event ev, const char *peer)
{
	struct served *s = user;

	if (ev == CCID_BRIDGE_EVENT_ATTACHED)
		s->attached++;
	if (ev == CCID_BRIDGE_EVENT_DETACHED)
		s->detached++;
}

static const struct ccid_bridge_callbacks served_cbs = { .event = served_event };

static void served_init_cfg(struct served *s, struct ccid_config *cfg,
			    uint32_t te_ms)
{
	ccid_slot *slot;

	memset(s, 0, sizeof(*s));
	cfg->time_extension_ms = te_ms;
	s->bridge = ccid_bridge_new(cfg, &served_cbs, s, NULL);
	ck_assert_ptr_nonnull(s->bridge);
	slot = ccid_dev_get_slot(ccid_bridge_get_dev(s->bridge), 0);
	s->card = ccid_card_loopback_new(slot, &card_timer_ops, s);
	ccid_slot_set_card(slot, ccid_card_loopback_ops(), s->card, true);
}

void served_init(struct served *s, uint32_t te_ms)
{
	struct ccid_config cfg;

	ccid_config_init(&cfg);
	served_init_cfg(s, &cfg, te_ms);
}

void served_init_agent(struct served *s, uint32_t te_ms)
{
	struct ccid_config cfg;

	ccid_bridge_config_init(&cfg);
	served_init_cfg(s, &cfg, te_ms);
}

void served_fini(struct served *s)
{
	ccid_bridge_free(s->bridge);
	card_timer_disarm(s);
	ccid_card_loopback_free(s->card);
}

void connect_pair(struct served *s, struct fake_qemu *g)
{
	connect_pair_version(s, g, NULL);
}

void connect_pair_version(struct served *s, struct fake_qemu *g,
			  const char *version)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert(ccid_bridge_attach_fd(s->bridge, sv[0], "test", NULL));
	fake_qemu_init_version(g, sv[1], version ? version : "fake-qemu");
	ck_assert_msg(fake_qemu_spin(g, fake_qemu_is_connected, NULL, 2000),
		      "no device_connect");
}

