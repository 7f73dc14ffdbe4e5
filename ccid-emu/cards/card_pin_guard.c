/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PIN-retry guard as a card layer (see ccid_card_pin_guard.h).
 *
 * One command of the guest at a time (the device guarantees it), in up
 * to two steps:
 *
 *   QUERY    the guard's own VERIFY without data is at the card; the
 *            guest's command waits in `held`
 *   FORWARD  the guest's command is at the card; its answer goes to the
 *            guest
 *
 * The backend's answers come back through the slot's APDU hook
 * (ccid_slot_set_apdu_hook), which is how a layer sees completions the
 * backend reports to the slot directly.
 */
#include "ccid_card_pin_guard.h"

#include "ccid_pin_guard.h"

#include <stdlib.h>
#include <string.h>

enum guard_stage {
	GUARD_IDLE = 0,
	GUARD_QUERY,
	GUARD_FORWARD,
};

struct ccid_card_pin_guard {
	ccid_slot *slot;
	const struct ccid_card_ops *inner;
	void *inner_card;
	struct ccid_card_pin_guard_config cfg;

	struct ccid_pin_counts counts;
	enum guard_stage stage;
	struct ccid_pin_cmd cur;       /* the guest's command in progress */
	uint8_t *held;                 /* its bytes while the query runs */
	size_t held_len;
	/* A PIN command chain the card is in the middle of: its later parts
	 * go through without a query, which would break the chain. */
	bool in_chain;
	uint8_t chain_ins, chain_ref;
	unsigned refusals;
};

/* The held command holds PIN bytes: wipe them before the memory goes. */
static void wipe_free(uint8_t *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

static void drop_held(ccid_card_pin_guard *g)
{
	wipe_free(g->held, g->held_len);
	g->held = NULL;
	g->held_len = 0;
}

static void note_chain(ccid_card_pin_guard *g, const struct ccid_pin_cmd *c)
{
	g->in_chain = c->kind == CCID_PIN_CMD_SPEND && c->chained;
	g->chain_ins = c->ins;
	g->chain_ref = c->ref;
}

static bool continues_chain(const ccid_card_pin_guard *g,
			    const struct ccid_pin_cmd *c)
{
	return g->in_chain && c->ins == g->chain_ins && c->ref == g->chain_ref;
}

/* Sends the guest's command (@apdu) on to the card. */
static int forward(ccid_card_pin_guard *g, const uint8_t *apdu, size_t len)
{
	int rc;

	note_chain(g, &g->cur);
	g->stage = GUARD_FORWARD;
	rc = g->inner->transmit(g->inner_card, apdu, len);
	if (rc != 0 && g->stage == GUARD_FORWARD)
		g->stage = GUARD_IDLE;
	return rc;
}

static void refuse(ccid_card_pin_guard *g)
{
	static const uint8_t one_left[] = { 0x63, 0xC1 };

	g->stage = GUARD_IDLE;
	g->in_chain = false;
	g->refusals++;
	if (g->cfg.refused != NULL)
		g->cfg.refused(g->cfg.user, g->cur.ins, g->cur.ref);
	ccid_slot_apdu_complete(g->slot, CCID_CARD_OK, one_left,
				sizeof(one_left));
}

static void guard_hook(void *user, enum ccid_card_status st,
		       const uint8_t *resp, size_t len)
{
	ccid_card_pin_guard *g = user;
	struct ccid_pin_cmd query;
	uint8_t *held;
	size_t held_len;
	int rc;

	switch (g->stage) {
	case GUARD_FORWARD:
		g->stage = GUARD_IDLE;
		if (st == CCID_CARD_OK)
			ccid_pin_counts_learn(&g->counts, &g->cur, resp, len);
		ccid_slot_apdu_complete(g->slot, st, resp, len);
		return;
	case GUARD_QUERY:
		break;
	case GUARD_IDLE:
	default:
		/* Not ours (the device drops strays before the hook). */
		ccid_slot_apdu_complete(g->slot, st, resp, len);
		return;
	}
	if (st != CCID_CARD_OK) {
		g->stage = GUARD_IDLE;
		drop_held(g);
		ccid_slot_apdu_complete(g->slot, st, NULL, 0);
		return;
	}
	query = g->cur;
	query.kind = CCID_PIN_CMD_QUERY;
	query.chained = false;
	ccid_pin_counts_learn(&g->counts, &query, resp, len);
	if (ccid_pin_counts_is_last(&g->counts, &g->cur)) {
		drop_held(g);
		refuse(g);
		return;
	}
	/* Take the bytes out first: the answer may come (and the guest's
	 * next command with it) before transmit returns. */
	held = g->held;
	held_len = g->held_len;
	g->held = NULL;
	g->held_len = 0;
	rc = forward(g, held, held_len);
	wipe_free(held, held_len);
	if (rc != 0)
		ccid_slot_apdu_complete(g->slot, CCID_CARD_EHW, NULL, 0);
}

/* --- struct ccid_card_ops -------------------------------------------------- */

static int guard_power_on(void *card)
{
	ccid_card_pin_guard *g = card;

	g->in_chain = false;
	return g->inner->power_on(g->inner_card);
}

static void guard_power_off(void *card)
{
	ccid_card_pin_guard *g = card;

	g->in_chain = false;
	g->inner->power_off(g->inner_card);
}

static int guard_transmit(void *card, const uint8_t *apdu, size_t len)
{
	ccid_card_pin_guard *g = card;
	uint8_t query[4];
	int rc;

	ccid_pin_cmd_classify(apdu, len, &g->cur);
	if (g->cur.kind != CCID_PIN_CMD_SPEND || continues_chain(g, &g->cur))
		return forward(g, apdu, len);

	/* Ask the card first: its count may have changed behind our back
	 * (the host's own applications share a pcsc card). */
	g->held = malloc(len);
	if (g->held == NULL)
		return -1;
	memcpy(g->held, apdu, len);
	g->held_len = len;
	g->stage = GUARD_QUERY;
	ccid_pin_cmd_query(&g->cur, query);
	rc = g->inner->transmit(g->inner_card, query, sizeof(query));
	if (rc != 0 && g->stage == GUARD_QUERY) {
		g->stage = GUARD_IDLE;
		drop_held(g);
	}
	return rc;
}

static void guard_cancel(void *card)
{
	ccid_card_pin_guard *g = card;

	g->inner->cancel(g->inner_card);
	g->stage = GUARD_IDLE;
	g->in_chain = false;
	drop_held(g);
}

static void guard_detach(void *card)
{
	ccid_card_pin_guard *g = card;

	drop_held(g);
	g->stage = GUARD_IDLE;
	if (g->inner->detach != NULL)
		g->inner->detach(g->inner_card);
}

static const struct ccid_card_ops guard_ops = {
	.name = "pin-guard",
	.power_on = guard_power_on,
	.power_off = guard_power_off,
	.transmit = guard_transmit,
	.cancel = guard_cancel,
	.detach = guard_detach,
};

/* --- lifetime ---------------------------------------------------------------- */

ccid_card_pin_guard *ccid_card_pin_guard_new(ccid_slot *slot,
	const struct ccid_card_ops *inner, void *inner_card,
	const struct ccid_card_pin_guard_config *cfg)
{
	ccid_card_pin_guard *g;

	if (slot == NULL || inner == NULL)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->slot = slot;
	g->inner = inner;
	g->inner_card = inner_card;
	if (cfg != NULL)
		g->cfg = *cfg;
	ccid_pin_counts_init(&g->counts);
	return g;
}

void ccid_card_pin_guard_free(ccid_card_pin_guard *g)
{
	if (g == NULL)
		return;
	drop_held(g);
	free(g);
}

void ccid_card_pin_guard_bind(ccid_card_pin_guard *g, bool present)
{
	ccid_slot_set_card(g->slot, &guard_ops, g, present);
	ccid_slot_set_apdu_hook(g->slot, guard_hook, g);
}

unsigned ccid_card_pin_guard_refusals(const ccid_card_pin_guard *g)
{
	return g->refusals;
}

int ccid_card_pin_guard_tries_left(const ccid_card_pin_guard *g, uint8_t ref)
{
	uint8_t n = g->counts.left[ref];

	return n == CCID_PIN_GUARD_UNKNOWN ? -1 : n;
}
