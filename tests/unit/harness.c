/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H_MAX_LIVE 16

/* Test code may keep state the library must not: the harnesses a failed
 * assertion left behind, so the checked teardown can free them. */
static struct harness *h_live[H_MAX_LIVE];

/* ------------------------------------------------------------------ */
/* Fake transport                                                     */
/* ------------------------------------------------------------------ */
static void h_on_bulk_in_ready(void *user)
{
	struct harness *h = user;

	h->n_bulk_in_ready++;
}

static void h_on_intr_in_ready(void *user)
{
	struct harness *h = user;

	h->n_intr_in_ready++;
}

static uint64_t h_on_now_ms(void *user)
{
	struct harness *h = user;

	return h->now;
}

static void h_on_timer_update(void *user, int64_t deadline_ms)
{
	struct harness *h = user;

	h->deadline = deadline_ms;
	if (h->n_timer_updates < H_MAX_DEADLINES)
		h->deadlines[h->n_timer_updates] = deadline_ms;
	h->n_timer_updates++;
}

static void h_on_log(void *user, enum ccid_log_level level, const char *msg)
{
	struct harness *h = user;

	if (getenv("CCID_TEST_VERBOSE"))
		fprintf(stderr, "ccid[%d]: %s\n", (int)level, msg);
	if (h->n_logs >= H_MAX_LOGS) {
		h->n_logs_dropped++;
		return;
	}
	h->logs[h->n_logs] = strdup(msg ? msg : "(null)");
	h->log_levels[h->n_logs] = (int)level;
	h->n_logs++;
}

bool h_log_contains(const struct harness *h, const char *needle)
{
	for (unsigned i = 0; i < h->n_logs; i++)
		if (h->logs[i] && strstr(h->logs[i], needle))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Fake card                                                          */
/* ------------------------------------------------------------------ */
static void fake_event(struct fake_card *c, char ev)
{
	if (c->n_events + 1 < sizeof(c->events))
		c->events[c->n_events++] = ev;
}

static void fake_violation(struct fake_card *c, const char *what)
{
	c->n_violations++;
	if (!c->violation[0])
		snprintf(c->violation, sizeof(c->violation), "slot %u: %s",
			 c->index, what);
}

static int fake_power_on(void *card)
{
	struct fake_card *c = card;

	fake_event(c, 'P');
	c->n_power_on++;
	if (c->detached)
		fake_violation(c, "power_on after detach");
	if (c->pending != FAKE_OP_NONE)
		fake_violation(c, "power_on while an op is in flight");
	if (c->power_on_ret)
		return c->power_on_ret;
	c->pending = FAKE_OP_POWER_ON;
	if (c->answer_now)
		fake_card_complete(c);
	return 0;
}

static void fake_power_off(void *card)
{
	struct fake_card *c = card;

	fake_event(c, 'O');
	c->n_power_off++;
	if (c->detached)
		fake_violation(c, "power_off after detach");
	if (c->pending != FAKE_OP_NONE)
		fake_violation(c, "power_off with an op in flight (not cancelled first)");
	c->powered = false;
}

static int fake_transmit(void *card, const uint8_t *apdu, size_t len)
{
	struct fake_card *c = card;

	fake_event(c, 'T');
	c->n_transmit++;
	if (c->detached)
		fake_violation(c, "transmit after detach");
	if (c->pending != FAKE_OP_NONE)
		fake_violation(c, "transmit while an op is in flight");
	if (!c->powered)
		fake_violation(c, "transmit to an unpowered card");
	if (len < 1 || len > CCID_EMU_MAX_APDU_CMD)
		fake_violation(c, "transmit length out of 1..CCID_EMU_MAX_APDU_CMD");
	free(c->last_apdu);
	c->last_apdu = malloc(len ? len : 1);
	ck_assert(c->last_apdu != NULL);
	if (len)
		memcpy(c->last_apdu, apdu, len);
	c->last_apdu_len = len;
	if (c->transmit_ret)
		return c->transmit_ret;
	c->pending = FAKE_OP_TRANSMIT;
	if (c->answer_now)
		fake_card_complete(c);
	return 0;
}

static void fake_cancel(void *card)
{
	struct fake_card *c = card;

	fake_event(c, 'C');
	c->n_cancel++;
	c->pending = FAKE_OP_NONE;
}

static void fake_detach(void *card)
{
	struct fake_card *c = card;

	fake_event(c, 'D');
	c->n_detach++;
	if (c->pending != FAKE_OP_NONE)
		fake_violation(c, "detach with an op in flight (not cancelled first)");
	c->detached = true;
}

static const struct ccid_card_ops fake_ops = {
	.name = "fake",
	.power_on = fake_power_on,
	.power_off = fake_power_off,
	.transmit = fake_transmit,
	.cancel = fake_cancel,
	.detach = fake_detach,
};

const struct ccid_card_ops *fake_card_ops(void)
{
	return &fake_ops;
}

void fake_card_set_atr(struct fake_card *c, const uint8_t *atr, size_t len)
{
	ck_assert_uint_le(len, sizeof(c->atr));
	memcpy(c->atr, atr, len);
	c->atr_len = len;
}

void fake_card_set_resp(struct fake_card *c, const uint8_t *resp, size_t len)
{
	free(c->resp);
	c->resp = malloc(len ? len : 1);
	ck_assert(c->resp != NULL);
	if (len)
		memcpy(c->resp, resp, len);
	c->resp_len = len;
}

static const uint8_t sw_9000[] = { 0x90, 0x00 };

void fake_card_complete(struct fake_card *c)
{
	enum fake_op op = c->pending;

	ck_assert_msg(op != FAKE_OP_NONE,
		      "fake card %u: completion requested with nothing in flight",
		      c->index);
	c->pending = FAKE_OP_NONE;
	if (op == FAKE_OP_POWER_ON) {
		if (c->power_on_status == CCID_CARD_OK)
			c->powered = true;
		ccid_slot_power_on_done(c->slot, c->power_on_status, c->atr,
					c->power_on_status == CCID_CARD_OK ?
					c->atr_len : 0);
	} else {
		if (c->resp)
			ccid_slot_apdu_done(c->slot, c->apdu_status, c->resp,
					    c->resp_len);
		else
			ccid_slot_apdu_done(c->slot, c->apdu_status, sw_9000,
					    sizeof(sw_9000));
	}
}

void fake_card_complete_late(struct fake_card *c, enum fake_op op)
{
	if (op == FAKE_OP_POWER_ON)
		ccid_slot_power_on_done(c->slot, CCID_CARD_OK, c->atr, c->atr_len);
	else
		ccid_slot_apdu_done(c->slot, CCID_CARD_OK, sw_9000,
				    sizeof(sw_9000));
}

/* ------------------------------------------------------------------ */
/* Harness lifetime                                                   */
/* ------------------------------------------------------------------ */
void h_config_default(struct ccid_config *cfg)
{
	ccid_config_init(cfg);
	cfg->vendor_id = 0x1209;
	cfg->product_id = 0xCC1D;
	cfg->bcd_device = 0x0100;
	cfg->manufacturer = "ccid-emu tests";
	cfg->product = "Fake Reader";
	cfg->serial = "0001";
	cfg->interface = NULL;  /* the descriptor tables expect iInterface 0 */
	cfg->n_slots = 1;
	cfg->max_busy_slots = 1;
	cfg->max_message_len = CCID_EMU_DEFAULT_MAX_MSG;
	cfg->features = CCID_FEAT_AUTO_PARAM_ATR | CCID_FEAT_AUTO_ACTIVATION |
			CCID_FEAT_AUTO_VOLTAGE | CCID_FEAT_AUTO_CLOCK |
			CCID_FEAT_AUTO_BAUD | CCID_FEAT_AUTO_PPS_NEGOTIATION |
			CCID_FEAT_LEVEL_EXTENDED_APDU;
	cfg->bulk_max_packet = 64;
	cfg->intr_interval_ms = 4;
	cfg->time_extension_ms = 500;
	cfg->remote_wakeup = false;
}

static const uint8_t fake_atr_t1[] = { FAKE_ATR_T1 };

static struct harness *h_new_full(const struct ccid_config *cfg,
				  bool present, bool polling)
{
	struct harness *h = calloc(1, sizeof(*h));
	const char *err = NULL;
	int slot_of_registry = -1;

	ck_assert(h != NULL);
	for (int i = 0; i < H_MAX_LIVE; i++) {
		if (!h_live[i]) {
			h_live[i] = h;
			slot_of_registry = i;
			break;
		}
	}
	if (slot_of_registry < 0) {
		free(h);
		ck_abort_msg("too many live harnesses");
	}
	h->registry_index = slot_of_registry;
	if (cfg)
		h->cfg = *cfg;
	else
		h_config_default(&h->cfg);
	h->msg = malloc(H_MSG_CAP);
	h->xfer = malloc(H_MSG_CAP);
	ck_assert(h->msg != NULL && h->xfer != NULL);
	h->now = 1000;
	h->deadline = -1;
	h->tops.now_ms = h_on_now_ms;
	h->tops.timer_update = h_on_timer_update;
	if (!polling) {
		h->tops.bulk_in_ready = h_on_bulk_in_ready;
		h->tops.intr_in_ready = h_on_intr_in_ready;
		h->tops.log = h_on_log;
	}
	h->dev = ccid_dev_new(&h->cfg, &h->tops, h, &err);
	ck_assert_msg(h->dev != NULL, "ccid_dev_new refused the config: %s",
		      err ? err : "(no message)");
	for (unsigned i = 0; i < h->cfg.n_slots; i++) {
		struct fake_card *c = &h->cards[i];

		c->index = i;
		c->slot = ccid_dev_get_slot(h->dev, i);
		ck_assert_msg(c->slot != NULL, "no slot %u", i);
		c->answer_now = true;
		fake_card_set_atr(c, fake_atr_t1, sizeof(fake_atr_t1));
		ccid_slot_set_card(c->slot, fake_card_ops(), c, present);
	}
	return h;
}

struct harness *h_new(const struct ccid_config *cfg, bool present)
{
	return h_new_full(cfg, present, false);
}

struct harness *h_new_polling(const struct ccid_config *cfg, bool present)
{
	return h_new_full(cfg, present, true);
}

struct harness *h_new_configured(const struct ccid_config *cfg, bool present)
{
	struct harness *h = h_new(cfg, present);

	h_set_config(h, 1);
	h_drain(h);
	return h;
}

void h_free(struct harness *h)
{
	char problem[256] = "";

	if (!h)
		return;
	ccid_dev_free(h->dev);
	h->dev = NULL;
	for (unsigned i = 0; i < CCID_EMU_MAX_SLOTS; i++) {
		struct fake_card *c = &h->cards[i];

		if (c->n_violations && !problem[0])
			snprintf(problem, sizeof(problem),
				 "card contract violated %u time(s), first: %s",
				 c->n_violations, c->violation);
		free(c->resp);
		free(c->last_apdu);
	}
	for (unsigned i = 0; i < h->n_logs; i++) {
		if (h->log_levels[i] != CCID_LOG_DEBUG && !problem[0])
			snprintf(problem, sizeof(problem),
				 "library logged at level %d (only DEBUG allowed): %s",
				 h->log_levels[i], h->logs[i]);
		free(h->logs[i]);
	}
	for (unsigned i = 0; i < h->n_allocs; i++)
		free(h->allocs[i]);
	free(h->msg);
	free(h->xfer);
	if (h->registry_index >= 0 && h->registry_index < H_MAX_LIVE &&
	    h_live[h->registry_index] == h)
		h_live[h->registry_index] = NULL;
	free(h);
	ck_assert_msg(!problem[0], "%s", problem);
}

void h_free_all(void)
{
	for (int i = 0; i < H_MAX_LIVE; i++) {
		struct harness *h = h_live[i];

		if (h)
			h_free(h);
	}
}

void h_teardown(void)
{
	h_free_all();
}

/* ------------------------------------------------------------------ */
/* USB side                                                           */
/* ------------------------------------------------------------------ */
void *h_malloc(struct harness *h, size_t n)
{
	void *p;

	ck_assert_uint_lt(h->n_allocs, N_ELEMS(h->allocs));
	p = calloc(1, n ? n : 1);
	ck_assert_ptr_nonnull(p);
	h->allocs[h->n_allocs++] = p;
	return p;
}

void h_advance(struct harness *h, uint64_t ms)
{
	h->now += ms;
}

int h_control(struct harness *h, uint8_t bm_request_type, uint8_t b_request,
	      uint16_t w_value, uint16_t w_index, uint16_t w_length,
	      uint8_t *data, size_t data_cap)
{
	const uint8_t setup[8] = {
		bm_request_type, b_request, LE16(w_value), LE16(w_index),
		LE16(w_length),
	};

	return ccid_dev_control(h->dev, setup, data, data_cap);
}

void h_set_config(struct harness *h, uint8_t value)
{
	int r = h_control(h, 0x00, USB_REQ_SET_CONFIGURATION, value, 0, 0,
			  NULL, 0);

	ck_assert_msg(r == 0, "SET_CONFIGURATION(%u) returned %d", value, r);
}

void h_send(struct harness *h, const uint8_t *msg, size_t len)
{
	ccid_dev_bulk_out(h->dev, msg, len);
}

void h_send_split(struct harness *h, const uint8_t *msg, size_t len,
		  size_t chunk)
{
	size_t off = 0;

	ck_assert(chunk > 0);
	do {
		size_t n = len - off < chunk ? len - off : chunk;

		ccid_dev_bulk_out(h->dev, msg + off, n);
		off += n;
	} while (off < len);
}

long h_pull_msg_cap(struct harness *h, size_t cap)
{
	size_t total = 0;
	size_t declared = 0;
	unsigned n_xfers = 0;

	ck_assert(cap > 0 && cap <= H_MSG_CAP);
	for (;;) {
		int n = ccid_dev_bulk_in_pull(h->dev, h->xfer, cap);

		if (n == CCID_PULL_NONE) {
			if (n_xfers == 0)
				return -1;
			ck_abort_msg("bulk-IN ran dry in the middle of a message: "
				     "%zu of %zu bytes after %u transfers "
				     "(missing zero-length packet?)",
				     total, declared, n_xfers);
		}
		ck_assert_msg(n >= 0 && (size_t)n <= cap,
			      "bulk_in_pull returned %d for a %zu-byte request",
			      n, cap);
		n_xfers++;
		ck_assert_msg(total + (size_t)n <= H_MSG_CAP,
			      "bulk-IN message larger than any CCID message");
		memcpy(h->msg + total, h->xfer, (size_t)n);
		total += (size_t)n;
		if (!declared && total >= CCID_HDR_LEN) {
			declared = CCID_HDR_LEN +
				   ((size_t)h->msg[1] | (size_t)h->msg[2] << 8 |
				    (size_t)h->msg[3] << 16 |
				    (size_t)h->msg[4] << 24);
		}
		ck_assert_msg(!declared || total <= declared,
			      "bulk-IN transfer %u ran past the end of the message "
			      "(%zu > %zu bytes declared): two messages in one "
			      "transfer or a missing zero-length packet",
			      n_xfers, total, declared);
		if ((size_t)n < cap)
			break;
	}
	ck_assert_msg(declared, "bulk-IN message of %zu bytes is shorter than "
		      "a CCID header", total);
	ck_assert_msg(total == declared,
		      "bulk-IN message ended after %zu bytes, header declares %zu",
		      total, declared);
	h->msg_len = total;
	return (long)total;
}

long h_pull_msg(struct harness *h)
{
	return h_pull_msg_cap(h, h->cfg.bulk_max_packet);
}

void h_assert_no_reply_at(struct harness *h, const char *file, int line)
{
	int n = ccid_dev_bulk_in_pull(h->dev, h->xfer, 64);

	if (n != CCID_PULL_NONE) {
		fprintf(stderr, "%s:%d: unexpected bulk-IN data (%d bytes):",
			file, line, n);
		for (int i = 0; i < n && i < 32; i++)
			fprintf(stderr, " %02x", h->xfer[i]);
		fprintf(stderr, "\n");
		ck_abort_msg("%s:%d: expected no bulk-IN reply, got %d bytes "
			     "starting %02x %02x %02x %02x %02x %02x %02x %02x %02x %02x",
			     file, line, n,
			     n > 0 ? h->xfer[0] : 0, n > 1 ? h->xfer[1] : 0,
			     n > 2 ? h->xfer[2] : 0, n > 3 ? h->xfer[3] : 0,
			     n > 4 ? h->xfer[4] : 0, n > 5 ? h->xfer[5] : 0,
			     n > 6 ? h->xfer[6] : 0, n > 7 ? h->xfer[7] : 0,
			     n > 8 ? h->xfer[8] : 0, n > 9 ? h->xfer[9] : 0);
	}
}

static void hex_row(const uint8_t *p, size_t len, size_t off)
{
	for (size_t i = 0; i < 16; i++) {
		if (off + i < len)
			fprintf(stderr, " %02x", p[off + i]);
		else
			fprintf(stderr, "   ");
	}
}

void h_assert_bytes_at(const uint8_t *got, size_t got_len, const uint8_t *exp,
		       size_t exp_len, const char *what, const char *file,
		       int line)
{
	size_t max = got_len > exp_len ? got_len : exp_len;
	size_t first = max;
	unsigned rows = 0;

	for (size_t i = 0; i < max; i++) {
		if (i >= got_len || i >= exp_len || got[i] != exp[i]) {
			first = i;
			break;
		}
	}
	if (first == max)
		return;

	fprintf(stderr, "\n%s:%d: %s: mismatch (expected %zu bytes, got %zu)\n",
		file, line, what, exp_len, got_len);
	fprintf(stderr, "        %-48s | %s\n", " expected", " got");
	for (size_t row = 0; row < max && rows < 12; row += 16) {
		bool differs = false;

		for (size_t i = row; i < row + 16 && i < max; i++)
			if (i >= got_len || i >= exp_len || got[i] != exp[i])
				differs = true;
		if (!differs && row != 0)
			continue;
		rows++;
		fprintf(stderr, "%06zx: ", row);
		hex_row(exp, exp_len, row);
		fprintf(stderr, " |");
		hex_row(got, got_len, row);
		fprintf(stderr, "\n        ");
		for (size_t i = row; i < row + 16; i++) {
			bool d = i < max && (i >= got_len || i >= exp_len ||
					     got[i] != exp[i]);
			fprintf(stderr, "%s", d ? " ^^" : "   ");
		}
		fprintf(stderr, "\n");
	}
	ck_abort_msg("%s:%d: %s: expected %zu bytes, got %zu; first difference at "
		     "byte %zu: expected %s%02x, got %s%02x (hex diff on stderr)",
		     file, line, what, exp_len, got_len, first,
		     first < exp_len ? "0x" : "(end)",
		     first < exp_len ? exp[first] : 0,
		     first < got_len ? "0x" : "(end)",
		     first < got_len ? got[first] : 0);
}

void h_expect_at(struct harness *h, const uint8_t *exp, size_t exp_len,
		 const char *what, const char *file, int line)
{
	long n = h_pull_msg(h);

	if (n < 0)
		ck_abort_msg("%s:%d: %s: no bulk-IN reply queued", file, line,
			     what);
	h_assert_bytes_at(h->msg, (size_t)n, exp, exp_len, what, file, line);
}

void h_exchange_at(struct harness *h, const struct vec *v, const char *file,
		   int line)
{
	h_send(h, v->in, v->in_len);
	h_expect_at(h, v->out, v->out_len, v->what, file, line);
	h_assert_no_reply_at(h, file, line);
}

int h_intr_pull(struct harness *h, uint8_t *buf)
{
	int n = ccid_dev_intr_in_pull(h->dev, buf, 64);

	if (n != CCID_PULL_NONE)
		ck_assert_msg(n >= 0 && n <= 64, "intr_in_pull returned %d", n);
	return n;
}

void h_expect_intr_at(struct harness *h, const uint8_t *exp, size_t exp_len,
		      const char *what, const char *file, int line)
{
	uint8_t buf[64];
	int n = h_intr_pull(h, buf);

	if (n < 0)
		ck_abort_msg("%s:%d: %s: no interrupt-IN message queued", file,
			     line, what);
	h_assert_bytes_at(buf, (size_t)n, exp, exp_len, what, file, line);
}

void h_drain(struct harness *h)
{
	uint8_t buf[64];

	for (unsigned i = 0; i < 100000; i++)
		if (ccid_dev_bulk_in_pull(h->dev, h->xfer, H_MSG_CAP) ==
		    CCID_PULL_NONE)
			break;
	for (unsigned i = 0; i < 1000; i++)
		if (ccid_dev_intr_in_pull(h->dev, buf, sizeof(buf)) ==
		    CCID_PULL_NONE)
			break;
}

void h_hdr(uint8_t out[CCID_HDR_LEN], uint8_t type, uint32_t dw_length,
	   uint8_t slot, uint8_t seq, uint8_t b7, uint8_t b8, uint8_t b9)
{
	out[0] = type;
	out[1] = (uint8_t)dw_length;
	out[2] = (uint8_t)(dw_length >> 8);
	out[3] = (uint8_t)(dw_length >> 16);
	out[4] = (uint8_t)(dw_length >> 24);
	out[5] = slot;
	out[6] = seq;
	out[7] = b7;
	out[8] = b8;
	out[9] = b9;
}

void h_power_on(struct harness *h, uint8_t slot, uint8_t seq)
{
	struct fake_card *c = &h->cards[slot];
	uint8_t cmd[CCID_HDR_LEN];
	uint8_t exp[CCID_HDR_LEN + sizeof(c->atr)];

	/* PC_to_RDR_IccPowerOn, bPowerSelect=automatic */
	h_hdr(cmd, 0x62, 0, slot, seq, 0x00, 0x00, 0x00);
	/* RDR_to_PC_DataBlock with the ATR, ICC present and active */
	h_hdr(exp, 0x80, (uint32_t)c->atr_len, slot, seq, 0x00, 0x00, 0x00);
	memcpy(exp + CCID_HDR_LEN, c->atr, c->atr_len);
	h_send(h, cmd, sizeof(cmd));
	h_expect(h, exp, CCID_HDR_LEN + c->atr_len, "IccPowerOn (setup)");
}

void h_card_insert(struct harness *h, unsigned slot)
{
	ccid_slot_card_inserted(h->cards[slot].slot);
}

void h_card_remove(struct harness *h, unsigned slot)
{
	h->cards[slot].powered = false;
	ccid_slot_card_removed(h->cards[slot].slot);
}

int h_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

TCase *h_tcase(const char *name)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, NULL, h_teardown);
	tcase_set_timeout(tc, 60);
	return tc;
}
