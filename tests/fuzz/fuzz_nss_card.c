/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_nss_card: what a hostile token, NSS or a broken libcacard hands the
 * nss backend (ccid-emu/cards/card_nss.c) and, through it, the device
 * model.  The card is made with ccid_nss_card_new_unstarted()
 * (ccid_nss_private.h: no libcacard service, no reader, no worker thread);
 * the fuzzer plays libcacard behind the backend's table of reader calls
 * (power on with any status and an ATR of any length, including lengths
 * libcacard would never claim; APDU answers of 0..65539 bytes with any
 * status words and any status; a claimed length beyond the buffer), the
 * worker thread (which queued job runs, and when: late results of
 * cancelled ops, ops that never return until their deadline fires), and
 * the service's event thread (token in or out at any moment).  The guest
 * side is the checked fake transport of fuzz_harness.c: PowerOn, XfrBlock
 * (APDUs from the input), PowerOff, GetSlotStatus and Abort, every reply
 * reassembled and checked.
 *
 * Input: byte 0 = flags (bit 0: the token is in at creation, its ATR
 * probed through the fake at once; bit 1: short-APDU level), then ops,
 * each an op byte (% 10) plus arguments; the fake libcacard reads its
 * answers from the same input when the backend calls it.
 *
 * Checks: the harness invariants on every bulk-IN and interrupt message
 * (NotifySlotChange against the backend's presence); libcacard is given
 * 1..65544 command bytes; with the extended-APDU level every successful
 * DataBlock answer to an XfrBlock is an answer the fake gave, byte for
 * byte, and every ATR one it gave; no sanitizer report or leak.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "ccid_le.h"
#include "ccid_nss_private.h"
#include "fuzz_harness.h"

#define NSS_FUZZ_RING 8u     /* answers: delivered right after they are given */
#define NSS_FUZZ_ATRS 64u    /* ATRs: a slot may answer with one cached long ago */

struct answer {
	uint8_t *data;
	size_t len;
};

struct nss_ctx {
	struct fz_dev fd;
	struct fz_in in;
	ccid_card_nss *card;
	uint8_t seq;
	uint8_t *msg;
	bool extended;
	uint8_t cmd_of_seq[256];    /* the command type last sent with a seq */
	/* Answers and ATRs the fake gave that the backend may pass on. */
	struct answer resp[NSS_FUZZ_RING];
	unsigned n_resp;
	uint8_t atr[NSS_FUZZ_ATRS][CCID_EMU_MAX_ATR];
	size_t atr_len[NSS_FUZZ_ATRS];
	unsigned n_atr;
};

/* The fake libcacard's calls get no context of their own (the VReader is
 * NULL): the input being run. */
static struct nss_ctx *cur;

/* libcacard's CAC ATR shape: what a real token gives. */
static const uint8_t cac_atr[] = { 0x3b, 0x88, 0x80, 0x01, 0x56, 0x43, 0x41,
				   0x52, 0x44, 0x5f, 0x4e, 0x53, 0x53, 0x10 };

static VReaderStatus read_status(uint8_t f)
{
	switch (f & 3) {
	case 2:
		return VREADER_OUT_OF_MEMORY;
	case 3:
		return VREADER_NO_CARD;
	default:
		return VREADER_OK;
	}
}

/* A length libcacard would never report: negative, 0, one past the
 * buffer, or absurd.  Nothing beyond the buffer is written. */
static int breach_len(uint8_t sel, int cap)
{
	static const int lens[] = { -1, 0, 1, INT_MIN, INT_MAX };

	sel %= 6;
	return sel == 5 ? cap + 1 : lens[sel];
}

static VReaderStatus fake_power_on(VReader *reader, unsigned char *atr,
				   int *atr_len)
{
	struct nss_ctx *x = cur;
	uint8_t f = fz_u8(&x->in);
	VReaderStatus st = read_status(f);
	int cap = *atr_len;
	size_t n;

	FZ_CHECK(reader == NULL, "the seam card has a reader");
	FZ_CHECK(cap >= 2 && cap <= (int)CCID_EMU_MAX_ATR,
		 "power-on buffer of %d bytes", cap);
	if (f & 4) {
		n = sizeof(cac_atr);
		memcpy(atr, cac_atr, n);
	} else {
		n = fz_u8(&x->in) % ((unsigned)cap + 1);
		fz_bytes(&x->in, atr, n);
	}
	*atr_len = (int)n;
	if (f & 0x80)
		*atr_len = breach_len(fz_u8(&x->in), cap);
	/* What the backend may take as the ATR: the bytes it was told of. */
	if (st == VREADER_OK && *atr_len >= 0 && *atr_len <= cap) {
		unsigned i = x->n_atr++ % NSS_FUZZ_ATRS;

		memcpy(x->atr[i], atr, (size_t)*atr_len);
		x->atr_len[i] = (size_t)*atr_len;
	}
	fz_trace("libcacard: power on -> st %d atr %d bytes", st, *atr_len);
	return st;
}

static VReaderStatus fake_power_off(VReader *reader)
{
	FZ_CHECK(reader == NULL, "the seam card has a reader");
	fz_trace("libcacard: power off");
	return VREADER_OK;
}

static VReaderStatus fake_xfr(VReader *reader, unsigned char *send, int send_len,
			      unsigned char *recv, int *recv_len)
{
	static const uint8_t sw1[] = { 0x90, 0x61, 0x6c, 0x63, 0x69, 0x6a, 0x6d };
	struct nss_ctx *x = cur;
	uint8_t f = fz_u8(&x->in);
	VReaderStatus st = read_status(f);
	int cap = *recv_len;
	uint32_t len;

	FZ_CHECK(reader == NULL, "the seam card has a reader");
	FZ_CHECK(send != NULL && send_len >= 1 &&
		 send_len <= (int)CCID_EMU_MAX_APDU_CMD,
		 "libcacard given a %d-byte command", send_len);
	FZ_CHECK(cap > (int)CCID_EMU_MAX_APDU_RESP,
		 "response buffer of %d bytes cannot tell a cut answer", cap);
	len = fz_u16(&x->in) | (uint32_t)(fz_u8(&x->in) & 1) << 16;
	if (f & 4)
		len %= 260;                  /* mostly short answers */
	len %= (uint32_t)cap + 1;
	fz_bytes(&x->in, recv, len > 64 ? 64 : len);
	if (len > 64)
		memset(recv + 64, fz_u8(&x->in), len - 64);
	if (len >= 2 && (f & 8)) {
		recv[len - 2] = sw1[fz_u8(&x->in) % sizeof(sw1)];
		recv[len - 1] = fz_u8(&x->in);
	}
	*recv_len = (int)len;
	if (f & 0x80)
		*recv_len = breach_len(fz_u8(&x->in), cap);
	if (st == VREADER_OK && *recv_len >= 2 &&
	    *recv_len <= (int)CCID_EMU_MAX_APDU_RESP) {
		struct answer *a = &x->resp[x->n_resp++ % NSS_FUZZ_RING];

		g_free(a->data);
		a->data = g_memdup2(recv, (size_t)*recv_len);
		a->len = (size_t)*recv_len;
	}
	fz_trace("libcacard: %d-byte APDU -> st %d, %d bytes", send_len, st,
		 *recv_len);
	return st;
}

static const struct ccid_nss_reader_fns fake_fns = {
	.power_on = fake_power_on,
	.power_off = fake_power_off,
	.xfr_bytes = fake_xfr,
};

static void spin(void)
{
	for (unsigned i = 0; i < 64 && g_main_context_iteration(NULL, FALSE); i++)
		;
}

static void send_cmd(struct nss_ctx *x, uint8_t type, const uint8_t *data,
		     uint32_t len, uint8_t s0)
{
	x->cmd_of_seq[x->seq] = type;
	fz_hdr(x->msg, type, len, 0, x->seq++, s0, 0, 0);
	if (len)
		memcpy(x->msg + CCID_HDR_LEN, data, len);
	fz_bulk_out(&x->fd, x->msg, CCID_HDR_LEN + len);
}

static bool given(const struct answer *ring, unsigned n, const uint8_t *p,
		  uint32_t len)
{
	for (unsigned i = 0; i < NSS_FUZZ_RING && i < n; i++)
		if (ring[i].len == len && memcmp(ring[i].data, p, len) == 0)
			return true;
	return false;
}

static bool atr_given(const struct nss_ctx *x, const uint8_t *p, uint32_t len)
{
	for (unsigned i = 0; i < NSS_FUZZ_ATRS && i < x->n_atr; i++)
		if (x->atr_len[i] == len && memcmp(x->atr[i], p, len) == 0)
			return true;
	return false;
}

/* A successful DataBlock carries what libcacard answered, unchanged. */
static void on_reply(void *user, const uint8_t *h, const uint8_t *payload,
		     uint32_t len)
{
	struct nss_ctx *x = user;
	uint8_t cmd = x->cmd_of_seq[h[6]];

	if (h[0] != CCID_RDR_TO_PC_DATA_BLOCK || (h[7] >> 6) != 0 || h[5] != 0)
		return;
	if (cmd == CCID_PC_TO_RDR_ICC_POWER_ON)
		FZ_CHECK(atr_given(x, payload, len),
			 "a %u-byte ATR the card never gave", len);
	else if (cmd == CCID_PC_TO_RDR_XFR_BLOCK && x->extended)
		FZ_CHECK(given(x->resp, x->n_resp, payload, len),
			 "a %u-byte answer libcacard never gave", len);
}

static void run_op(struct nss_ctx *x)
{
	uint8_t op = fz_u8(&x->in) % 10;

	switch (op) {
	case 0:
		send_cmd(x, CCID_PC_TO_RDR_ICC_POWER_ON, NULL, 0,
			 fz_u8(&x->in) % 4);
		break;
	case 1: {
		/* XfrBlock with an APDU from the input. */
		uint8_t apdu[300];
		uint32_t n = 4u + fz_u16(&x->in) % (sizeof(apdu) - 3);

		fz_bytes(&x->in, apdu, n);
		send_cmd(x, CCID_PC_TO_RDR_XFR_BLOCK, apdu, n, 0);
		break;
	}
	case 2:
		send_cmd(x, CCID_PC_TO_RDR_ICC_POWER_OFF, NULL, 0, 0);
		break;
	case 3:
		send_cmd(x, CCID_PC_TO_RDR_GET_SLOT_STATUS, NULL, 0, 0);
		break;
	case 4:
		fz_trace("worker: next job");
		(void)ccid_nss_card_run_job(x->card);
		break;
	case 5: {
		bool in = fz_u8(&x->in) & 1;

		fz_trace("event: token %s", in ? "in" : "out");
		ccid_nss_card_event(x->card, in);
		break;
	}
	case 6:
		fz_bulk_drain(&x->fd, FZ_PULL_MAX);
		fz_intr_drain(&x->fd);
		break;
	case 7: {
		/* Abort: the class request, then the bulk message. */
		uint8_t setup[8] = { 0x21, 0x01, 0, 0, 0, 0, 0, 0 };

		setup[3] = x->seq;
		fz_control(&x->fd, setup, NULL, 0);
		send_cmd(x, CCID_PC_TO_RDR_ABORT, NULL, 0, 0);
		break;
	}
	case 8:
		fz_trace("deadline of the op in flight");
		ccid_nss_card_expire(x->card);
		break;
	case 9:
		fz_trace("worker: every queued job");
		for (unsigned i = 0; i < 8 && ccid_nss_card_run_job(x->card); i++)
			spin();
		break;
	}
	spin();
}

static bool slot_present(void *user, unsigned i)
{
	struct nss_ctx *x = user;

	return i == 0 && ccid_card_nss_is_present(x->card);
}

static void quiet_log(const gchar *domain, GLogLevelFlags level,
		      const gchar *message, gpointer user)
{
	(void)domain;
	(void)level;
	(void)user;
	fz_trace("log: %s", message);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nss_ctx x;
	struct ccid_config cfg;
	uint8_t flags;
	bool present;

	/* The backend warns of a missed deadline and tells token events:
	 * only traced here. */
	g_log_set_default_handler(quiet_log, NULL);
	memset(&x, 0, sizeof(x));
	cur = &x;
	x.in.p = data;
	x.in.n = size;
	flags = fz_u8(&x.in);
	present = flags & 1;
	ccid_config_init(&cfg);
	x.extended = !(flags & 2);
	if (!x.extended)
		cfg.features = (cfg.features & ~CCID_FEAT_LEVEL_EXTENDED_APDU) |
			       CCID_FEAT_LEVEL_SHORT_APDU;
	FZ_CHECK(fz_dev_init(&x.fd, &cfg, FZ_OPS_ALL), "default config rejected");
	x.msg = malloc(FZ_PULL_MAX);
	x.fd.reply_buf = malloc(FZ_PULL_MAX);
	FZ_CHECK(x.msg != NULL && x.fd.reply_buf != NULL, "out of memory");
	x.fd.on_reply = on_reply;
	x.fd.on_reply_user = &x;
	/* A deadline far beyond any input: only op 8 ends an op early. */
	x.card = ccid_nss_card_new_unstarted(ccid_dev_get_slot(x.fd.dev, 0),
					     &fake_fns, present,
					     CCID_CARD_NSS_MAX_TIMEOUT_MS);
	FZ_CHECK(x.card != NULL, "no card");
	{
		uint8_t atr[CCID_EMU_MAX_ATR];
		gsize n = ccid_card_nss_get_atr(x.card, atr);

		FZ_CHECK(n <= CCID_EMU_MAX_ATR, "a %zu-byte ATR", n);
		FZ_CHECK(n == 0 || atr_given(&x, atr, (uint32_t)n),
			 "a probed ATR the card never gave");
	}
	x.fd.slot_present = slot_present;
	x.fd.slot_present_user = &x;
	ccid_slot_set_card(ccid_dev_get_slot(x.fd.dev, 0), ccid_card_nss_ops(),
			   x.card, ccid_card_nss_is_present(x.card));
	fz_set_configuration(&x.fd, 1);
	fz_intr_drain(&x.fd);

	for (unsigned i = 0; i < 64 && fz_more(&x.in); i++)
		run_op(&x);
	/* Run what is left, then let everything settle. */
	for (unsigned i = 0; i < 8 && ccid_nss_card_run_job(x.card); i++)
		spin();
	spin();
	fz_bulk_drain(&x.fd, FZ_PULL_MAX);
	fz_intr_drain(&x.fd);
	fz_dev_fini(&x.fd);
	ccid_card_nss_free(x.card);
	spin();
	for (unsigned i = 0; i < NSS_FUZZ_RING; i++)
		g_free(x.resp[i].data);
	free(x.msg);
	cur = NULL;
	return 0;
}
