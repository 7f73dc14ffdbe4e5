/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Op-script interpreter with a fuzz-driven fake card in every slot.
 *
 * Input layout (all multi-byte values little-endian; reads past the end
 * give zeros):
 *
 *   config: 5 bytes, see fz_config_read(); bit 6 of the first turns on
 *           the device's log op, whose lines are checked
 *   slots:  1 byte, bit i = card present in slot i at start; 0xFF leaves
 *           every optional transport op out
 *   ops:    repeated { op byte, arguments }, op = byte % FZ_OP_COUNT
 *
 * The fake card records what the device asks of it and checks the
 * contract of struct ccid_card_ops: one op in flight per slot, transmit
 * only while powered, no calls after detach, nothing left in flight after
 * cancel / reset / free.  How and when it answers is itself read from the
 * input (immediate or delayed completion, status, response length up to
 * CCID_EMU_MAX_APDU_RESP, failure to start).
 */
#include <stdlib.h>
#include <string.h>

#include "ccid_le.h"
#include "fuzz_harness.h"
#include "fuzz_script.h"

#define FZ_MAX_OPS       1500u
#define FZ_MSG_MAX       (CCID_EMU_DEFAULT_MAX_MSG + 512u)

enum fz_op {
	FZ_OP_MSG,          /* structured PC_to_RDR message, split into transfers */
	FZ_OP_RAW,          /* raw bulk-OUT transfer */
	FZ_OP_ZLP,          /* zero-length bulk-OUT transfer */
	FZ_OP_PULL,         /* one bulk-IN pull */
	FZ_OP_DRAIN,        /* bulk-IN pulls until empty */
	FZ_OP_INTR,         /* one interrupt-IN pull */
	FZ_OP_TIMER,        /* advance the clock, fire the timer if due */
	FZ_OP_INSERT,
	FZ_OP_REMOVE,
	FZ_OP_HWERR,
	FZ_OP_COMPLETE,     /* the backend finishes its op (or a stray one) */
	FZ_OP_MODE,         /* how the backend answers from now on */
	FZ_OP_ABORT,        /* class ABORT request, optionally + bulk Abort */
	FZ_OP_RESET,        /* USB bus reset */
	FZ_OP_REBIND,       /* ccid_slot_set_card with a new or no backend */
	FZ_OP_SETCONF,
	FZ_OP_CONTROL,      /* FZ_FLAVOUR_CONTROL only: any SETUP */
	FZ_OP_COUNT
};

enum fz_inflight { FZ_IDLE, FZ_POWER_ON, FZ_XFR };

enum fz_mode {
	FZ_MODE_DELAYED,    /* answer when an FZ_OP_COMPLETE says so */
	FZ_MODE_IMMEDIATE,  /* answer from inside the op */
	FZ_MODE_FAIL,       /* op returns non-zero */
};

struct fz_script;

struct fz_card {
	struct fz_script *s;
	unsigned slot;
	bool bound, present, powered;
	enum fz_inflight inflight;
	enum fz_mode mode;
	uint8_t imm_status, imm_len_sel;
	uint16_t imm_len_ext;
};

struct fz_script {
	struct fz_dev fd;
	struct fz_in in;
	enum fz_script_flavour fl;
	/* Two cards per slot, alternated on rebind, so calls that reach a
	 * detached backend are caught. */
	struct fz_card cards[CCID_EMU_MAX_SLOTS][2];
	unsigned gen[CCID_EMU_MAX_SLOTS];
	bool with_detach[CCID_EMU_MAX_SLOTS];
	uint8_t *msg;       /* FZ_MSG_MAX bytes */
};

static const struct ccid_card_ops fz_card_ops;
static const struct ccid_card_ops fz_card_ops_nodetach;

/* Responses come from one read-only pattern; their content does not
 * matter to the device, their length does. */
static uint8_t fz_resp[CCID_EMU_MAX_APDU_RESP];
static bool fz_resp_ready;

static const uint8_t fz_atr_t1[] = {
	0x3B, 0x88, 0x80, 0x01, 'c', 'c', 'i', 'd', 'l', 'o', 'o', 'p', 0x05,
};
static const uint8_t fz_atr_t0[] = { 0x3B, 0x02, 0x14, 0x50 };

static const uint8_t fz_pc_types[] = {
	CCID_PC_TO_RDR_ICC_POWER_ON, CCID_PC_TO_RDR_ICC_POWER_OFF,
	CCID_PC_TO_RDR_GET_SLOT_STATUS, CCID_PC_TO_RDR_XFR_BLOCK,
	CCID_PC_TO_RDR_GET_PARAMETERS, CCID_PC_TO_RDR_RESET_PARAMETERS,
	CCID_PC_TO_RDR_SET_PARAMETERS, CCID_PC_TO_RDR_ESCAPE,
	CCID_PC_TO_RDR_ICC_CLOCK, CCID_PC_TO_RDR_T0_APDU,
	CCID_PC_TO_RDR_SECURE, CCID_PC_TO_RDR_MECHANICAL,
	CCID_PC_TO_RDR_ABORT, CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK,
};

static struct fz_card *fz_cur_card(struct fz_script *s, unsigned slot)
{
	return &s->cards[slot][s->gen[slot] & 1u];
}

static ccid_slot *fz_slot(struct fz_script *s, unsigned slot)
{
	return ccid_dev_get_slot(s->fd.dev, slot);
}

/* A slot index from the input: mostly valid, sometimes any byte. */
static uint8_t fz_read_slot(struct fz_script *s, bool allow_bad)
{
	uint8_t b = fz_u8(&s->in);

	if (allow_bad && b >= 0xF0)
		return fz_u8(&s->in);
	return (uint8_t)(b % s->fd.cfg.n_slots);
}

static enum ccid_card_status fz_status(uint8_t sel)
{
	switch (sel & 7u) {
	case 5: return CCID_CARD_ENOCARD;
	case 6: return CCID_CARD_EMUTE;
	case 7: return CCID_CARD_EHW;
	default: return CCID_CARD_OK;
	}
}

/* Response length: short most of the time, up to the maximum when the
 * input asks. */
static size_t fz_resp_len(uint8_t sel, uint16_t ext)
{
	if (sel < 0x80)
		return sel;
	if (sel < 0xC0)
		return ext;
	return 65536u + (sel & 3u) % 3u;
}

/* ------------------------------------------------------------------------
 * The fake card
 * ------------------------------------------------------------------------ */
static struct fz_card *fz_card_enter(void *opaque, const char *what)
{
	struct fz_card *c = opaque;

	FZ_CHECK(c != NULL, "%s called with a NULL card", what);
	FZ_CHECK(c->bound, "%s called on slot %u's detached backend", what, c->slot);
	return c;
}

static void fz_card_finish_power_on(struct fz_card *c, enum ccid_card_status st,
				    uint8_t atr_sel)
{
	struct fz_script *s = c->s;
	uint8_t atr[CCID_EMU_MAX_ATR];
	const uint8_t *atr_p = atr;
	size_t atr_len;

	switch ((atr_sel >> 3) & 3u) {
	case 0:
		atr_p = fz_atr_t1;
		atr_len = sizeof(fz_atr_t1);
		break;
	case 1:
		atr_p = fz_atr_t0;
		atr_len = sizeof(fz_atr_t0);
		break;
	case 2:
		atr_len = fz_u8(&s->in) % (CCID_EMU_MAX_ATR + 1u);
		fz_bytes(&s->in, atr, atr_len);
		break;
	default:
		atr_len = atr_sel >> 7;  /* 0 or 1: too short to be an ATR */
		atr[0] = 0x3B;
		break;
	}
	if (!c->present)
		st = CCID_CARD_ENOCARD;
	if (st == CCID_CARD_ENOCARD)
		c->present = false;
	c->inflight = FZ_IDLE;
	c->powered = st == CCID_CARD_OK && atr_len >= 2;
	fz_trace("  card %u: power_on_done st %d atr %zu", c->slot, (int)st, atr_len);
	ccid_slot_power_on_done(fz_slot(s, c->slot), st, atr_p, atr_len);
}

static void fz_card_finish_xfr(struct fz_card *c, enum ccid_card_status st,
			       size_t len)
{
	if (!c->present)
		st = CCID_CARD_ENOCARD;
	if (st == CCID_CARD_ENOCARD)
		c->present = c->powered = false;
	c->inflight = FZ_IDLE;
	fz_trace("  card %u: apdu_done st %d len %zu", c->slot, (int)st, len);
	ccid_slot_apdu_done(fz_slot(c->s, c->slot), st, fz_resp, len);
}

static int fz_card_power_on(void *opaque)
{
	struct fz_card *c = fz_card_enter(opaque, "power_on");

	FZ_CHECK(c->inflight == FZ_IDLE,
		 "power_on on slot %u with op %d already in flight", c->slot,
		 (int)c->inflight);
	fz_trace("  card %u: power_on (mode %d)", c->slot, (int)c->mode);
	/* A (warm) reset takes the card through deactivation. */
	c->powered = false;
	if (c->mode == FZ_MODE_FAIL)
		return -1;
	c->inflight = FZ_POWER_ON;
	if (c->mode == FZ_MODE_IMMEDIATE)
		fz_card_finish_power_on(c, fz_status(c->imm_status), c->imm_status);
	return 0;
}

static void fz_card_power_off(void *opaque)
{
	struct fz_card *c = fz_card_enter(opaque, "power_off");

	FZ_CHECK(c->inflight == FZ_IDLE,
		 "power_off on slot %u with op %d still in flight", c->slot,
		 (int)c->inflight);
	fz_trace("  card %u: power_off", c->slot);
	c->powered = false;
}

static int fz_card_transmit(void *opaque, const uint8_t *apdu, size_t len)
{
	struct fz_card *c = fz_card_enter(opaque, "transmit");

	FZ_CHECK(c->inflight == FZ_IDLE,
		 "transmit on slot %u with op %d already in flight", c->slot,
		 (int)c->inflight);
	FZ_CHECK(c->powered, "transmit on slot %u whose card is not powered", c->slot);
	FZ_CHECK(c->present, "transmit on slot %u whose card is absent", c->slot);
	FZ_CHECK(apdu != NULL && len >= 1 && len <= CCID_EMU_MAX_APDU_CMD,
		 "transmit of %zu bytes", len);
	fz_touch(apdu, len);  /* ASan sees a short buffer */
	fz_trace("  card %u: transmit %zu bytes (mode %d)", c->slot, len, (int)c->mode);
	if (c->mode == FZ_MODE_FAIL)
		return -1;
	c->inflight = FZ_XFR;
	if (c->mode == FZ_MODE_IMMEDIATE)
		fz_card_finish_xfr(c, fz_status(c->imm_status),
				   fz_resp_len(c->imm_len_sel, c->imm_len_ext));
	return 0;
}

static void fz_card_cancel(void *opaque)
{
	struct fz_card *c = fz_card_enter(opaque, "cancel");

	fz_trace("  card %u: cancel (op %d)", c->slot, (int)c->inflight);
	/* A cancelled power-on leaves the card in an unknown state: it
	 * counts as unpowered. */
	c->inflight = FZ_IDLE;
}

static void fz_card_detach(void *opaque)
{
	struct fz_card *c = fz_card_enter(opaque, "detach");

	FZ_CHECK(c->inflight == FZ_IDLE,
		 "detach on slot %u with op %d still in flight", c->slot,
		 (int)c->inflight);
	fz_trace("  card %u: detach", c->slot);
	c->bound = false;
}

static const struct ccid_card_ops fz_card_ops = {
	.name = "fuzz",
	.power_on = fz_card_power_on,
	.power_off = fz_card_power_off,
	.transmit = fz_card_transmit,
	.cancel = fz_card_cancel,
	.detach = fz_card_detach,
};

static const struct ccid_card_ops fz_card_ops_nodetach = {
	.name = "fuzz-nodetach",
	.power_on = fz_card_power_on,
	.power_off = fz_card_power_off,
	.transmit = fz_card_transmit,
	.cancel = fz_card_cancel,
	.detach = NULL,
};

static void fz_card_fresh(struct fz_script *s, unsigned slot, bool present)
{
	struct fz_card *c = fz_cur_card(s, slot);

	memset(c, 0, sizeof(*c));
	c->s = s;
	c->slot = slot;
	c->bound = true;
	c->present = present;
	c->mode = FZ_MODE_DELAYED;
}

static bool fz_card_present(void *user, unsigned slot)
{
	struct fz_script *s = user;
	const struct fz_card *c = fz_cur_card(s, slot);

	return c->bound && c->present;
}

/* ------------------------------------------------------------------------
 * Invariants between ops
 * ------------------------------------------------------------------------ */
static void fz_check_cards(struct fz_script *s)
{
	unsigned busy = 0;

	for (unsigned i = 0; i < s->fd.cfg.n_slots; i++) {
		const struct fz_card *c = fz_cur_card(s, i);

		if (c->bound && c->inflight != FZ_IDLE)
			busy++;
	}
	FZ_CHECK(busy <= s->fd.cfg.max_busy_slots,
		 "%u slots busy, bMaxCCIDBusySlots is %u", busy,
		 s->fd.cfg.max_busy_slots);
}

/* After a bus reset nothing may be in flight or powered. */
static void fz_check_quiescent(struct fz_script *s, const char *after)
{
	for (unsigned i = 0; i < s->fd.cfg.n_slots; i++) {
		const struct fz_card *c = fz_cur_card(s, i);

		if (!c->bound)
			continue;
		FZ_CHECK(c->inflight == FZ_IDLE, "slot %u: op %d in flight after %s",
			 i, (int)c->inflight, after);
		FZ_CHECK(!c->powered, "slot %u: card still powered after %s", i, after);
	}
}

/* ------------------------------------------------------------------------
 * Ops
 * ------------------------------------------------------------------------ */
static size_t fz_pull_cap(struct fz_script *s)
{
	uint8_t sel = fz_u8(&s->in);
	unsigned packet = s->fd.cfg.bulk_max_packet;

	if (sel < 0xC0)
		return packet * (1u + sel % 64u);
	if (sel == 0xFF)
		return FZ_PULL_MAX;
	if (sel >= 0xF0)
		return s->fd.cfg.max_message_len;
	return fz_u16(&s->in);
}

static void fz_send_split(struct fz_script *s, const uint8_t *msg, size_t total,
			  uint8_t split)
{
	unsigned packet = s->fd.cfg.bulk_max_packet;
	size_t chunk, off = 0;

	switch (split & 3u) {
	case 0:
		fz_bulk_out(&s->fd, msg, total);
		return;
	case 1:
		chunk = packet;
		break;
	case 2:
		chunk = 1u + fz_u8(&s->in);
		break;
	default:
		chunk = packet * (1u + fz_u8(&s->in) % 64u);
		break;
	}
	do {
		size_t n = total - off < chunk ? total - off : chunk;

		fz_bulk_out(&s->fd, msg + off, n);
		off += n;
	} while (off < total);
}

static void fz_op_msg(struct fz_script *s)
{
	uint8_t t = fz_u8(&s->in), type;
	uint8_t slot, seq, s0, s1, s2, lsel, f;
	size_t plen, total;
	uint32_t dwlen;

	type = t < 0xE0 ? fz_pc_types[t % sizeof(fz_pc_types)] : fz_u8(&s->in);
	slot = fz_read_slot(s, true);
	seq = fz_u8(&s->in);
	s0 = fz_u8(&s->in);
	s1 = fz_u8(&s->in);
	s2 = fz_u8(&s->in);
	lsel = fz_u8(&s->in);
	if (lsel < 0x80)
		plen = lsel;
	else if (lsel < 0xC0)
		plen = fz_u16(&s->in);
	else
		plen = fz_u16(&s->in) + (lsel & 1u) * 65536u;
	if (plen > FZ_MSG_MAX - CCID_HDR_LEN)
		plen = FZ_MSG_MAX - CCID_HDR_LEN;
	f = fz_u8(&s->in);
	dwlen = (uint32_t)plen;
	if (f & 0x02)
		dwlen = (f & 0x40) ? (uint32_t)((int64_t)plen + (int8_t)fz_u8(&s->in))
				   : fz_u32(&s->in);
	fz_hdr(s->msg, type, dwlen, slot, seq, s0, s1, s2);
	if (f & 0x01) {
		fz_bytes(&s->in, s->msg + CCID_HDR_LEN, plen);
	} else {
		/* A plausible APDU header, then a pattern; byte i is
		 * (i * 7 + 0x80) & 0xFF, so it repeats every 256 bytes. */
		for (size_t i = 0; i < plen && i < 256u; i++)
			s->msg[CCID_HDR_LEN + i] = (uint8_t)(i * 7u + 0x80u);
		for (size_t off = 256u; off < plen; off += 256u)
			memcpy(s->msg + CCID_HDR_LEN + off, s->msg + CCID_HDR_LEN,
			       plen - off < 256u ? plen - off : 256u);
	}
	total = CCID_HDR_LEN + plen;
	if (f & 0x80)
		total = fz_u16(&s->in) % (total + 1u);  /* truncated message */
	fz_trace("op msg type %02x slot %u seq %u spec %02x %02x %02x plen %zu "
		 "dwLength %u sent %zu split %u", type, slot, seq, s0, s1, s2, plen,
		 dwlen, total, (f >> 2) & 3u);
	fz_send_split(s, s->msg, total, (uint8_t)(f >> 2));
	if (f & 0x10)
		fz_bulk_out(&s->fd, NULL, 0);
	if (f & 0x20)
		fz_bulk_drain(&s->fd, FZ_PULL_MAX);
}

static void fz_op_raw(struct fz_script *s)
{
	size_t len = fz_u8(&s->in);

	if (len >= 0xF0)
		len = fz_u16(&s->in) % FZ_MSG_MAX;
	fz_bytes(&s->in, s->msg, len);
	fz_trace("op raw bulk-OUT %zu bytes", len);
	fz_bulk_out(&s->fd, s->msg, len);
}

static void fz_op_complete(struct fz_script *s)
{
	uint8_t slot = fz_read_slot(s, false);
	uint8_t st = fz_u8(&s->in), lsel = fz_u8(&s->in);
	uint16_t ext = lsel >= 0x80 ? fz_u16(&s->in) : 0;
	struct fz_card *c = fz_cur_card(s, slot);

	fz_trace("op complete slot %u st %02x len sel %02x", slot, st, lsel);
	if (!c->bound)
		return;
	switch (c->inflight) {
	case FZ_POWER_ON:
		fz_card_finish_power_on(c, fz_status(st), st);
		break;
	case FZ_XFR:
		fz_card_finish_xfr(c, fz_status(st), fz_resp_len(lsel, ext));
		break;
	case FZ_IDLE:
		/* A late completion the device has already given up on (the
		 * contract forbids it, the device promises to ignore it). */
		if (!(st & 0x80))
			break;
		fz_trace("  stray completion");
		if (st & 0x40)
			ccid_slot_apdu_done(fz_slot(s, slot), fz_status(st), fz_resp,
					    fz_resp_len(lsel, ext));
		else
			ccid_slot_power_on_done(fz_slot(s, slot), fz_status(st),
						fz_atr_t1, sizeof(fz_atr_t1));
		break;
	}
}

static void fz_op_mode(struct fz_script *s)
{
	uint8_t slot = fz_read_slot(s, false);
	uint8_t m = fz_u8(&s->in);
	struct fz_card *c = fz_cur_card(s, slot);

	c->mode = (m & 3u) == 1 ? FZ_MODE_IMMEDIATE :
		  (m & 3u) == 2 ? FZ_MODE_FAIL : FZ_MODE_DELAYED;
	c->imm_status = fz_u8(&s->in);
	c->imm_len_sel = fz_u8(&s->in);
	c->imm_len_ext = c->imm_len_sel >= 0x80 ? fz_u16(&s->in) : 0;
	fz_trace("op mode slot %u mode %d", slot, (int)c->mode);
}

static void fz_op_abort(struct fz_script *s)
{
	uint8_t slot = fz_read_slot(s, true), seq = fz_u8(&s->in), f = fz_u8(&s->in);
	uint8_t setup[8] = { USB_TYPE_CLASS | USB_RECIP_INTERFACE, CCID_REQ_ABORT,
			     slot, seq, 0, 0, 0, 0 };
	uint8_t msg[CCID_HDR_LEN];
	bool configured;
	int ret;

	fz_hdr(msg, CCID_PC_TO_RDR_ABORT, 0, slot, seq, 0, 0, 0);
	fz_trace("op abort slot %u seq %u flags %02x", slot, seq, f);
	/* The spec orders control first, bulk second; hosts race. */
	if (f & 1)
		fz_bulk_out(&s->fd, msg, sizeof(msg));
	configured = ccid_dev_is_configured(s->fd.dev);
	ret = fz_control(&s->fd, setup, NULL, 0);
	/* Interface requests need the Configured state (USB 2.0 §9.4). */
	FZ_CHECK(slot >= s->fd.cfg.n_slots || !configured ?
		 ret == CCID_CONTROL_STALL : ret == 0,
		 "class ABORT for slot %u (configured %d) returned %d", slot,
		 configured, ret);
	if (f & 2)
		fz_bulk_out(&s->fd, msg, sizeof(msg));
	if (f & 4)
		fz_bulk_drain(&s->fd, FZ_PULL_MAX);
}

static void fz_op_rebind(struct fz_script *s)
{
	uint8_t slot = fz_read_slot(s, false), f = fz_u8(&s->in);
	struct fz_card *old = fz_cur_card(s, slot);
	bool had_detach = s->with_detach[slot];
	bool bind = !(f & 1), present = f & 2;
	const struct ccid_card_ops *ops = (f & 4) ? &fz_card_ops_nodetach : &fz_card_ops;

	fz_trace("op rebind slot %u bind %d present %d detach-op %d", slot, bind,
		 present, !(f & 4));
	s->gen[slot]++;
	if (bind) {
		fz_card_fresh(s, slot, present);
		s->with_detach[slot] = !(f & 4);
	} else {
		memset(fz_cur_card(s, slot), 0, sizeof(struct fz_card));
		s->with_detach[slot] = false;
	}
	ccid_slot_set_card(fz_slot(s, slot), bind ? ops : NULL,
			   bind ? fz_cur_card(s, slot) : NULL, present);
	if (old->bound) {
		FZ_CHECK(old->inflight == FZ_IDLE,
			 "slot %u: rebind left the old backend's op %d in flight",
			 slot, (int)old->inflight);
		FZ_CHECK(!had_detach, "slot %u: rebind did not detach the old backend",
			 slot);
		old->bound = false;
	}
}

static void fz_op_control(struct fz_script *s)
{
	static const uint8_t types[] = {
		0x00, 0x80, 0x01, 0x81, 0x02, 0x82, 0x21, 0xA1, 0x22, 0xA2, 0x40, 0xC0,
	};
	uint8_t setup[8], sel = fz_u8(&s->in), capsel;
	uint16_t wlength;
	size_t cap;

	if (sel < 0x80) {
		/* Structured: a known request type and a small request number. */
		setup[0] = types[sel % sizeof(types)];
		setup[1] = fz_u8(&s->in) % 16u;
		setup[2] = fz_u8(&s->in);
		setup[3] = fz_u8(&s->in);
		setup[4] = fz_u8(&s->in);
		setup[5] = (sel & 0x40) ? fz_u8(&s->in) : 0;
		wlength = fz_u8(&s->in);
	} else {
		fz_bytes(&s->in, setup, 8);
		wlength = ccid_le16_load(setup + 6) % 1024u;
	}
	ccid_le16_store(setup + 6, wlength);
	capsel = fz_u8(&s->in);
	cap = capsel < 0x80 ? wlength : capsel < 0xC0 ? capsel & 0x3Fu : wlength + capsel;
	if (!(setup[0] & USB_DIR_IN))
		fz_bytes(&s->in, s->msg, wlength);
	fz_trace("op control %02x %02x %02x%02x %02x%02x len %u cap %zu", setup[0],
		 setup[1], setup[3], setup[2], setup[5], setup[4], wlength, cap);
	fz_control(&s->fd, setup, s->msg, cap);
}

static void fz_op(struct fz_script *s, enum fz_op op)
{
	uint8_t slot;

	switch (op) {
	case FZ_OP_MSG:
		fz_op_msg(s);
		break;
	case FZ_OP_RAW:
		fz_op_raw(s);
		break;
	case FZ_OP_ZLP:
		fz_trace("op zlp");
		fz_bulk_out(&s->fd, NULL, 0);
		break;
	case FZ_OP_PULL:
		fz_bulk_pull(&s->fd, fz_pull_cap(s));
		break;
	case FZ_OP_DRAIN:
		fz_bulk_drain(&s->fd, fz_pull_cap(s));
		break;
	case FZ_OP_INTR:
		fz_intr_pull(&s->fd, fz_u8(&s->in) % 16u);
		break;
	case FZ_OP_TIMER: {
		uint8_t sel = fz_u8(&s->in);
		uint32_t ms = sel < 0x80 ? sel * 8u : (uint32_t)fz_u16(&s->in) * (1u + (sel & 0x0Fu));

		fz_trace("op timer +%u ms", ms);
		fz_advance(&s->fd, ms);
		break;
	}
	case FZ_OP_INSERT:
		slot = fz_read_slot(s, false);
		fz_trace("op insert slot %u", slot);
		if (fz_cur_card(s, slot)->bound) {
			/* Re-insertion of a present card is a remove + insert. */
			fz_cur_card(s, slot)->present = true;
			fz_cur_card(s, slot)->powered = false;
		}
		ccid_slot_card_inserted(fz_slot(s, slot));
		FZ_CHECK(fz_cur_card(s, slot)->inflight == FZ_IDLE ||
			 !fz_cur_card(s, slot)->bound,
			 "slot %u: insert left an op in flight", slot);
		break;
	case FZ_OP_REMOVE:
		slot = fz_read_slot(s, false);
		fz_trace("op remove slot %u", slot);
		if (fz_cur_card(s, slot)->bound)
			fz_cur_card(s, slot)->present = fz_cur_card(s, slot)->powered = false;
		ccid_slot_card_removed(fz_slot(s, slot));
		FZ_CHECK(fz_cur_card(s, slot)->inflight == FZ_IDLE ||
			 !fz_cur_card(s, slot)->bound,
			 "slot %u: removal did not cancel the op in flight", slot);
		break;
	case FZ_OP_HWERR:
		slot = fz_read_slot(s, false);
		fz_trace("op hardware error slot %u", slot);
		ccid_slot_hardware_error(fz_slot(s, slot));
		break;
	case FZ_OP_COMPLETE:
		fz_op_complete(s);
		break;
	case FZ_OP_MODE:
		fz_op_mode(s);
		break;
	case FZ_OP_ABORT:
		fz_op_abort(s);
		break;
	case FZ_OP_RESET: {
		uint8_t f = fz_u8(&s->in);

		fz_trace("op bus reset%s", (f & 1) ? "" : " + SET_CONFIGURATION(1)");
		fz_reset(&s->fd);
		fz_check_quiescent(s, "bus reset");
		if (!(f & 1))
			fz_set_configuration(&s->fd, 1);
		break;
	}
	case FZ_OP_REBIND:
		fz_op_rebind(s);
		break;
	case FZ_OP_SETCONF: {
		uint8_t v = fz_u8(&s->in) % 3u;

		fz_trace("op SET_CONFIGURATION(%u)", v);
		fz_set_configuration(&s->fd, v);
		if (v == 0)
			fz_check_quiescent(s, "SET_CONFIGURATION(0)");
		break;
	}
	case FZ_OP_CONTROL:
		fz_op_control(s);
		break;
	case FZ_OP_COUNT:
		break;
	}
}

void fz_script_run(const uint8_t *data, size_t size, enum fz_script_flavour fl)
{
	struct fz_script *s = calloc(1, sizeof(*s));
	struct ccid_config cfg;
	uint8_t present;
	bool with_log;
	unsigned n_ops = fl == FZ_FLAVOUR_CONTROL ? FZ_OP_COUNT : FZ_OP_CONTROL;

	FZ_CHECK(s != NULL, "out of memory");
	if (!fz_resp_ready) {
		for (size_t i = 0; i < sizeof(fz_resp); i++)
			fz_resp[i] = (uint8_t)(i * 13u + 1u);
		fz_resp_ready = true;
	}
	s->in.p = data;
	s->in.n = size;
	s->fl = fl;
	if (!fz_config_read(&s->in, &cfg, fl == FZ_FLAVOUR_CONTROL, &with_log) &&
	    !fz_config_documented_valid(&cfg)) {
		fz_dev_init(&s->fd, &cfg, FZ_OPS_ALL);  /* checks the rejection */
		free(s);
		return;
	}
	present = fz_u8(&s->in);
	if (!fz_dev_init(&s->fd, &cfg,
			 present == 0xFF ? 0 : FZ_OPS_READY | (with_log ? FZ_OPS_LOG : 0))) {
		free(s);
		return;
	}
	s->fd.slot_present = fz_card_present;
	s->fd.slot_present_user = s;
	s->msg = malloc(FZ_MSG_MAX);
	FZ_CHECK(s->msg != NULL, "out of memory");
	for (unsigned i = 0; i < cfg.n_slots; i++) {
		bool p = (present >> i) & 1u;

		fz_card_fresh(s, i, p);
		s->with_detach[i] = true;
		ccid_slot_set_card(fz_slot(s, i), &fz_card_ops, fz_cur_card(s, i), p);
	}
	fz_set_configuration(&s->fd, 1);

	for (unsigned i = 0; i < FZ_MAX_OPS && fz_more(&s->in); i++) {
		fz_op(s, (enum fz_op)(fz_u8(&s->in) % n_ops));
		fz_check_cards(s);
	}

	/* Whatever is still queued must come out well-formed too. */
	if (!s->fd.halt_bulk_in)
		fz_bulk_drain(&s->fd, FZ_PULL_MAX);
	if (!s->fd.halt_intr_in) {
		fz_intr_drain(&s->fd);
		fz_check_presence_reported(&s->fd);
	}
	fz_dev_fini(&s->fd);
	for (unsigned i = 0; i < cfg.n_slots; i++) {
		const struct fz_card *c = fz_cur_card(s, i);

		if (!c->bound)
			continue;
		FZ_CHECK(c->inflight == FZ_IDLE,
			 "slot %u: op %d still in flight after ccid_dev_free", i,
			 (int)c->inflight);
		FZ_CHECK(!s->with_detach[i], "slot %u: ccid_dev_free did not detach", i);
	}
	free(s->msg);
	free(s);
}
