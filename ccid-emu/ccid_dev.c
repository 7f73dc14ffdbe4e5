/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Device handle lifetime, configuration checks, the per-slot state machine
 * (absent / present-inactive / present-active), timers and the reverse API
 * card backends call.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ccid_dev_private.h"

#define CCID_LEVEL_MASK \
	(CCID_FEAT_LEVEL_TPDU | CCID_FEAT_LEVEL_SHORT_APDU | \
	 CCID_FEAT_LEVEL_EXTENDED_APDU)
#define CCID_FEATURES_KNOWN \
	(CCID_FEAT_AUTO_PARAM_ATR | CCID_FEAT_AUTO_ACTIVATION | \
	 CCID_FEAT_AUTO_VOLTAGE | CCID_FEAT_AUTO_CLOCK | CCID_FEAT_AUTO_BAUD | \
	 CCID_FEAT_AUTO_PPS_NEGOTIATION | CCID_FEAT_AUTO_PPS_CURRENT | \
	 CCID_FEAT_CLOCK_STOP | CCID_FEAT_NAD_NOT_ZERO | CCID_FEAT_AUTO_IFSD | \
	 CCID_LEVEL_MASK | CCID_FEAT_USB_WAKEUP)

void ccid_config_init(struct ccid_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	/* A VID:PID in stock libccid's reader list: pcscd only drives listed
	 * IDs.  The strings say what the reader really is, so lsusb and the
	 * guest's pcscd reader name show "ccid-emu". */
	cfg->vendor_id = CCID_EMU_DEFAULT_VID;
	cfg->product_id = CCID_EMU_DEFAULT_PID;
	cfg->bcd_device = CCID_EMU_DEFAULT_BCD;
	cfg->manufacturer = "ccid-emu";
	cfg->product = "ccid-emu Virtual Reader";
	cfg->serial = "0001";
	/* pcscd adds it to the reader name in brackets: kept short so the
	 * name fits the 64 characters of a PKCS#11 slot description. */
	cfg->interface = "ccid-emu";
	cfg->n_slots = 1;
	cfg->max_busy_slots = 1;
	cfg->max_message_len = CCID_EMU_DEFAULT_MAX_MSG;
	/* Parameters are the reader's business at the APDU level: it
	 * negotiates them itself (0x40).  Not also 0x80 (PPS by the reader on
	 * the host's parameters): CCID 1.1 §5.1 makes them alternatives, and
	 * GnuPG's driver warns about "conflicting negotiation features". */
	cfg->features = CCID_FEAT_AUTO_PARAM_ATR | CCID_FEAT_AUTO_VOLTAGE |
			CCID_FEAT_AUTO_CLOCK | CCID_FEAT_AUTO_BAUD |
			CCID_FEAT_AUTO_PPS_NEGOTIATION |
			CCID_FEAT_LEVEL_EXTENDED_APDU;
	cfg->bulk_max_packet = 64;
	/* Interrupt polling every 4 ms keeps card events well inside the
	 * 20 ms budget while costing an emulated host controller little. */
	cfg->intr_interval_ms = 4;
	cfg->time_extension_ms = 500;
	cfg->remote_wakeup = false;
}

static const char *ccid_config_check(const struct ccid_config *cfg)
{
	uint32_t level = cfg->features & CCID_LEVEL_MASK;

	if (cfg->n_slots < 1 || cfg->n_slots > CCID_EMU_MAX_SLOTS)
		return "n_slots must be 1..8";
	if (cfg->max_busy_slots < 1 || cfg->max_busy_slots > cfg->n_slots)
		return "max_busy_slots must be 1..n_slots";
	if (cfg->max_message_len < CCID_EMU_MIN_MAX_MSG ||
	    cfg->max_message_len > CCID_EMU_DEFAULT_MAX_MSG)
		return "max_message_len must be 271..65554";
	if (cfg->features & ~CCID_FEATURES_KNOWN)
		return "features has unknown bits";
	if (level != CCID_FEAT_LEVEL_SHORT_APDU &&
	    level != CCID_FEAT_LEVEL_EXTENDED_APDU)
		return "features must select exactly one of the short or extended APDU levels";
	if ((cfg->features & CCID_FEAT_AUTO_PPS_NEGOTIATION) &&
	    (cfg->features & CCID_FEAT_AUTO_PPS_CURRENT))
		return "features: automatic parameter negotiation (0x40) and automatic PPS on the current parameters (0x80) exclude each other";
	if (cfg->bulk_max_packet != 8 && cfg->bulk_max_packet != 16 &&
	    cfg->bulk_max_packet != 32 && cfg->bulk_max_packet != 64)
		return "bulk_max_packet must be 8, 16, 32 or 64";
	if (cfg->intr_interval_ms < 1)
		return "intr_interval_ms must be 1..255";
	if (cfg->time_extension_ms < 10 || cfg->time_extension_ms > 60000)
		return "time_extension_ms must be 10..60000";
	return NULL;
}

void ccid_dev_log(const ccid_dev *dev, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!dev->tops->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	dev->tops->log(dev->user, CCID_LOG_DEBUG, line);
}

uint64_t ccid_dev_now(const ccid_dev *dev)
{
	return dev->tops->now_ms(dev->user);
}

static void ccid_slot_init(ccid_dev *dev, struct ccid_slot *slot, unsigned i)
{
	slot->dev = dev;
	slot->index = (uint8_t)i;
	ccid_slot_default_params(slot);
}

ccid_dev *ccid_dev_new(const struct ccid_config *cfg,
		       const struct ccid_transport_ops *tops, void *user,
		       const char **err)
{
	const char *msg;
	ccid_dev *dev;

	if (!err)
		err = &msg;
	if (!cfg || !tops) {
		*err = "config and transport ops are required";
		return NULL;
	}
	if (!tops->now_ms || !tops->timer_update) {
		*err = "transport ops now_ms and timer_update are required";
		return NULL;
	}
	*err = ccid_config_check(cfg);
	if (*err)
		return NULL;

	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		*err = "out of memory";
		return NULL;
	}
	dev->cfg = *cfg;
	dev->tops = tops;
	dev->user = user;
	dev->n_slots = cfg->n_slots;
	dev->timer_deadline = -1;
	if (ccid_descriptors_build(dev, err) < 0) {
		free(dev);
		return NULL;
	}
	/* The strings now live in the descriptors; never keep the caller's
	 * pointers. */
	dev->cfg.manufacturer = dev->cfg.product = dev->cfg.serial = NULL;
	dev->cfg.interface = NULL;

	dev->rx_buf = malloc(cfg->max_message_len);
	if (!dev->rx_buf) {
		ccid_dev_free(dev);
		*err = "out of memory";
		return NULL;
	}
	for (unsigned i = 0; i < dev->n_slots; i++) {
		struct ccid_slot *slot = &dev->slots[i];

		ccid_slot_init(dev, slot, i);
		slot->cmd_buf = malloc(CCID_EMU_MAX_APDU_CMD);
		slot->resp_buf = malloc(CCID_EMU_MAX_APDU_RESP);
		if (!slot->cmd_buf || !slot->resp_buf) {
			ccid_dev_free(dev);
			*err = "out of memory";
			return NULL;
		}
	}
	return dev;
}

void ccid_dev_free(ccid_dev *dev)
{
	if (!dev)
		return;
	for (unsigned i = 0; i < dev->n_slots; i++) {
		struct ccid_slot *slot = &dev->slots[i];

		if (slot->ops) {
			ccid_slot_cancel_op(slot);
			if (slot->ops->detach)
				slot->ops->detach(slot->card);
		}
		free(slot->cmd_buf);
		free(slot->resp_buf);
	}
	free(dev->rx_buf);
	free(dev);
}

ccid_slot *ccid_dev_get_slot(ccid_dev *dev, unsigned index)
{
	if (!dev || index >= dev->n_slots)
		return NULL;
	return &dev->slots[index];
}

unsigned ccid_slot_get_index(const ccid_slot *slot)
{
	return slot->index;
}

bool ccid_slot_is_busy(const ccid_slot *slot)
{
	return slot->op != CCID_OP_NONE;
}

bool ccid_dev_is_configured(const ccid_dev *dev)
{
	return dev->configuration != 0;
}

bool ccid_dev_reply_pending(const ccid_dev *dev)
{
	return dev != NULL && ccid_dev_busy_slots(dev) > 0;
}

uint8_t ccid_slot_icc_status(const struct ccid_slot *slot)
{
	if (!slot->present)
		return CCID_ICC_ABSENT;
	return slot->powered ? CCID_ICC_PRESENT_ACTIVE : CCID_ICC_PRESENT_INACTIVE;
}

unsigned ccid_dev_busy_slots(const ccid_dev *dev)
{
	unsigned n = 0;

	for (unsigned i = 0; i < dev->n_slots; i++)
		if (dev->slots[i].op != CCID_OP_NONE)
			n++;
	return n;
}

/* Announces the earliest time-extension deadline to the transport, only
 * when it changed, so a steady stream of fast APDUs costs no timer calls. */
void ccid_dev_timer_sync(ccid_dev *dev)
{
	int64_t deadline = -1;

	for (unsigned i = 0; i < dev->n_slots; i++) {
		const struct ccid_slot *slot = &dev->slots[i];

		if (slot->op == CCID_OP_NONE)
			continue;
		if (deadline < 0 || (int64_t)slot->te_deadline < deadline)
			deadline = (int64_t)slot->te_deadline;
	}
	if (deadline == dev->timer_deadline)
		return;
	dev->timer_deadline = deadline;
	dev->tops->timer_update(dev->user, deadline);
}

void ccid_dev_timer_expired(ccid_dev *dev)
{
	uint64_t now = ccid_dev_now(dev);

	/* The transport's one-shot timer has fired: forget it so that
	 * timer_sync re-arms even if the earliest deadline is unchanged. */
	dev->timer_deadline = -1;
	for (unsigned i = 0; i < dev->n_slots; i++) {
		struct ccid_slot *slot = &dev->slots[i];

		if (slot->op == CCID_OP_NONE || slot->te_deadline > now)
			continue;
		ccid_slot_time_extension(slot);
		slot->te_deadline = now + dev->cfg.time_extension_ms;
	}
	ccid_dev_timer_sync(dev);
}

void ccid_slot_reset_chain(struct ccid_slot *slot)
{
	slot->chain = CCID_CHAIN_IDLE;
	slot->cmd_len = 0;
	if (!slot->resp_in_queue) {
		slot->resp_len = 0;
		slot->resp_off = 0;
	}
}

bool ccid_slot_cancel_op(struct ccid_slot *slot)
{
	if (slot->op == CCID_OP_NONE)
		return false;
	/* Clear first: a backend that completes from inside cancel() (which
	 * the contract forbids, but a buggy one might) is then ignored. */
	slot->op = CCID_OP_NONE;
	if (slot->ops)
		slot->ops->cancel(slot->card);
	return true;
}

/* Protocols offered by an ATR (ISO 7816-3 §8.2): T=0 is implied when no
 * TDi names a protocol; the first offered protocol is the default. */
void ccid_slot_parse_atr(struct ccid_slot *slot)
{
	const uint8_t *atr = slot->atr;
	size_t len = slot->atr_len, pos = 2;
	uint8_t y, first = 0xFF, offered = 0;

	if (len < 2) {
		slot->atr_protocols = CCID_PROTOCOL_T0;
		slot->protocol = 0;
		return;
	}
	y = atr[1] >> 4;
	while (y) {
		uint8_t td;

		/* TAi, TBi, TCi present bits before TDi. */
		for (unsigned bit = 0; bit < 3; bit++)
			if (y & (1u << bit))
				pos++;
		if (!(y & 0x08) || pos >= len)
			break;
		td = atr[pos++];
		if ((td & 0x0F) <= 1) {
			offered |= (uint8_t)(1u << (td & 0x0F));
			if (first == 0xFF)
				first = td & 0x0F;
		}
		y = td >> 4;
	}
	if (!offered) {
		offered = CCID_PROTOCOL_T0;
		first = 0;
	}
	slot->atr_protocols = offered;
	slot->protocol = first;
}

/* Defaults of abProtocolDataStructure (CCID 1.1 §6.1.7): Fi=372, Di=1,
 * no extra guard time, WI=10 / BWI=4 CWI=13, clock stop not supported,
 * IFSC 32 (ISO 7816-3 default), NAD 0. */
void ccid_slot_default_params(struct ccid_slot *slot)
{
	if (slot->protocol == 1) {
		slot->params[0] = 0x11;  /* bmFindexDindex */
		slot->params[1] = 0x10;  /* bmTCCKST1: LRC, direct convention */
		slot->params[2] = 0x00;  /* bGuardTimeT1 */
		slot->params[3] = 0x4D;  /* bmWaitingIntegersT1: BWI 4, CWI 13 */
		slot->params[4] = 0x00;  /* bClockStop */
		slot->params[5] = 0x20;  /* bIFSC */
		slot->params[6] = 0x00;  /* bNadValue */
	} else {
		slot->params[0] = 0x11;  /* bmFindexDindex */
		slot->params[1] = 0x00;  /* bmTCCKST0: direct convention */
		slot->params[2] = 0x00;  /* bGuardTimeT0 */
		slot->params[3] = 0x0A;  /* bWaitingIntegerT0 */
		slot->params[4] = 0x00;  /* bClockStop */
		slot->params[5] = 0x00;
		slot->params[6] = 0x00;
	}
}

void ccid_slot_set_card(ccid_slot *slot, const struct ccid_card_ops *ops,
			void *card, bool present)
{
	bool was_present = slot->present;

	if (slot->op != CCID_OP_NONE) {
		ccid_slot_cancel_op(slot);
		ccid_slot_reply_pending_error(slot, CCID_ERR_HW_ERROR);
	}
	if (slot->ops && slot->ops->detach)
		slot->ops->detach(slot->card);
	/* A hook belongs to the backend it was set up with. */
	slot->apdu_hook = NULL;
	slot->apdu_hook_user = NULL;
	slot->ops = ops;
	slot->card = ops ? card : NULL;
	slot->present = ops ? present : false;
	slot->powered = false;
	slot->clock_stopped = false;
	slot->atr_len = 0;
	ccid_slot_reset_chain(slot);
	if (was_present || slot->present) {
		/* A new backend is a new card, even if one was present. */
		slot->changed = true;
		ccid_intr_notify(slot->dev);
	}
	ccid_dev_timer_sync(slot->dev);
}

void ccid_slot_card_inserted(ccid_slot *slot)
{
	if (!slot->ops) {
		ccid_dev_log(slot->dev, "slot %u: insert without a backend ignored",
			     slot->index);
		return;
	}
	if (slot->present)
		ccid_slot_card_removed(slot);
	slot->present = true;
	slot->powered = false;
	slot->changed = true;
	ccid_dev_log(slot->dev, "slot %u: card inserted", slot->index);
	ccid_intr_notify(slot->dev);
}

void ccid_slot_card_removed(ccid_slot *slot)
{
	if (!slot->present)
		return;
	slot->present = false;
	slot->powered = false;
	slot->clock_stopped = false;
	slot->atr_len = 0;
	if (slot->op != CCID_OP_NONE) {
		ccid_slot_cancel_op(slot);
		ccid_slot_reply_pending_error(slot, CCID_ERR_ICC_MUTE);
	}
	ccid_slot_reset_chain(slot);
	slot->changed = true;
	ccid_dev_log(slot->dev, "slot %u: card removed", slot->index);
	ccid_intr_notify(slot->dev);
	ccid_dev_timer_sync(slot->dev);
}

void ccid_slot_hardware_error(ccid_slot *slot)
{
	uint8_t seq = slot->op != CCID_OP_NONE ? slot->cmd_seq : slot->last_seq;

	if (slot->op != CCID_OP_NONE) {
		ccid_slot_cancel_op(slot);
		ccid_slot_reply_pending_error(slot, CCID_ERR_HW_ERROR);
	}
	ccid_dev_log(slot->dev, "slot %u: hardware error", slot->index);
	ccid_intr_hwerr(slot->dev, slot->index, seq);
	ccid_dev_timer_sync(slot->dev);
}

/* The backend reported the card gone through an operation's status:
 * the host must hear about it on the interrupt endpoint as for any
 * removal, even if the backend never calls ccid_slot_card_removed(). */
static void ccid_slot_card_lost(struct ccid_slot *slot)
{
	slot->present = false;
	slot->powered = false;
	slot->clock_stopped = false;
	slot->atr_len = 0;
	ccid_slot_reset_chain(slot);
	slot->changed = true;
	ccid_intr_notify(slot->dev);
}

static uint8_t ccid_card_status_error(enum ccid_card_status st)
{
	switch (st) {
	case CCID_CARD_ENOCARD:
	case CCID_CARD_EMUTE:
		return CCID_ERR_ICC_MUTE;
	case CCID_CARD_ECANCELLED:
		return CCID_ERR_CMD_ABORTED;
	case CCID_CARD_OK:
	case CCID_CARD_EHW:
	default:
		return CCID_ERR_HW_ERROR;
	}
}

void ccid_slot_power_on_done(ccid_slot *slot, enum ccid_card_status st,
			     const uint8_t *atr, size_t atr_len)
{
	ccid_dev *dev = slot->dev;

	if (slot->op != CCID_OP_POWER_ON) {
		ccid_dev_log(dev, "slot %u: stray power-on completion ignored",
			     slot->index);
		return;
	}
	slot->op = CCID_OP_NONE;
	if (st == CCID_CARD_OK && (atr_len < 2 || atr_len > CCID_EMU_MAX_ATR || !atr)) {
		ccid_dev_log(dev, "slot %u: backend gave a %zu-byte ATR",
			     slot->index, atr_len);
		st = CCID_CARD_EHW;
	}
	if (st != CCID_CARD_OK) {
		slot->powered = false;
		if (st == CCID_CARD_ENOCARD)
			ccid_slot_card_lost(slot);
		ccid_slot_reply_pending_error(slot, ccid_card_status_error(st));
		ccid_dev_timer_sync(dev);
		return;
	}
	memcpy(slot->atr, atr, atr_len);
	slot->atr_len = (uint8_t)atr_len;
	slot->powered = true;
	slot->clock_stopped = false;
	ccid_slot_parse_atr(slot);
	ccid_slot_default_params(slot);
	ccid_txq_reply(dev, CCID_RDR_TO_PC_DATA_BLOCK, slot->index, slot->cmd_seq,
		       ccid_status_byte(CCID_CMD_OK, CCID_ICC_PRESENT_ACTIVE), 0,
		       CCID_CHAIN_BEGIN_END, slot->atr, slot->atr_len);
	ccid_dev_timer_sync(dev);
}

void ccid_slot_set_apdu_hook(ccid_slot *slot, ccid_slot_apdu_hook_fn fn,
			     void *user)
{
	slot->apdu_hook = fn;
	slot->apdu_hook_user = fn ? user : NULL;
}

void ccid_slot_apdu_done(ccid_slot *slot, enum ccid_card_status st,
			 const uint8_t *resp, size_t resp_len)
{
	if (slot->op != CCID_OP_XFR) {
		ccid_dev_log(slot->dev, "slot %u: stray APDU completion ignored",
			     slot->index);
		return;
	}
	/* An interposer (the PIN-retry guard) sees the backend's answer
	 * first and ends the guest's command itself. */
	if (slot->apdu_hook) {
		slot->apdu_hook(slot->apdu_hook_user, st, resp, resp_len);
		return;
	}
	ccid_slot_apdu_complete(slot, st, resp, resp_len);
}

void ccid_slot_apdu_complete(ccid_slot *slot, enum ccid_card_status st,
			     const uint8_t *resp, size_t resp_len)
{
	ccid_dev *dev = slot->dev;
	uint32_t chunk = dev->cfg.max_message_len - CCID_HDR_LEN;

	if (slot->op != CCID_OP_XFR) {
		ccid_dev_log(dev, "slot %u: stray APDU completion ignored",
			     slot->index);
		return;
	}
	slot->op = CCID_OP_NONE;
	if (st == CCID_CARD_OK && (resp_len > CCID_EMU_MAX_APDU_RESP ||
				   (resp_len && !resp))) {
		ccid_dev_log(dev, "slot %u: backend gave a %zu-byte response",
			     slot->index, resp_len);
		st = CCID_CARD_EHW;
	}
	if (st == CCID_CARD_OK && resp_len > chunk &&
	    !(dev->cfg.features & CCID_FEAT_LEVEL_EXTENDED_APDU)) {
		/* Short APDU level cannot chain: the response does not fit. */
		ccid_slot_reply_pending_error(slot, CCID_ERR_XFR_OVERRUN);
		ccid_dev_timer_sync(dev);
		return;
	}
	if (st != CCID_CARD_OK) {
		if (st == CCID_CARD_ENOCARD)
			ccid_slot_card_lost(slot);
		ccid_slot_reply_pending_error(slot, ccid_card_status_error(st));
		ccid_dev_timer_sync(dev);
		return;
	}
	if (resp_len)
		memcpy(slot->resp_buf, resp, resp_len);
	slot->resp_len = (uint32_t)resp_len;
	if (resp_len <= chunk) {
		slot->resp_off = slot->resp_len;
		ccid_txq_reply_resp(dev, slot, slot->cmd_seq, 0, slot->resp_len,
				    CCID_CHAIN_BEGIN_END);
	} else {
		slot->chain = CCID_CHAIN_RESP;
		slot->resp_off = chunk;
		ccid_txq_reply_resp(dev, slot, slot->cmd_seq, 0, chunk,
				    CCID_CHAIN_BEGIN_CONTINUE);
	}
	ccid_dev_timer_sync(dev);
}

void ccid_dev_reset(ccid_dev *dev)
{
	ccid_txq_clear(dev);
	ccid_rx_reset(dev);
	for (unsigned i = 0; i < dev->n_slots; i++) {
		struct ccid_slot *slot = &dev->slots[i];

		ccid_slot_cancel_op(slot);
		if (slot->powered && slot->ops)
			slot->ops->power_off(slot->card);
		slot->powered = false;
		slot->clock_stopped = false;
		slot->abort_ctrl = false;
		slot->abort_bulk_done = false;
		slot->changed = false;
		ccid_slot_reset_chain(slot);
	}
	dev->notify_pending = false;
	dev->hwerr_count = 0;
	dev->configuration = 0;
	dev->remote_wakeup_enabled = false;
	dev->halt_bulk_in = dev->halt_bulk_out = dev->halt_intr_in = false;
	ccid_dev_timer_sync(dev);
}
