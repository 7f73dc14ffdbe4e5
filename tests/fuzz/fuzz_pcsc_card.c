/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_pcsc_card: what a hostile card, reader or pcscd hands the pcsc
 * backend (ccid-emu/cards/card_pcsc.c) and, through it, the device model.
 * The card is made with ccid_pcsc_card_new_unstarted() (no threads, no
 * pcscd); the fuzzer plays its worker and monitor threads: it answers the
 * APDU jobs the card queues with any response (0..CCID_PCSC_RESP_CAP
 * bytes, any status, a reset by another application, a stale or future
 * generation), reports reader states (service up or down, any reader name,
 * present or not, mute, any ATR of 0..33 bytes, event counters), and runs
 * the reader-list parser on any multi-string.  The guest side is the
 * checked fake transport of fuzz_harness.c: PowerOn, XfrBlock (APDUs
 * from the input), PowerOff, GetSlotStatus and Abort, with every reply
 * reassembled and checked.
 *
 * Input: byte 0 = flags (bit 0: the initial state has a card; bit 1:
 * short-APDU level), then ops, each an op byte (% 9) plus arguments.
 *
 * Checks: the harness invariants on every bulk-IN and interrupt message,
 * at most one job in flight per APDU (generation), no sanitizer report;
 * ccid_pcsc_reader_match() picks a name that is in the list and contains
 * the pattern.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "ccid_le.h"
#include "ccid_pcsc_private.h"
#include "fuzz_harness.h"

struct pc_ctx {
	struct fz_dev fd;
	struct fz_in in;
	ccid_card_pcsc *card;
	struct ccid_pcsc_shared *sh;
	uint8_t seq;
	uint8_t *msg;
	uint8_t *resp;
	guint counter;
};

static void spin(void)
{
	for (unsigned i = 0; i < 64 && g_main_context_iteration(NULL, FALSE); i++)
		;
}

static void send_cmd(struct pc_ctx *x, uint8_t type, const uint8_t *data,
		     uint32_t len, uint8_t s0)
{
	fz_hdr(x->msg, type, len, 0, x->seq++, s0, 0, 0);
	if (len)
		memcpy(x->msg + CCID_HDR_LEN, data, len);
	fz_bulk_out(&x->fd, x->msg, CCID_HDR_LEN + len);
}

/* The worker: takes the oldest job and answers it from the input. */
static void worker_answer(struct pc_ctx *x)
{
	struct ccid_pcsc_job *job;
	struct ccid_pcsc_result res = { 0 };
	uint8_t how = fz_u8(&x->in);

	g_mutex_lock(&x->sh->lock);
	job = g_queue_pop_head(&x->sh->jobs);
	g_mutex_unlock(&x->sh->lock);
	if (job == NULL)
		return;
	if (job->kind == CCID_PCSC_JOB_XFR) {
		res.gen = job->gen;
		if (how & 0x80)
			res.gen += (how & 0x40) ? 1 : (guint64)-1;   /* stale or future */
		/* What the worker posts: OK, or a failure as mute or hardware
		 * (never "no card": presence is the monitor's word), or
		 * "no card" with the reset flag. */
		res.st = (how & 0x0f) < 10 ? CCID_CARD_OK :
			 (how & 1) ? CCID_CARD_EMUTE : CCID_CARD_EHW;
		res.reset = (how & 0x30) == 0x30;
		if (res.reset) {
			res.st = CCID_CARD_ENOCARD;
			res.why = g_strdup("the card was reset by another application");
		} else if (res.st == CCID_CARD_OK) {
			/* Any length the worker lets through (2..cap), or a
			 * short one now and then. */
			uint32_t len = fz_u16(&x->in) | (uint32_t)(fz_u8(&x->in) & 1) << 16;

			len = len % (CCID_PCSC_RESP_CAP + 1);
			if (len < 2 && !(how & 0x20))
				len = 2;
			res.resp = g_malloc(len ? len : 1);
			fz_bytes(&x->in, res.resp, len > 64 ? 64 : len);
			if (len > 64)
				memset(res.resp + 64, fz_u8(&x->in), len - 64);
			if (len >= 2 && (how & 0x20)) {
				/* A status word chosen to drive chaining:
				 * 61xx, 6Cxx, 9000. */
				static const uint8_t sw1[] = { 0x61, 0x6c, 0x90, 0x63, 0x6a };

				res.resp[len - 2] = sw1[fz_u8(&x->in) % sizeof(sw1)];
			}
			res.len = len;
		} else {
			res.why = g_strdup("PC/SC error");
		}
	}
	fz_trace("worker: job kind %d gen %llu -> st %d reset %d len %zu",
		 job->kind, (unsigned long long)job->gen, res.st, res.reset, res.len);
	g_free(job->apdu);
	g_free(job);
	ccid_pcsc_post_result(x->sh, &res);
}

static char *read_name(struct pc_ctx *x)
{
	static const char *const names[] = {
		"Vendor Reader 00 00", "Other Reader [CCID] 01 00", "", "Vendor",
	};
	uint8_t sel = fz_u8(&x->in);
	char raw[40];
	unsigned n;

	if (sel < 0xc0)
		return sel % 5 == 4 ? NULL : g_strdup(names[sel % 4]);
	n = fz_u8(&x->in) % sizeof(raw);
	fz_bytes(&x->in, (uint8_t *)raw, n);
	return g_strndup(raw, n);
}

/* The monitor: a new reader state. */
static void monitor_post(struct pc_ctx *x)
{
	struct ccid_pcsc_state st = { 0 };
	uint8_t f = fz_u8(&x->in);

	st.service = !(f & 1);
	st.reader = st.service ? read_name(x) : NULL;
	st.present = st.reader != NULL && (f & 2);
	st.mute = st.present && (f & 4);
	if (f & 8)
		x->counter++;
	st.counter = x->counter;
	if (st.present) {
		st.atr_len = fz_u8(&x->in) % (sizeof(st.atr) + 1);
		fz_bytes(&x->in, st.atr, st.atr_len);
	}
	if (f & 0x10)
		st.detail = g_strdup("the reader is gone");
	fz_trace("monitor: service %d reader %s present %d mute %d atr %zu",
		 st.service, st.reader ? st.reader : "(none)", st.present, st.mute,
		 st.atr_len);
	ccid_pcsc_post_state(x->sh, &st);
	ccid_pcsc_state_clear(&st);
}

/* pcscd's reader list: NUL-separated names ending in an empty one, or any
 * bytes at all. */
static void reader_list(struct pc_ctx *x)
{
	char list[256];
	size_t n = fz_u8(&x->in);
	g_autofree char *pattern = read_name(x);
	g_autofree char *match = NULL;
	g_autofree char *text = NULL;
	enum ccid_pcsc_match r;

	fz_bytes(&x->in, (uint8_t *)list, n);
	r = ccid_pcsc_reader_match(list, n, pattern ? pattern : "", &match);
	if (r == CCID_PCSC_MATCH_ONE) {
		FZ_CHECK(match != NULL, "a match without a name");
		FZ_CHECK(strstr(match, pattern ? pattern : "") != NULL,
			 "'%s' does not contain '%s'", match, pattern);
		FZ_CHECK(memmem(list, n, match, strlen(match)) != NULL,
			 "'%s' is not in the list", match);
	}
	text = ccid_pcsc_reader_list_text(list, n, (n & 1) ? pattern : NULL);
	FZ_CHECK(text != NULL, "no list text");
}

static void run_op(struct pc_ctx *x)
{
	uint8_t op = fz_u8(&x->in) % 9;

	switch (op) {
	case 0: {
		uint8_t voltage = fz_u8(&x->in) % 4;

		send_cmd(x, 0x62, NULL, 0, voltage);   /* IccPowerOn */
		break;
	}
	case 1: {
		/* XfrBlock with an APDU from the input. */
		uint8_t apdu[300];
		uint32_t n = 4u + fz_u16(&x->in) % (sizeof(apdu) - 3);

		fz_bytes(&x->in, apdu, n);
		send_cmd(x, 0x6f, apdu, n, 0);
		break;
	}
	case 2:
		send_cmd(x, 0x63, NULL, 0, 0);           /* IccPowerOff */
		break;
	case 3:
		send_cmd(x, 0x65, NULL, 0, 0);           /* GetSlotStatus */
		break;
	case 4:
		worker_answer(x);
		break;
	case 5:
		monitor_post(x);
		break;
	case 6:
		fz_bulk_drain(&x->fd, FZ_PULL_MAX);
		fz_intr_drain(&x->fd);
		break;
	case 7:
		reader_list(x);
		break;
	case 8: {
		/* Abort: the class request, then the bulk message. */
		uint8_t setup[8] = { 0x21, 0x01, 0, 0, 0, 0, 0, 0 };
		uint8_t seq = x->seq;

		setup[3] = seq;
		fz_control(&x->fd, setup, NULL, 0);
		send_cmd(x, 0x72, NULL, 0, 0);
		break;
	}
	}
	spin();
}

static bool slot_present(void *user, unsigned i)
{
	struct pc_ctx *x = user;

	return i == 0 && ccid_card_pcsc_is_present(x->card);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pc_ctx x;
	struct ccid_config cfg;
	struct ccid_card_pcsc_config pcfg;
	struct ccid_pcsc_state init = { .service = TRUE };
	static const uint8_t atr[] = { 0x3b, 0x8f, 0x80, 0x01, 0x80, 0x4f, 0x0c,
				       0xa0, 0x00, 0x00, 0x03, 0x06, 0x03, 0x00,
				       0x01, 0x00, 0x00, 0x00, 0x00, 0x6a };
	uint8_t flags;

	memset(&x, 0, sizeof(x));
	x.in.p = data;
	x.in.n = size;
	flags = fz_u8(&x.in);
	ccid_config_init(&cfg);
	if (flags & 2)
		cfg.features = (cfg.features & ~CCID_FEAT_LEVEL_EXTENDED_APDU) |
			       CCID_FEAT_LEVEL_SHORT_APDU;
	FZ_CHECK(fz_dev_init(&x.fd, &cfg, FZ_OPS_ALL), "default config rejected");
	x.msg = malloc(FZ_PULL_MAX);
	FZ_CHECK(x.msg != NULL, "out of memory");
	init.reader = (char *)"Vendor Reader 00 00";
	init.present = flags & 1;
	init.atr_len = sizeof(atr);
	memcpy(init.atr, atr, sizeof(atr));
	ccid_card_pcsc_config_init(&pcfg);
	x.card = ccid_pcsc_card_new_unstarted(ccid_dev_get_slot(x.fd.dev, 0), &pcfg,
					      &init);
	FZ_CHECK(x.card != NULL, "no card");
	x.sh = ccid_pcsc_card_shared(x.card);
	x.fd.slot_present = slot_present;
	x.fd.slot_present_user = &x;
	ccid_slot_set_card(ccid_dev_get_slot(x.fd.dev, 0), ccid_card_pcsc_ops(),
			   x.card, init.present);
	fz_set_configuration(&x.fd, 1);
	fz_intr_drain(&x.fd);

	for (unsigned i = 0; i < 64 && fz_more(&x.in); i++)
		run_op(&x);
	/* Answer what is left, then let everything settle. */
	for (unsigned i = 0; i < 8; i++) {
		worker_answer(&x);
		spin();
	}
	fz_bulk_drain(&x.fd, FZ_PULL_MAX);
	fz_intr_drain(&x.fd);
	fz_dev_fini(&x.fd);
	ccid_card_pcsc_free(x.card);
	spin();
	free(x.msg);
	return 0;
}
