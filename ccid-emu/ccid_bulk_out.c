/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bulk-OUT: assembly of PC_to_RDR messages from USB transfers, the checks
 * every message passes (dwLength against the bytes received and against
 * dwMaxCCIDMessageLength, bSlot, busy slots, abort state), and the one
 * dispatch table {message type, length rule, handler, reply type}.
 *
 * Every byte here comes from the guest and is hostile: nothing is read
 * past what was received, and every failure is answered with the reply
 * type CCID 1.1 §6.1 assigns to the command.
 */
#include <string.h>

#include "ccid_dev_private.h"
#include "ccid_le.h"

/* A complete message as received; len == CCID_HDR_LEN + dwLength. */
struct ccid_msg {
	const uint8_t *buf;
	uint32_t len;
	uint8_t type, slot, seq;
	const uint8_t *data;        /* abData */
	uint32_t data_len;          /* dwLength */
};

enum ccid_len_rule {
	CCID_LEN_ZERO,      /* dwLength must be 0 */
	CCID_LEN_ANY,       /* anything up to dwMaxCCIDMessageLength - 10 */
	CCID_LEN_PARAMS,    /* 5 (T=0) or 7 (T=1): checked with bProtocolNum */
	CCID_LEN_RATE,      /* 8: dwClockFrequency + dwDataRate */
};

struct ccid_cmd;
typedef void (*ccid_cmd_fn)(ccid_dev *dev, struct ccid_slot *slot,
			    const struct ccid_cmd *cmd, const struct ccid_msg *m);

struct ccid_cmd {
	uint8_t type;
	enum ccid_len_rule len_rule;
	ccid_cmd_fn handler;
	uint8_t reply_type;
	bool starts_op;             /* counts against bMaxCCIDBusySlots */
};

/* --- replies ------------------------------------------------------------ */

static void ccid_reply_fail(ccid_dev *dev, const struct ccid_cmd *cmd,
			    uint8_t slot, uint8_t seq, uint8_t icc,
			    uint8_t berror)
{
	uint8_t reply = cmd ? cmd->reply_type : CCID_RDR_TO_PC_SLOT_STATUS;

	ccid_dev_log(dev, "slot %u seq %u: %s failed: %s", slot, seq,
		     ccid_msg_type_name(cmd ? cmd->type : 0),
		     ccid_error_name(berror));
	ccid_txq_reply(dev, reply, slot, seq,
		       ccid_status_byte(CCID_CMD_FAILED, icc), berror, 0, NULL, 0);
}

static void ccid_reply_slot_fail(ccid_dev *dev, const struct ccid_cmd *cmd,
				 struct ccid_slot *slot, uint8_t seq,
				 uint8_t berror)
{
	ccid_reply_fail(dev, cmd, slot->index, seq, ccid_slot_icc_status(slot),
			berror);
}

static uint8_t ccid_clock_status(const struct ccid_slot *slot)
{
	/* bClockStatus (CCID 1.1 §6.2.2): 0 running, 1 stopped in state L. */
	return slot->powered && slot->clock_stopped ? 1 : 0;
}

static void ccid_reply_slot_status(ccid_dev *dev, struct ccid_slot *slot,
				   uint8_t seq)
{
	ccid_txq_reply(dev, CCID_RDR_TO_PC_SLOT_STATUS, slot->index, seq,
		       ccid_status_byte(CCID_CMD_OK, ccid_slot_icc_status(slot)),
		       0, ccid_clock_status(slot), NULL, 0);
}

static void ccid_reply_parameters(ccid_dev *dev, struct ccid_slot *slot,
				  uint8_t seq)
{
	ccid_txq_reply(dev, CCID_RDR_TO_PC_PARAMETERS, slot->index, seq,
		       ccid_status_byte(CCID_CMD_OK, ccid_slot_icc_status(slot)),
		       0, slot->protocol, slot->params,
		       slot->protocol == 1 ? 7 : 5);
}

/* The reply type of the command a slot is waiting on: only power on and
 * XfrBlock run on the backend, and both answer with a DataBlock. */
void ccid_slot_reply_pending_error(struct ccid_slot *slot, uint8_t berror)
{
	ccid_txq_reply(slot->dev, CCID_RDR_TO_PC_DATA_BLOCK, slot->index,
		       slot->cmd_seq,
		       ccid_status_byte(CCID_CMD_FAILED, ccid_slot_icc_status(slot)),
		       berror, 0, NULL, 0);
}

void ccid_slot_time_extension(struct ccid_slot *slot)
{
	/* One reply in the queue already keeps the host's read alive; more
	 * would only pile up if the host is not reading. */
	if (slot->queued)
		return;
	/* bError carries the BWT multiplier (CCID 1.1 §6.2.1); 1 keeps
	 * libccid's read timeout from growing on every extension. */
	ccid_txq_reply(slot->dev, CCID_RDR_TO_PC_DATA_BLOCK, slot->index,
		       slot->cmd_seq,
		       ccid_status_byte(CCID_CMD_TIME_EXTENSION,
					ccid_slot_icc_status(slot)),
		       1, 0, NULL, 0);
}

/* --- backend operations ------------------------------------------------- */

static void ccid_slot_start_op(struct ccid_slot *slot, enum ccid_slot_op op,
			       uint8_t seq)
{
	slot->op = op;
	slot->cmd_seq = seq;
	slot->te_deadline = ccid_dev_now(slot->dev) +
			    slot->dev->cfg.time_extension_ms;
}

/* The op could not even start: answer with a hardware error.  The op may
 * also have completed synchronously already, then there is nothing to do. */
static void ccid_slot_op_started(struct ccid_slot *slot, enum ccid_slot_op op,
				 int rc)
{
	if (rc != 0 && slot->op == op) {
		slot->op = CCID_OP_NONE;
		if (op == CCID_OP_POWER_ON)
			slot->powered = false;
		ccid_slot_reply_pending_error(slot, CCID_ERR_HW_ERROR);
	}
	ccid_dev_timer_sync(slot->dev);
}

static void ccid_slot_transmit(struct ccid_slot *slot, uint8_t seq,
			       const uint8_t *apdu, uint32_t len)
{
	ccid_slot_start_op(slot, CCID_OP_XFR, seq);
	ccid_slot_op_started(slot, CCID_OP_XFR,
			     slot->ops->transmit(slot->card, apdu, len));
}

/* --- handlers ----------------------------------------------------------- */

/* CCID 1.1 §6.1.1 */
static void ccid_cmd_power_on(ccid_dev *dev, struct ccid_slot *slot,
			      const struct ccid_cmd *cmd, const struct ccid_msg *m)
{
	uint8_t power_select = m->buf[CCID_OFF_SPEC0];

	if (power_select > 3) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_BAD_POWERSELECT);
		return;
	}
	if (!slot->present || !slot->ops) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_ICC_MUTE);
		return;
	}
	/* A power on of a powered card is a warm reset: the backend starts
	 * over and the old session state (chains, parameters) is gone. */
	ccid_slot_reset_chain(slot);
	slot->powered = false;
	slot->clock_stopped = false;
	ccid_slot_start_op(slot, CCID_OP_POWER_ON, m->seq);
	ccid_slot_op_started(slot, CCID_OP_POWER_ON,
			     slot->ops->power_on(slot->card));
}

/* CCID 1.1 §6.1.2 */
static void ccid_cmd_power_off(ccid_dev *dev, struct ccid_slot *slot,
			       const struct ccid_cmd *cmd, const struct ccid_msg *m)
{
	ccid_slot_reset_chain(slot);
	if (slot->powered && slot->ops)
		slot->ops->power_off(slot->card);
	slot->powered = false;
	slot->clock_stopped = false;
	ccid_reply_slot_status(dev, slot, m->seq);
}

/* CCID 1.1 §6.1.3 */
static void ccid_cmd_get_slot_status(ccid_dev *dev, struct ccid_slot *slot,
				     const struct ccid_cmd *cmd,
				     const struct ccid_msg *m)
{
	ccid_reply_slot_status(dev, slot, m->seq);
}

static bool ccid_chain_append(struct ccid_slot *slot, const struct ccid_msg *m)
{
	if (m->data_len > CCID_EMU_MAX_APDU_CMD - slot->cmd_len)
		return false;
	memcpy(slot->cmd_buf + slot->cmd_len, m->data, m->data_len);
	slot->cmd_len += m->data_len;
	return true;
}

/* Next part of a chained response (CCID 1.1 §6.2.1 bChainParameter). */
static void ccid_chain_send_more(ccid_dev *dev, struct ccid_slot *slot,
				 uint8_t seq)
{
	uint32_t chunk = dev->cfg.max_message_len - CCID_HDR_LEN;
	uint32_t left = slot->resp_len - slot->resp_off;
	uint32_t n = left < chunk ? left : chunk;
	uint32_t off = slot->resp_off;

	slot->resp_off += n;
	if (slot->resp_off == slot->resp_len)
		slot->chain = CCID_CHAIN_IDLE;
	ccid_txq_reply_resp(dev, slot, seq, off, n,
			    slot->chain == CCID_CHAIN_IDLE ?
			    CCID_CHAIN_CONTINUE_END : CCID_CHAIN_CONTINUE);
}

/* CCID 1.1 §6.1.4, with extended APDU chaining through wLevelParameter. */
static void ccid_cmd_xfr_block(ccid_dev *dev, struct ccid_slot *slot,
			       const struct ccid_cmd *cmd, const struct ccid_msg *m)
{
	uint16_t level = ccid_le16_load(m->buf + CCID_OFF_SPEC1);
	bool extended = dev->cfg.features & CCID_FEAT_LEVEL_EXTENDED_APDU;

	/* Power state is enforced here, whatever the backend would do: an
	 * unpowered card gets no APDU. */
	if (!slot->present || !slot->powered || !slot->ops) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_ICC_MUTE);
		return;
	}
	if (level != CCID_LEVEL_BEGIN_END && !extended) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq,
				     CCID_ERR_BAD_LEVELPARAMETER);
		return;
	}

	switch (level) {
	case CCID_LEVEL_BEGIN_END:
		if (slot->chain != CCID_CHAIN_IDLE)
			break;
		if (m->data_len == 0) {
			ccid_reply_slot_fail(dev, cmd, slot, m->seq,
					     CCID_ERR_BAD_LENGTH);
			return;
		}
		ccid_slot_transmit(slot, m->seq, m->data, m->data_len);
		return;

	case CCID_LEVEL_BEGIN_CONTINUE:
		if (slot->chain != CCID_CHAIN_IDLE)
			break;
		slot->cmd_len = 0;
		/* fall through */
	case CCID_LEVEL_CONTINUE:
	case CCID_LEVEL_CONTINUE_END:
		if (level != CCID_LEVEL_BEGIN_CONTINUE &&
		    slot->chain != CCID_CHAIN_CMD)
			break;
		if (!ccid_chain_append(slot, m)) {
			ccid_slot_reset_chain(slot);
			ccid_reply_slot_fail(dev, cmd, slot, m->seq,
					     CCID_ERR_BAD_LENGTH);
			return;
		}
		if (level != CCID_LEVEL_CONTINUE_END) {
			slot->chain = CCID_CHAIN_CMD;
			/* "Empty abData, continue": ask for the next part. */
			ccid_txq_reply(dev, CCID_RDR_TO_PC_DATA_BLOCK, slot->index,
				       m->seq,
				       ccid_status_byte(CCID_CMD_OK,
							CCID_ICC_PRESENT_ACTIVE),
				       0, CCID_CHAIN_CMD_MORE, NULL, 0);
			return;
		}
		slot->chain = CCID_CHAIN_IDLE;
		if (slot->cmd_len == 0) {
			ccid_reply_slot_fail(dev, cmd, slot, m->seq,
					     CCID_ERR_BAD_LENGTH);
			return;
		}
		ccid_slot_transmit(slot, m->seq, slot->cmd_buf, slot->cmd_len);
		return;

	case CCID_LEVEL_RESPONSE_MORE:
		if (slot->chain != CCID_CHAIN_RESP || m->data_len != 0)
			break;
		ccid_chain_send_more(dev, slot, m->seq);
		return;

	default:
		break;
	}
	/* A level that does not fit the chain state: the exchange is out of
	 * step, so drop whatever was half-transferred. */
	ccid_slot_reset_chain(slot);
	ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_BAD_LEVELPARAMETER);
}

/* CCID 1.1 §6.1.5 */
static void ccid_cmd_get_parameters(ccid_dev *dev, struct ccid_slot *slot,
				    const struct ccid_cmd *cmd,
				    const struct ccid_msg *m)
{
	if (!slot->present) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_ICC_MUTE);
		return;
	}
	ccid_reply_parameters(dev, slot, m->seq);
}

/* CCID 1.1 §6.1.6 */
static void ccid_cmd_reset_parameters(ccid_dev *dev, struct ccid_slot *slot,
				      const struct ccid_cmd *cmd,
				      const struct ccid_msg *m)
{
	if (!slot->present) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_ICC_MUTE);
		return;
	}
	ccid_slot_parse_atr(slot);
	ccid_slot_default_params(slot);
	ccid_reply_parameters(dev, slot, m->seq);
}

/* Returns 0 or the offset of the first bad field (CCID 1.1 §6.1.7). */
static uint8_t ccid_params_check(uint8_t protocol, const uint8_t *p)
{
	if (protocol == 0) {
		if (p[1] != 0x00 && p[1] != 0x02)       /* bmTCCKST0 */
			return CCID_HDR_LEN + 1;
		if (p[4] > 3)                           /* bClockStop */
			return CCID_HDR_LEN + 4;
		return 0;
	}
	if ((p[1] & 0xFC) != 0x10)                      /* bmTCCKST1 */
		return CCID_HDR_LEN + 1;
	if (p[4] > 3)                                   /* bClockStop */
		return CCID_HDR_LEN + 4;
	if (p[5] == 0x00 || p[5] == 0xFF)               /* bIFSC */
		return CCID_HDR_LEN + 5;
	return 0;
}

/* CCID 1.1 §6.1.7 */
static void ccid_cmd_set_parameters(ccid_dev *dev, struct ccid_slot *slot,
				    const struct ccid_cmd *cmd,
				    const struct ccid_msg *m)
{
	uint8_t protocol = m->buf[CCID_OFF_SPEC0], bad;

	if (protocol > 1) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq,
				     CCID_ERR_BAD_PROTOCOLNUM);
		return;
	}
	if (m->data_len != (protocol == 1 ? 7u : 5u)) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_BAD_LENGTH);
		return;
	}
	if (!slot->present) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_ICC_MUTE);
		return;
	}
	/* Once the card has answered to reset, only the protocols its ATR
	 * offers can be selected. */
	if (slot->atr_len && !(slot->atr_protocols & (1u << protocol))) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq,
				     CCID_ERR_BAD_PROTOCOLNUM);
		return;
	}
	bad = ccid_params_check(protocol, m->data);
	if (bad) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq, bad);
		return;
	}
	slot->protocol = protocol;
	memset(slot->params, 0, sizeof(slot->params));
	memcpy(slot->params, m->data, m->data_len);
	ccid_reply_parameters(dev, slot, m->seq);
}

/* CCID 1.1 §6.1.9 */
static void ccid_cmd_icc_clock(ccid_dev *dev, struct ccid_slot *slot,
			       const struct ccid_cmd *cmd, const struct ccid_msg *m)
{
	uint8_t clock_cmd = m->buf[CCID_OFF_SPEC0];

	if (clock_cmd > 1) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq,
				     CCID_ERR_BAD_CLOCKCOMMAND);
		return;
	}
	if (!slot->present || !slot->powered) {
		ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_ICC_MUTE);
		return;
	}
	/* A virtual card has no clock line; the state is kept so that
	 * SlotStatus reports what the host asked for. */
	slot->clock_stopped = clock_cmd == 1;
	ccid_reply_slot_status(dev, slot, m->seq);
}

/* Escape (§6.1.8), T0APDU (§6.1.10), Secure (§6.1.11), Mechanical
 * (§6.1.12): no vendor commands, APDU level exchange, no PIN pad, no
 * mechanics.  The reply type comes from the table. */
static void ccid_cmd_not_supported(ccid_dev *dev, struct ccid_slot *slot,
				   const struct ccid_cmd *cmd,
				   const struct ccid_msg *m)
{
	ccid_reply_slot_fail(dev, cmd, slot, m->seq, CCID_ERR_CMD_NOT_SUPPORTED);
}

/* CCID 1.1 §6.1.13 and §5.3.1.  The class request and the bulk message
 * can arrive in either order; the command in flight is answered
 * CMD_ABORTED by whichever comes first. */
static void ccid_slot_abort_pending(struct ccid_slot *slot)
{
	if (ccid_slot_cancel_op(slot))
		ccid_slot_reply_pending_error(slot, CCID_ERR_CMD_ABORTED);
	ccid_slot_reset_chain(slot);
	ccid_dev_timer_sync(slot->dev);
}

void ccid_slot_abort_request(struct ccid_slot *slot, uint8_t seq)
{
	if (slot->abort_bulk_done && slot->abort_bulk_seq == seq) {
		/* Bulk Abort came first and was answered: handshake over. */
		slot->abort_bulk_done = false;
		return;
	}
	slot->abort_bulk_done = false;
	slot->abort_ctrl = true;
	slot->abort_ctrl_seq = seq;
	ccid_slot_abort_pending(slot);
}

static void ccid_cmd_abort(ccid_dev *dev, struct ccid_slot *slot,
			   const struct ccid_cmd *cmd, const struct ccid_msg *m)
{
	if (slot->abort_ctrl) {
		if (slot->abort_ctrl_seq != m->seq) {
			ccid_reply_slot_fail(dev, cmd, slot, m->seq,
					     CCID_ERR_CMD_ABORTED);
			return;
		}
		slot->abort_ctrl = false;
		ccid_reply_slot_status(dev, slot, m->seq);
		return;
	}
	ccid_slot_abort_pending(slot);
	slot->abort_bulk_done = true;
	slot->abort_bulk_seq = m->seq;
	ccid_reply_slot_status(dev, slot, m->seq);
}

/* CCID 1.1 §6.1.14: one clock and one rate are supported, so whatever the
 * host asks for, the reply names the values in force. */
static void ccid_cmd_set_data_rate(ccid_dev *dev, struct ccid_slot *slot,
				   const struct ccid_cmd *cmd,
				   const struct ccid_msg *m)
{
	uint8_t data[8];

	ccid_le32_store(data, CCID_CLOCK_KHZ);
	ccid_le32_store(data + 4, CCID_DATA_RATE_BPS);
	ccid_txq_reply(dev, CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK, slot->index,
		       m->seq,
		       ccid_status_byte(CCID_CMD_OK, ccid_slot_icc_status(slot)),
		       0, 0, data, sizeof(data));
}

/* The dispatch table: every PC_to_RDR message of CCID 1.1 §6.1 with the
 * reply type its section names. */
static const struct ccid_cmd ccid_cmds[] = {
	{ CCID_PC_TO_RDR_ICC_POWER_ON, CCID_LEN_ZERO, ccid_cmd_power_on,
	  CCID_RDR_TO_PC_DATA_BLOCK, true },
	{ CCID_PC_TO_RDR_ICC_POWER_OFF, CCID_LEN_ZERO, ccid_cmd_power_off,
	  CCID_RDR_TO_PC_SLOT_STATUS, false },
	{ CCID_PC_TO_RDR_GET_SLOT_STATUS, CCID_LEN_ZERO, ccid_cmd_get_slot_status,
	  CCID_RDR_TO_PC_SLOT_STATUS, false },
	{ CCID_PC_TO_RDR_XFR_BLOCK, CCID_LEN_ANY, ccid_cmd_xfr_block,
	  CCID_RDR_TO_PC_DATA_BLOCK, true },
	{ CCID_PC_TO_RDR_GET_PARAMETERS, CCID_LEN_ZERO, ccid_cmd_get_parameters,
	  CCID_RDR_TO_PC_PARAMETERS, false },
	{ CCID_PC_TO_RDR_RESET_PARAMETERS, CCID_LEN_ZERO, ccid_cmd_reset_parameters,
	  CCID_RDR_TO_PC_PARAMETERS, false },
	{ CCID_PC_TO_RDR_SET_PARAMETERS, CCID_LEN_PARAMS, ccid_cmd_set_parameters,
	  CCID_RDR_TO_PC_PARAMETERS, false },
	{ CCID_PC_TO_RDR_ESCAPE, CCID_LEN_ANY, ccid_cmd_not_supported,
	  CCID_RDR_TO_PC_ESCAPE, false },
	{ CCID_PC_TO_RDR_ICC_CLOCK, CCID_LEN_ZERO, ccid_cmd_icc_clock,
	  CCID_RDR_TO_PC_SLOT_STATUS, false },
	{ CCID_PC_TO_RDR_T0_APDU, CCID_LEN_ANY, ccid_cmd_not_supported,
	  CCID_RDR_TO_PC_SLOT_STATUS, false },
	{ CCID_PC_TO_RDR_SECURE, CCID_LEN_ANY, ccid_cmd_not_supported,
	  CCID_RDR_TO_PC_DATA_BLOCK, false },
	{ CCID_PC_TO_RDR_MECHANICAL, CCID_LEN_ANY, ccid_cmd_not_supported,
	  CCID_RDR_TO_PC_SLOT_STATUS, false },
	{ CCID_PC_TO_RDR_ABORT, CCID_LEN_ZERO, ccid_cmd_abort,
	  CCID_RDR_TO_PC_SLOT_STATUS, false },
	{ CCID_PC_TO_RDR_SET_DATA_RATE_AND_CLOCK, CCID_LEN_RATE,
	  ccid_cmd_set_data_rate, CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK, false },
};

static const struct ccid_cmd *ccid_cmd_lookup(uint8_t type)
{
	for (size_t i = 0; i < sizeof(ccid_cmds) / sizeof(ccid_cmds[0]); i++)
		if (ccid_cmds[i].type == type)
			return &ccid_cmds[i];
	return NULL;
}

static bool ccid_len_ok(enum ccid_len_rule rule, uint32_t len)
{
	switch (rule) {
	case CCID_LEN_ZERO:   return len == 0;
	case CCID_LEN_ANY:    return true;
	case CCID_LEN_PARAMS: return len == 5 || len == 7;
	case CCID_LEN_RATE:   return len == 8;
	}
	return false;
}

static void ccid_dispatch(ccid_dev *dev, const uint8_t *buf, uint32_t len)
{
	struct ccid_msg m = {
		.buf = buf, .len = len,
		.type = buf[CCID_OFF_TYPE], .slot = buf[CCID_OFF_SLOT],
		.seq = buf[CCID_OFF_SEQ],
		.data = buf + CCID_HDR_LEN, .data_len = len - CCID_HDR_LEN,
	};
	const struct ccid_cmd *cmd = ccid_cmd_lookup(m.type);
	struct ccid_slot *slot;

	if (!cmd) {
		/* Unknown message: no reply type is assigned, SlotStatus is
		 * the one a host can always parse. */
		ccid_reply_fail(dev, NULL, m.slot, m.seq,
				m.slot < dev->n_slots ?
				ccid_slot_icc_status(&dev->slots[m.slot]) :
				CCID_ICC_ABSENT,
				CCID_ERR_CMD_NOT_SUPPORTED);
		return;
	}
	if (m.slot >= dev->n_slots) {
		ccid_reply_fail(dev, cmd, m.slot, m.seq, CCID_ICC_ABSENT,
				CCID_ERR_BAD_SLOT);
		return;
	}
	slot = &dev->slots[m.slot];
	slot->last_seq = m.seq;
	if (cmd->type != CCID_PC_TO_RDR_ABORT) {
		/* Between the class ABORT and its PC_to_RDR_Abort the slot
		 * answers nothing else (CCID 1.1 §5.3.1). */
		if (slot->abort_ctrl) {
			ccid_reply_slot_fail(dev, cmd, slot, m.seq,
					     CCID_ERR_CMD_ABORTED);
			return;
		}
		if (slot->op != CCID_OP_NONE ||
		    (cmd->type == CCID_PC_TO_RDR_XFR_BLOCK && slot->resp_in_queue)) {
			ccid_reply_slot_fail(dev, cmd, slot, m.seq,
					     CCID_ERR_CMD_SLOT_BUSY);
			return;
		}
	}
	if (!ccid_len_ok(cmd->len_rule, m.data_len)) {
		ccid_reply_slot_fail(dev, cmd, slot, m.seq, CCID_ERR_BAD_LENGTH);
		return;
	}
	if (cmd->starts_op && ccid_dev_busy_slots(dev) >= dev->cfg.max_busy_slots) {
		ccid_reply_slot_fail(dev, cmd, slot, m.seq, CCID_ERR_CMD_SLOT_BUSY);
		return;
	}
	slot->abort_bulk_done = false;
	cmd->handler(dev, slot, cmd, &m);
}

/* --- assembly ----------------------------------------------------------- */

void ccid_rx_reset(ccid_dev *dev)
{
	dev->rx_len = 0;
	dev->rx_need = 0;
	dev->rx_discard = 0;
}

/* A message whose length cannot be right: answer it if its header says
 * who to answer, then forget it. */
static void ccid_rx_reject(ccid_dev *dev, const uint8_t *hdr, uint32_t have)
{
	if (have >= CCID_OFF_SEQ + 1) {
		uint8_t slot = hdr[CCID_OFF_SLOT];

		ccid_reply_fail(dev, ccid_cmd_lookup(hdr[CCID_OFF_TYPE]), slot,
				hdr[CCID_OFF_SEQ],
				slot < dev->n_slots ?
				ccid_slot_icc_status(&dev->slots[slot]) :
				CCID_ICC_ABSENT,
				CCID_ERR_BAD_LENGTH);
	} else {
		ccid_dev_log(dev, "bulk-OUT: %u-byte fragment dropped", have);
	}
	dev->rx_len = 0;
	dev->rx_need = 0;
}

void ccid_dev_bulk_out(ccid_dev *dev, const uint8_t *data, size_t len)
{
	uint32_t max;
	bool ended;

	if (!dev || (!data && len))
		return;
	if (!dev->configuration) {
		/* Only endpoint 0 exists before SET_CONFIGURATION(1) (USB 2.0
		 * §9.1.1.5); a host that sends here anyway gets nothing. */
		ccid_dev_log(dev, "bulk-OUT of %zu bytes while unconfigured dropped",
			     len);
		return;
	}
	max = dev->cfg.max_message_len;
	/* A transfer that is not a whole number of packets ended with a short
	 * packet: the host has nothing more for this message.  So does a
	 * zero-length packet. */
	ended = len == 0 || (len % dev->cfg.bulk_max_packet) != 0;

	/* Fast path: one whole message in one transfer, nothing pending. */
	if (dev->rx_len == 0 && dev->rx_discard == 0 && len >= CCID_HDR_LEN &&
	    len <= max &&
	    ccid_le32_load(data + CCID_OFF_LENGTH) == len - CCID_HDR_LEN) {
		ccid_dispatch(dev, data, (uint32_t)len);
		return;
	}

	while (len) {
		uint32_t n;

		if (dev->rx_discard) {
			n = len < dev->rx_discard ? (uint32_t)len : dev->rx_discard;
			dev->rx_discard -= n;
			data += n;
			len -= n;
			continue;
		}
		if (dev->rx_need == 0) {
			uint32_t dwlen;

			n = CCID_HDR_LEN - dev->rx_len;
			if (n > len)
				n = (uint32_t)len;
			memcpy(dev->rx_buf + dev->rx_len, data, n);
			dev->rx_len += n;
			data += n;
			len -= n;
			if (dev->rx_len < CCID_HDR_LEN)
				break;
			dwlen = ccid_le32_load(dev->rx_buf + CCID_OFF_LENGTH);
			if (dwlen > max - CCID_HDR_LEN) {
				/* Larger than dwMaxCCIDMessageLength: answer
				 * now, then swallow the declared body. */
				ccid_rx_reject(dev, dev->rx_buf, CCID_HDR_LEN);
				dev->rx_discard = dwlen;
				continue;
			}
			dev->rx_need = CCID_HDR_LEN + dwlen;
		}
		n = dev->rx_need - dev->rx_len;
		if (n > len)
			n = (uint32_t)len;
		memcpy(dev->rx_buf + dev->rx_len, data, n);
		dev->rx_len += n;
		data += n;
		len -= n;
		if (dev->rx_len == dev->rx_need) {
			if (len) {
				/* More bytes than dwLength announced. */
				ccid_rx_reject(dev, dev->rx_buf, dev->rx_len);
				return;
			}
			n = dev->rx_len;
			dev->rx_len = 0;
			dev->rx_need = 0;
			ccid_dispatch(dev, dev->rx_buf, n);
			return;
		}
	}
	if (ended && dev->rx_discard) {
		dev->rx_discard = 0;
	} else if (ended && dev->rx_len) {
		/* Fewer bytes than dwLength announced. */
		ccid_rx_reject(dev, dev->rx_buf, dev->rx_len);
	}
}
