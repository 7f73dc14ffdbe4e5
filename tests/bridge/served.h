/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The served side of the bridge tests: a bridge with the loopback card in
 * slot 0, its timers on the default main context.
 */
#ifndef CCID_TEST_SERVED_H
#define CCID_TEST_SERVED_H

#include <stdint.h>

#include "ccid_bridge.h"
#include "ccid_card_loopback.h"
#include "fake_qemu.h"

struct served {
	ccid_bridge *bridge;
	ccid_card_loopback *card;
	guint card_timer;
	unsigned attached, detached;
};

/* @te_ms: the reader's time-extension interval. */
void served_init(struct served *s, uint32_t te_ms);
/* The same with the configuration `ccid-agent serve --data-path
 * interrupt-both` uses, ccid_bridge_config_init() (dwMaxCCIDMessageLength
 * CCID_BRIDGE_INTR_OUT_MAX_MSG). */
void served_init_agent(struct served *s, uint32_t te_ms);
void served_fini(struct served *s);
/* A socket pair between the bridge and @g (hello version @version, NULL
 * for the plain fake); waits for device_connect. */
void connect_pair_version(struct served *s, struct fake_qemu *g,
			  const char *version);
void connect_pair(struct served *s, struct fake_qemu *g);

#endif
