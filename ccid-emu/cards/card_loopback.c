/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The loopback test card (contract: ccid_card_loopback.h).
 *
 * Every answer is built in one response buffer allocated at creation, so an
 * APDU costs no heap allocation.  Immediate answers complete from inside
 * transmit(); DELAY answers are parked in the same buffer until the
 * injected one-shot timer fires, and cancel() simply forgets them.
 */
#include "ccid_card_loopback.h"
#include "ccid_card_apdu.h"

#include <stdlib.h>
#include <string.h>

#define SW_OK              0x9000u
#define SW_WRONG_LENGTH    0x6700u
#define SW_INS_UNSUPPORTED 0x6D00u
#define SW_CLA_UNSUPPORTED 0x6E00u

#define ISO_CLA            0x00u
#define ISO_INS_SELECT     0xA4u

/* TS, T0 (TD1 present, K = 8 historical bytes), TD1 (T=1, nothing
 * follows), "ccidloop"; the TCK is appended at creation (ISO 7816-3 §8.2.5:
 * required whenever a protocol other than T=0 is offered). */
static const uint8_t loopback_atr_head[] = {
	0x3B, 0x88, 0x01, 'c', 'c', 'i', 'd', 'l', 'o', 'o', 'p',
};
#define LOOPBACK_ATR_LEN (sizeof(loopback_atr_head) + 1u)

struct ccid_card_loopback {
	ccid_slot *slot;
	const struct ccid_card_loopback_timer_ops *timer;
	void *timer_user;
	bool powered;
	bool pending;          /* a delayed answer waits in resp[] */
	size_t resp_len;
	uint8_t atr[LOOPBACK_ATR_LEN];
	uint8_t *resp;         /* CCID_EMU_MAX_APDU_RESP bytes */
};

size_t ccid_card_loopback_atr(uint8_t *atr)
{
	uint8_t tck = 0;

	memcpy(atr, loopback_atr_head, sizeof(loopback_atr_head));
	for (size_t i = 1; i < sizeof(loopback_atr_head); i++)
		tck ^= loopback_atr_head[i];
	atr[sizeof(loopback_atr_head)] = tck;
	return LOOPBACK_ATR_LEN;
}

static size_t put_sw(uint8_t *p, uint16_t sw)
{
	p[0] = (uint8_t)(sw >> 8);
	p[1] = (uint8_t)sw;
	return 2;
}

/* The pattern repeats every 256 bytes (31 is odd), so one period is
 * computed and the rest copied: a 64 KiB answer costs a few memcpy()s
 * instead of 65536 multiplications (and, in a fuzzing build, 65536
 * instrumented comparisons). */
static size_t fill_pattern(uint8_t *p, uint32_t n)
{
	uint32_t done = n < 256u ? n : 256u;

	for (uint32_t i = 0; i < done; i++)
		p[i] = ccid_card_loopback_pattern_byte(i);
	while (done < n) {
		uint32_t chunk = done <= n - done ? done : n - done;

		memcpy(p + done, p, chunk);
		done += chunk;
	}
	return n;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Builds the answer to @a in card->resp.  Returns its length and sets
 * *@delay_ms when the answer must wait. */
static size_t loopback_answer(struct ccid_card_loopback *card,
			      const struct ccid_apdu *a, uint32_t *delay_ms)
{
	uint8_t *r = card->resp;
	size_t n = 0;

	*delay_ms = 0;
	if (a->cla == ISO_CLA) {
		if (a->ins == ISO_INS_SELECT)
			return put_sw(r, SW_OK);
		/* The class is known (SELECT uses it), the instruction is not. */
		return put_sw(r, SW_INS_UNSUPPORTED);
	}
	if (a->cla != CCID_LOOPBACK_CLA)
		return put_sw(r, SW_CLA_UNSUPPORTED);

	switch (a->ins) {
	case CCID_LOOPBACK_INS_ECHO:
		/* nc <= 65535, so data + SW always fits the 65538-byte buffer. */
		if (a->nc > 0)
			memcpy(r, a->data, a->nc);
		n = a->nc;
		break;
	case CCID_LOOPBACK_INS_PATTERN:
		n = fill_pattern(r, a->ne);
		break;
	case CCID_LOOPBACK_INS_DELAY:
		if (a->nc != 4)
			return put_sw(r, SW_WRONG_LENGTH);
		*delay_ms = be32(a->data);
		break;
	case CCID_LOOPBACK_INS_DELAYED_PATTERN:
		if (a->nc != 4)
			return put_sw(r, SW_WRONG_LENGTH);
		*delay_ms = be32(a->data);
		n = fill_pattern(r, a->ne);
		break;
	default:
		return put_sw(r, SW_INS_UNSUPPORTED);
	}
	return n + put_sw(r + n, SW_OK);
}

static int loopback_power_on(void *opaque)
{
	struct ccid_card_loopback *card = opaque;

	if (card->slot == NULL)
		return -1;
	card->powered = true;
	ccid_slot_power_on_done(card->slot, CCID_CARD_OK, card->atr,
				sizeof(card->atr));
	return 0;
}

static void loopback_disarm(struct ccid_card_loopback *card)
{
	if (card->pending && card->timer != NULL)
		card->timer->disarm(card->timer_user);
	card->pending = false;
}

static void loopback_power_off(void *opaque)
{
	struct ccid_card_loopback *card = opaque;

	loopback_disarm(card);
	card->powered = false;
}

static int loopback_transmit(void *opaque, const uint8_t *apdu, size_t len)
{
	struct ccid_card_loopback *card = opaque;
	struct ccid_apdu a;
	uint32_t delay_ms = 0;

	/* The device never does this; refusing keeps a buggy caller from
	 * overwriting a parked answer or talking to an unpowered card. */
	if (card->slot == NULL || !card->powered || card->pending ||
	    len > CCID_EMU_MAX_APDU_CMD)
		return -1;

	if (ccid_apdu_parse(apdu, len, &a) != CCID_APDU_OK)
		card->resp_len = put_sw(card->resp, SW_WRONG_LENGTH);
	else
		card->resp_len = loopback_answer(card, &a, &delay_ms);

	if (delay_ms > 0 && card->timer != NULL) {
		card->pending = true;
		card->timer->arm(card->timer_user, delay_ms);
		return 0;
	}
	/* No timer (or no delay): answer at once. */
	ccid_slot_apdu_done(card->slot, CCID_CARD_OK, card->resp,
			    card->resp_len);
	return 0;
}

static void loopback_cancel(void *opaque)
{
	loopback_disarm(opaque);
}

static void loopback_detach(void *opaque)
{
	struct ccid_card_loopback *card = opaque;

	loopback_disarm(card);
	card->powered = false;
	card->slot = NULL;
}

static const struct ccid_card_ops loopback_ops = {
	.name = "loopback",
	.power_on = loopback_power_on,
	.power_off = loopback_power_off,
	.transmit = loopback_transmit,
	.cancel = loopback_cancel,
	.detach = loopback_detach,
};

const struct ccid_card_ops *ccid_card_loopback_ops(void)
{
	return &loopback_ops;
}

ccid_card_loopback *ccid_card_loopback_new(ccid_slot *slot,
					   const struct ccid_card_loopback_timer_ops *timer,
					   void *timer_user)
{
	struct ccid_card_loopback *card;
	uint8_t tck = 0;

	if (slot == NULL)
		return NULL;
	if (timer != NULL && (timer->arm == NULL || timer->disarm == NULL))
		return NULL;
	card = calloc(1, sizeof(*card));
	if (card == NULL)
		return NULL;
	card->resp = malloc(CCID_EMU_MAX_APDU_RESP);
	if (card->resp == NULL) {
		free(card);
		return NULL;
	}
	card->slot = slot;
	card->timer = timer;
	card->timer_user = timer_user;

	memcpy(card->atr, loopback_atr_head, sizeof(loopback_atr_head));
	/* TCK: XOR of T0 .. last byte before TCK (TS excluded). */
	for (size_t i = 1; i < sizeof(loopback_atr_head); i++)
		tck ^= loopback_atr_head[i];
	card->atr[sizeof(loopback_atr_head)] = tck;
	return card;
}

void ccid_card_loopback_free(ccid_card_loopback *card)
{
	if (card == NULL)
		return;
	loopback_disarm(card);
	free(card->resp);
	free(card);
}

void ccid_card_loopback_timer_fired(ccid_card_loopback *card)
{
	if (card == NULL || !card->pending || card->slot == NULL)
		return;
	card->pending = false;
	ccid_slot_apdu_done(card->slot, CCID_CARD_OK, card->resp,
			    card->resp_len);
}
