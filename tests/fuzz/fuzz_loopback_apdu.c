/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: command APDUs from the input go through the device model
 * (XfrBlock, with extended-APDU chaining in both directions when the
 * configured message size demands it) into the loopback card, whose
 * parser and answers are checked against an independent model of
 * ISO 7816-4 §5.1 and of the command set in ccid_card_loopback.h.  The
 * parser is also compared directly with that model on every APDU.
 *
 * Input: 1 flags byte, 2 bytes max message length, then records
 * { op byte, arguments } (see lb_op()).
 */
#include <stdlib.h>
#include <string.h>

#include "ccid_card_apdu.h"
#include "ccid_card_loopback.h"
#include "ccid_le.h"
#include "fuzz_harness.h"

#define LB_MAX_RECORDS    64u
#define LB_MAX_DELAY_MS   2000u   /* simulated wait for a DELAY answer */
#define LB_WAIT_PULLS     16384u  /* a 65538-byte answer in 8-byte pulls */

struct lb_reply {
	bool have;
	uint8_t hdr[CCID_HDR_LEN];
	uint8_t *data;          /* FZ_PULL_MAX */
	uint32_t len;
};

struct lb_ctx {
	struct fz_dev fd;
	struct fz_in in;
	ccid_card_loopback *card;
	bool timer_armed;
	uint32_t timer_ms;
	bool powered;           /* as the host believes after its last command */
	uint8_t seq;
	size_t pull_cap;
	struct lb_reply reply;
	uint8_t *apdu;          /* CCID_EMU_MAX_APDU_CMD */
	uint8_t *resp;          /* what came back, CCID_EMU_MAX_APDU_RESP + slack */
	uint8_t *expect;        /* what the model says, same size */
	uint8_t *msg;           /* one outgoing message */
};

/* ------------------------------------------------------------------------
 * Independent model of command APDU decoding (ISO 7816-4 §5.1).
 * ------------------------------------------------------------------------ */
struct lb_apdu {
	enum ccid_apdu_parse_result r;
	enum ccid_apdu_case c;
	uint32_t nc, ne, data_off;
	bool has_le;
};

static uint32_t lb_be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static struct lb_apdu lb_model_parse(const uint8_t *b, size_t len)
{
	struct lb_apdu a = { .r = CCID_APDU_OK };

	if (len < 4) {
		a.r = CCID_APDU_ETOOSHORT;
	} else if (len == 4) {
		a.c = CCID_APDU_CASE_1;
	} else if (len == 5) {
		a.c = CCID_APDU_CASE_2S;
		a.has_le = true;
		a.ne = b[4] ? b[4] : 256u;
	} else if (b[4] != 0) {
		a.nc = b[4];
		a.data_off = 5;
		if (len == 5u + a.nc) {
			a.c = CCID_APDU_CASE_3S;
		} else if (len == 6u + a.nc) {
			a.c = CCID_APDU_CASE_4S;
			a.has_le = true;
			a.ne = b[len - 1] ? b[len - 1] : 256u;
		} else {
			a.r = CCID_APDU_EBADLENGTH;
		}
	} else if (len < 7) {
		a.r = CCID_APDU_EBADLENGTH;
	} else if (len == 7) {
		a.c = CCID_APDU_CASE_2E;
		a.has_le = true;
		a.ne = lb_be16(b + 5) ? lb_be16(b + 5) : 65536u;
	} else {
		a.nc = lb_be16(b + 5);
		a.data_off = 7;
		if (a.nc == 0) {
			a.r = CCID_APDU_EZEROLC;
		} else if (len == 7u + a.nc) {
			a.c = CCID_APDU_CASE_3E;
		} else if (len == 9u + a.nc) {
			a.c = CCID_APDU_CASE_4E;
			a.has_le = true;
			a.ne = lb_be16(b + len - 2) ? lb_be16(b + len - 2) : 65536u;
		} else {
			a.r = CCID_APDU_EBADLENGTH;
		}
	}
	return a;
}

static void lb_check_parser(const uint8_t *b, size_t len)
{
	struct lb_apdu m = lb_model_parse(b, len);
	struct ccid_apdu a;
	enum ccid_apdu_parse_result r = ccid_apdu_parse(b, len, &a);

	FZ_CHECK(r == m.r, "ccid_apdu_parse(%zu bytes) = %d, model says %d", len,
		 (int)r, (int)m.r);
	if (r != CCID_APDU_OK)
		return;
	FZ_CHECK(a.apdu_case == m.c && a.nc == m.nc && a.ne == m.ne &&
		 a.has_le == m.has_le && a.cla == b[0] && a.ins == b[1] &&
		 a.p1 == b[2] && a.p2 == b[3],
		 "ccid_apdu_parse(%zu bytes): case %d nc %u ne %u le %d, model case "
		 "%d nc %u ne %u le %d", len, (int)a.apdu_case, a.nc, a.ne, a.has_le,
		 (int)m.c, m.nc, m.ne, m.has_le);
	FZ_CHECK(m.nc == 0 || a.data == b + m.data_off,
		 "ccid_apdu_parse: data does not point at offset %u", m.data_off);
}

static size_t lb_put_sw(uint8_t *p, uint16_t sw)
{
	p[0] = (uint8_t)(sw >> 8);
	p[1] = (uint8_t)sw;
	return 2;
}

/* Byte i of the pattern is (i * 31 + 7) & 0xFF: it repeats every 256
 * bytes, so it is copied from one period (a loop per byte of a 64 KiB
 * answer cost more than the card under test). */
static size_t lb_put_pattern(uint8_t *p, uint32_t n)
{
	static uint8_t period[256];
	static bool made;

	if (!made) {
		for (uint32_t i = 0; i < sizeof(period); i++)
			period[i] = (uint8_t)((i * 31u + 7u) & 0xFFu);
		made = true;
	}
	for (uint32_t off = 0; off < n; off += sizeof(period))
		memcpy(p + off, period, n - off < sizeof(period) ? n - off
							  : sizeof(period));
	return n;
}

/* The answer ccid_card_loopback.h promises for @b. */
static size_t lb_model_answer(const uint8_t *b, size_t len, uint8_t *out)
{
	struct lb_apdu a = lb_model_parse(b, len);
	size_t n = 0;

	if (a.r != CCID_APDU_OK)
		return lb_put_sw(out, 0x6700);
	if (b[0] == 0x00)
		return lb_put_sw(out, b[1] == 0xA4 ? 0x9000 : 0x6D00);
	if (b[0] != CCID_LOOPBACK_CLA)
		return lb_put_sw(out, 0x6E00);
	switch (b[1]) {
	case CCID_LOOPBACK_INS_ECHO:
		memcpy(out, b + a.data_off, a.nc);
		n = a.nc;
		break;
	case CCID_LOOPBACK_INS_PATTERN:
		n = lb_put_pattern(out, a.ne);
		break;
	case CCID_LOOPBACK_INS_DELAY:
		if (a.nc != 4)
			return lb_put_sw(out, 0x6700);
		break;
	case CCID_LOOPBACK_INS_DELAYED_PATTERN:
		if (a.nc != 4)
			return lb_put_sw(out, 0x6700);
		n = lb_put_pattern(out, a.ne);
		break;
	default:
		return lb_put_sw(out, 0x6D00);
	}
	return n + lb_put_sw(out + n, 0x9000);
}

/* ------------------------------------------------------------------------
 * Loopback timer and reply capture
 * ------------------------------------------------------------------------ */
static void lb_timer_arm(void *user, uint32_t delay_ms)
{
	struct lb_ctx *x = user;

	x->timer_armed = true;
	x->timer_ms = delay_ms;
}

static void lb_timer_disarm(void *user)
{
	struct lb_ctx *x = user;

	x->timer_armed = false;
}

static const struct ccid_card_loopback_timer_ops lb_timer_ops = {
	.arm = lb_timer_arm,
	.disarm = lb_timer_disarm,
};

static void lb_on_reply(void *user, const uint8_t *hdr, const uint8_t *payload,
			uint32_t len)
{
	struct lb_ctx *x = user;

	memcpy(x->reply.hdr, hdr, CCID_HDR_LEN);
	if (len)
		memcpy(x->reply.data, payload, len);
	x->reply.len = len;
	x->reply.have = true;
}

/* Lets simulated time pass until the parked DELAY answer is due: the
 * device's time-extension timer fires along the way. */
static void lb_run_card_timer(struct lb_ctx *x)
{
	uint32_t left = x->timer_ms < LB_MAX_DELAY_MS ? x->timer_ms : LB_MAX_DELAY_MS;

	while (left) {
		uint32_t step = left;

		if (x->fd.deadline >= 0 && (uint64_t)x->fd.deadline > x->fd.now &&
		    (uint64_t)x->fd.deadline - x->fd.now < step)
			step = (uint32_t)((uint64_t)x->fd.deadline - x->fd.now);
		fz_advance(&x->fd, step);
		left -= step;
	}
	x->timer_armed = false;
	ccid_card_loopback_timer_fired(x->card);
}

/* Waits for the final reply with bSeq @seq, skipping time extensions. */
static bool lb_wait(struct lb_ctx *x, uint8_t seq)
{
	for (unsigned i = 0; i < LB_WAIT_PULLS; i++) {
		int ret;

		x->reply.have = false;
		ret = fz_bulk_pull(&x->fd, x->pull_cap);
		if (ret == CCID_PULL_NONE) {
			if (!x->timer_armed)
				return false;
			lb_run_card_timer(x);
			continue;
		}
		if (!x->reply.have)
			continue;
		FZ_CHECK(x->reply.hdr[CCID_OFF_SEQ] == seq,
			 "reply bSeq %u while waiting for %u", x->reply.hdr[CCID_OFF_SEQ],
			 seq);
		if ((x->reply.hdr[CCID_OFF_STATUS] >> CCID_CMD_STATUS_SHIFT) ==
		    CCID_CMD_TIME_EXTENSION)
			continue;
		return true;
	}
	fz_fail("no final reply for bSeq %u after %u pulls", seq, LB_WAIT_PULLS);
}

static uint8_t lb_send(struct lb_ctx *x, uint8_t type, const uint8_t *data,
		       uint32_t len, uint8_t s0, uint16_t level)
{
	uint8_t seq = x->seq++;

	fz_hdr(x->msg, type, len, 0, seq, s0, (uint8_t)level, (uint8_t)(level >> 8));
	if (len)
		memcpy(x->msg + CCID_HDR_LEN, data, len);
	fz_bulk_out(&x->fd, x->msg, CCID_HDR_LEN + len);
	return seq;
}

static bool lb_reply_ok(const struct lb_ctx *x)
{
	return (x->reply.hdr[CCID_OFF_STATUS] >> CCID_CMD_STATUS_SHIFT) == CCID_CMD_OK;
}

static void lb_power_on(struct lb_ctx *x)
{
	uint8_t seq = lb_send(x, CCID_PC_TO_RDR_ICC_POWER_ON, NULL, 0, 0, 0);

	FZ_CHECK(lb_wait(x, seq), "no reply to IccPowerOn");
	FZ_CHECK(x->reply.hdr[CCID_OFF_TYPE] == CCID_RDR_TO_PC_DATA_BLOCK &&
		 lb_reply_ok(x) && x->reply.len == 12 &&
		 memcmp(x->reply.data, "\x3B\x88\x01" "ccidloop", 11) == 0,
		 "IccPowerOn: type %02x status %02x, %u ATR bytes",
		 x->reply.hdr[CCID_OFF_TYPE], x->reply.hdr[CCID_OFF_STATUS], x->reply.len);
	x->powered = true;
}

/* One APDU exchange as a host driver does it, chaining when needed. */
static void lb_exchange(struct lb_ctx *x, size_t len)
{
	uint32_t chunk = x->fd.cfg.max_message_len - CCID_HDR_LEN;
	bool extended = x->fd.cfg.features & CCID_FEAT_LEVEL_EXTENDED_APDU;
	size_t off = 0, got = 0, want;
	uint8_t seq;

	lb_check_parser(x->apdu, len);
	if (!x->powered)
		lb_power_on(x);
	if (len == 0) {
		/* No APDU at all: refused by the device, dwLength is wrong. */
		seq = lb_send(x, CCID_PC_TO_RDR_XFR_BLOCK, NULL, 0, 0, 0);
		FZ_CHECK(lb_wait(x, seq), "no reply to an empty XfrBlock");
		FZ_CHECK(!lb_reply_ok(x) &&
			 x->reply.hdr[CCID_OFF_ERROR] == CCID_ERR_BAD_LENGTH,
			 "empty XfrBlock: status %02x error %02x",
			 x->reply.hdr[CCID_OFF_STATUS], x->reply.hdr[CCID_OFF_ERROR]);
		return;
	}
	want = lb_model_answer(x->apdu, len, x->expect);
	fz_trace("lb exchange %zu bytes (%02x %02x), expect %zu", len,
		 len > 0 ? x->apdu[0] : 0, len > 1 ? x->apdu[1] : 0, want);

	if (len <= chunk || !extended) {
		seq = lb_send(x, CCID_PC_TO_RDR_XFR_BLOCK, x->apdu,
			      len <= chunk ? (uint32_t)len : chunk, 0, 0);
		FZ_CHECK(lb_wait(x, seq), "no reply to a %zu-byte XfrBlock", len);
		if (len > chunk) {
			/* Truncated to fit: whatever the card says, the
			 * exchange is over.  Nothing more to check. */
			return;
		}
		off = len;
	} else {
		while (off < len) {
			size_t n = len - off < chunk ? len - off : chunk;
			uint16_t level = off == 0 ? CCID_LEVEL_BEGIN_CONTINUE :
					 off + n == len ? CCID_LEVEL_CONTINUE_END :
							  CCID_LEVEL_CONTINUE;

			seq = lb_send(x, CCID_PC_TO_RDR_XFR_BLOCK, x->apdu + off,
				      (uint32_t)n, 0, level);
			off += n;
			FZ_CHECK(lb_wait(x, seq), "no reply to chained part at %zu", off);
			if (off < len)
				FZ_CHECK(lb_reply_ok(x) && x->reply.len == 0 &&
					 x->reply.hdr[9] == CCID_CHAIN_CMD_MORE,
					 "chained command part: status %02x error %02x "
					 "chain %02x len %u", x->reply.hdr[CCID_OFF_STATUS],
					 x->reply.hdr[CCID_OFF_ERROR], x->reply.hdr[9],
					 x->reply.len);
		}
	}
	if (!extended && want > chunk) {
		FZ_CHECK(!lb_reply_ok(x) &&
			 x->reply.hdr[CCID_OFF_ERROR] == CCID_ERR_XFR_OVERRUN,
			 "short-APDU level: %zu-byte response not refused", want);
		return;
	}
	for (;;) {
		uint8_t chain = x->reply.hdr[9];

		FZ_CHECK(x->reply.hdr[CCID_OFF_TYPE] == CCID_RDR_TO_PC_DATA_BLOCK &&
			 lb_reply_ok(x),
			 "APDU reply type %02x status %02x error %02x",
			 x->reply.hdr[CCID_OFF_TYPE], x->reply.hdr[CCID_OFF_STATUS],
			 x->reply.hdr[CCID_OFF_ERROR]);
		FZ_CHECK(got + x->reply.len <= CCID_EMU_MAX_APDU_RESP,
			 "response grows past %u bytes", CCID_EMU_MAX_APDU_RESP);
		/* Parts that say more follows are full; the last is not empty. */
		FZ_CHECK(chain == CCID_CHAIN_BEGIN_END ||
			 (chain == CCID_CHAIN_CONTINUE_END ?
			  x->reply.len > 0 && x->reply.len <= chunk :
			  x->reply.len == chunk),
			 "response part with bChainParameter %02x has %u bytes "
			 "(chunk %u)", chain, x->reply.len, chunk);
		memcpy(x->resp + got, x->reply.data, x->reply.len);
		got += x->reply.len;
		if (chain == CCID_CHAIN_BEGIN_END || chain == CCID_CHAIN_CONTINUE_END)
			break;
		FZ_CHECK(chain == CCID_CHAIN_BEGIN_CONTINUE || chain == CCID_CHAIN_CONTINUE,
			 "response bChainParameter %02x", chain);
		seq = lb_send(x, CCID_PC_TO_RDR_XFR_BLOCK, NULL, 0, 0,
			      CCID_LEVEL_RESPONSE_MORE);
		FZ_CHECK(lb_wait(x, seq), "no reply to a response-more XfrBlock");
	}
	FZ_CHECK(got == want && memcmp(x->resp, x->expect, want) == 0,
		 "APDU %02x %02x (%zu bytes): %zu-byte answer %02x%02x, model %zu "
		 "bytes %02x%02x", x->apdu[0], len > 1 ? x->apdu[1] : 0, len, got,
		 got >= 2 ? x->resp[got - 2] : 0, got >= 2 ? x->resp[got - 1] : 0,
		 want, x->expect[want - 2], x->expect[want - 1]);
}

/* ------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------ */
/* Raw APDU bytes from the input. */
static size_t lb_read_raw(struct lb_ctx *x)
{
	uint8_t sel = fz_u8(&x->in);
	size_t len = sel < 0xE0 ? sel : fz_u16(&x->in) + (sel & 1u) * 9u;

	if (len > CCID_EMU_MAX_APDU_CMD)
		len = CCID_EMU_MAX_APDU_CMD;
	fz_bytes(&x->in, x->apdu, len);
	return len;
}

/* A well-formed APDU of a chosen case, so long encodings are reachable. */
static size_t lb_build(struct lb_ctx *x)
{
	static const uint8_t clas[] = { 0x80, 0x80, 0x80, 0x00, 0x84, 0xFF };
	static const uint8_t inss[] = { 0x01, 0x02, 0x03, 0x04, 0xA4, 0x05 };
	uint8_t sel = fz_u8(&x->in), csel = fz_u8(&x->in);
	uint8_t *a = x->apdu;
	uint32_t nc = 0, ne = 0;
	size_t len = 4;
	bool ext = csel & 0x80, lc, le;

	a[0] = clas[(sel & 7u) % sizeof(clas)];
	a[1] = inss[(sel >> 3) % sizeof(inss)];
	a[2] = fz_u8(&x->in);
	a[3] = fz_u8(&x->in);
	lc = csel & 1u;
	le = csel & 2u;
	if (lc) {
		nc = (csel & 4u) ? fz_u16(&x->in) : fz_u8(&x->in);
		if (a[1] == CCID_LOOPBACK_INS_DELAY ||
		    a[1] == CCID_LOOPBACK_INS_DELAYED_PATTERN)
			nc = (csel & 8u) ? nc : 4;
		if (!ext && nc > 255)
			nc &= 0xFF;
		if (nc == 0)
			nc = 1;
	}
	if (le)
		ne = fz_u16(&x->in);
	if (!ext && (nc > 255 || ne > 255))
		ext = true;
	if (lc) {
		if (ext) {
			a[len++] = 0;
			a[len++] = (uint8_t)(nc >> 8);
			a[len++] = (uint8_t)nc;
		} else {
			a[len++] = (uint8_t)nc;
		}
		if (a[1] == CCID_LOOPBACK_INS_DELAY ||
		    a[1] == CCID_LOOPBACK_INS_DELAYED_PATTERN) {
			/* Mostly short delays; the harness caps the wait. */
			uint32_t d = (csel & 0x10) ? fz_u32(&x->in) : fz_u8(&x->in) * 8u;

			memset(a + len, 0, nc);
			if (nc >= 4) {
				a[len] = (uint8_t)(d >> 24);
				a[len + 1] = (uint8_t)(d >> 16);
				a[len + 2] = (uint8_t)(d >> 8);
				a[len + 3] = (uint8_t)d;
			}
		} else if (csel & 0x20) {
			fz_bytes(&x->in, a + len, nc);
		} else {
			for (uint32_t i = 0; i < nc; i++)
				a[len + i] = (uint8_t)(i ^ (i >> 8));
		}
		len += nc;
	}
	if (le) {
		if (ext) {
			if (!lc)
				a[len++] = 0;
			a[len++] = (uint8_t)(ne >> 8);
			a[len++] = (uint8_t)ne;
		} else {
			a[len++] = (uint8_t)ne;
		}
	}
	return len;
}

static void lb_drain_all(struct lb_ctx *x)
{
	for (unsigned i = 0; i < 8; i++) {
		fz_bulk_drain(&x->fd, FZ_PULL_MAX);
		if (!x->timer_armed)
			break;
		lb_run_card_timer(x);
	}
	fz_intr_drain(&x->fd);
}

static void lb_op(struct lb_ctx *x, uint8_t op)
{
	ccid_slot *slot = ccid_dev_get_slot(x->fd.dev, 0);

	switch (op % 6u) {
	case 0:
		lb_exchange(x, lb_read_raw(x));
		break;
	case 1:
	case 2:
		lb_exchange(x, lb_build(x));
		break;
	case 3: {
		uint8_t seq = lb_send(x, CCID_PC_TO_RDR_ICC_POWER_OFF, NULL, 0, 0, 0);

		fz_trace("lb power off");
		FZ_CHECK(lb_wait(x, seq), "no reply to IccPowerOff");
		FZ_CHECK(x->reply.hdr[CCID_OFF_TYPE] == CCID_RDR_TO_PC_SLOT_STATUS &&
			 x->reply.hdr[CCID_OFF_STATUS] ==
				 (CCID_CMD_OK << CCID_CMD_STATUS_SHIFT | CCID_ICC_PRESENT_INACTIVE),
			 "IccPowerOff reply %02x status %02x",
			 x->reply.hdr[CCID_OFF_TYPE], x->reply.hdr[CCID_OFF_STATUS]);
		x->powered = false;
		break;
	}
	case 4: {
		/* Abort an APDU in flight (a DELAY answer parked in the card). */
		static const uint8_t delay[] = { 0x80, 0x03, 0, 0, 4, 0, 0, 0x03, 0xE8 };
		uint8_t f = fz_u8(&x->in), seq, setup[8] = {
			USB_TYPE_CLASS | USB_RECIP_INTERFACE, CCID_REQ_ABORT, 0, 0, 0, 0, 0, 0 };

		fz_trace("lb abort (flags %02x)", f);
		if (!x->powered)
			lb_power_on(x);
		seq = lb_send(x, CCID_PC_TO_RDR_XFR_BLOCK, delay, sizeof(delay), 0, 0);
		if (f & 1)
			fz_advance(&x->fd, f);
		setup[3] = (uint8_t)(seq + 1);
		FZ_CHECK(fz_control(&x->fd, setup, NULL, 0) == 0, "class ABORT stalled");
		seq = lb_send(x, CCID_PC_TO_RDR_ABORT, NULL, 0, 0, 0);
		lb_drain_all(x);
		(void)seq;
		break;
	}
	default:
		fz_trace("lb remove + insert");
		ccid_slot_card_removed(slot);
		ccid_slot_card_inserted(slot);
		lb_drain_all(x);
		x->powered = false;
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lb_ctx x;
	struct ccid_config cfg;
	uint8_t flags;
	uint16_t mlen;

	memset(&x, 0, sizeof(x));
	x.in.p = data;
	x.in.n = size;
	flags = fz_u8(&x.in);
	mlen = fz_u16(&x.in);
	ccid_config_init(&cfg);
	if (flags & 2)
		cfg.features = (cfg.features & ~CCID_FEAT_LEVEL_EXTENDED_APDU) |
			       CCID_FEAT_LEVEL_SHORT_APDU;
	if (flags & 4)
		cfg.max_message_len = CCID_EMU_MIN_MAX_MSG + mlen % 4096u;
	cfg.bulk_max_packet = (uint8_t)(8u << ((flags >> 3) & 3u));
	if (!fz_dev_init(&x.fd, &cfg, FZ_OPS_ALL))
		fz_fail("default-derived config rejected");
	x.fd.reply_buf = malloc(FZ_PULL_MAX);
	x.reply.data = malloc(FZ_PULL_MAX);
	x.apdu = malloc(CCID_EMU_MAX_APDU_CMD);
	x.resp = malloc(CCID_EMU_MAX_APDU_RESP + FZ_PULL_MAX);
	x.expect = malloc(CCID_EMU_MAX_APDU_RESP);
	x.msg = malloc(FZ_PULL_MAX);
	FZ_CHECK(x.fd.reply_buf && x.reply.data && x.apdu && x.resp && x.expect &&
		 x.msg, "out of memory");
	x.fd.on_reply = lb_on_reply;
	x.fd.on_reply_user = &x;
	/* Hosts read with a buffer of the whole message or a few packets. */
	x.pull_cap = (flags & 0x20) ? cfg.bulk_max_packet * (1u + (mlen >> 12) % 8u)
				    : cfg.max_message_len;
	x.card = ccid_card_loopback_new(ccid_dev_get_slot(x.fd.dev, 0),
					(flags & 1) ? &lb_timer_ops : NULL, &x);
	FZ_CHECK(x.card != NULL, "ccid_card_loopback_new failed");
	ccid_slot_set_card(ccid_dev_get_slot(x.fd.dev, 0), ccid_card_loopback_ops(),
			   x.card, true);
	fz_set_configuration(&x.fd, 1);
	fz_intr_drain(&x.fd);

	for (unsigned i = 0; i < LB_MAX_RECORDS && fz_more(&x.in); i++)
		lb_op(&x, fz_u8(&x.in));

	lb_drain_all(&x);
	fz_dev_fini(&x.fd);
	ccid_card_loopback_free(x.card);
	free(x.reply.data);
	free(x.apdu);
	free(x.resp);
	free(x.expect);
	free(x.msg);
	return 0;
}
