/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hidden state of a ccid_dev.  Shared by the files of libccidemu only; the
 * public header exposes opaque handles.
 */
#ifndef CCID_EMU_CCID_DEV_PRIVATE_H
#define CCID_EMU_CCID_DEV_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ccid-emu/ccid_emu.h"

/* USB caps a string descriptor at 255 bytes: 2 header + 126 UTF-16 units. */
#define CCID_STRING_MAX_UNITS   126u
#define CCID_STRING_COUNT       5u  /* index 0 = LANGID table, 1..4 strings */
#define CCID_CONFIG_DESC_LEN \
	(USB_DT_CONFIG_LEN + USB_DT_INTERFACE_LEN + CCID_CLASS_DESC_LEN + \
	 3u * USB_DT_ENDPOINT_LEN)

/* The single clock frequency and data rate the reader reports
 * (GET_CLOCK_FREQUENCIES / GET_DATA_RATES and the class descriptor).  A
 * virtual card has no electrical interface, so any consistent pair will do;
 * 4 MHz with Fi=372, Di=1 is the ISO 7816-3 default. */
#define CCID_CLOCK_KHZ          4000u
#define CCID_DATA_RATE_BPS      10752u

/* Bulk-IN queue: every queued message is a 10-byte header plus a payload
 * that is either inline (short replies, ATRs, parameters) or a slice of the
 * owning slot's response buffer (APDU responses). */
#define CCID_INLINE_MAX         64u
#define CCID_TXQ_LEN            32u  /* a well-behaved host keeps <= 8 queued */
#define CCID_HWERR_QUEUE_LEN    8u

struct ccid_txq_entry {
	uint8_t hdr[CCID_HDR_LEN];
	uint8_t inl[CCID_INLINE_MAX];
	const uint8_t *payload;     /* inl or a slot's resp_buf slice */
	uint32_t payload_len;
	int8_t slot;                /* owning slot, -1 for none */
	bool holds_resp;            /* payload points into the slot's resp_buf */
};

enum ccid_slot_op {
	CCID_OP_NONE = 0,
	CCID_OP_POWER_ON,
	CCID_OP_XFR,
};

enum ccid_chain_state {
	CCID_CHAIN_IDLE = 0,
	CCID_CHAIN_CMD,     /* receiving a chained command APDU */
	CCID_CHAIN_RESP,    /* sending a chained response APDU */
};

struct ccid_slot {
	ccid_dev *dev;
	uint8_t index;

	const struct ccid_card_ops *ops;
	void *card;
	ccid_slot_apdu_hook_fn apdu_hook;   /* interposer on completions */
	void *apdu_hook_user;

	bool present;
	bool powered;
	bool changed;              /* NotifySlotChange "changed" bit to report */
	bool clock_stopped;

	/* The command whose reply is outstanding (valid while op != NONE). */
	enum ccid_slot_op op;
	uint8_t cmd_seq;
	uint8_t last_seq;          /* for HardwareError when nothing is pending */
	uint64_t te_deadline;      /* next time-extension reply, while op != NONE */
	unsigned queued;           /* entries of this slot in the bulk-IN queue */
	bool resp_in_queue;        /* resp_buf is referenced by the queue */

	/* Abort handshake (CCID 1.1 §5.3.1): the class request and the bulk
	 * PC_to_RDR_Abort may arrive in either order. */
	bool abort_ctrl;           /* class ABORT seen, waiting for bulk Abort */
	uint8_t abort_ctrl_seq;
	bool abort_bulk_done;      /* bulk Abort answered before class ABORT */
	uint8_t abort_bulk_seq;

	/* Extended APDU chaining, both directions. */
	enum ccid_chain_state chain;
	uint8_t *cmd_buf;          /* CCID_EMU_MAX_APDU_CMD bytes */
	uint32_t cmd_len;
	uint8_t *resp_buf;         /* CCID_EMU_MAX_APDU_RESP bytes */
	uint32_t resp_len;
	uint32_t resp_off;         /* next byte to send in a chained response */

	uint8_t atr[CCID_EMU_MAX_ATR];
	uint8_t atr_len;
	uint8_t atr_protocols;     /* CCID_PROTOCOL_T0 / _T1 bits offered */
	uint8_t protocol;          /* 0 = T=0, 1 = T=1 */
	uint8_t params[7];         /* abProtocolDataStructure (5 or 7 used) */
};

struct ccid_dev {
	struct ccid_config cfg;
	const struct ccid_transport_ops *tops;
	void *user;

	/* Descriptors, generated once. */
	uint8_t dev_desc[USB_DT_DEVICE_LEN];
	uint8_t cfg_desc[CCID_CONFIG_DESC_LEN];
	uint8_t str_desc[CCID_STRING_COUNT][2u + 2u * CCID_STRING_MAX_UNITS];
	uint8_t str_len[CCID_STRING_COUNT];  /* 0 = no such string */

	/* USB state. */
	uint8_t configuration;
	bool remote_wakeup_enabled;
	bool halt_bulk_in, halt_bulk_out, halt_intr_in;

	/* Bulk-OUT assembly of one CCID message. */
	uint8_t *rx_buf;            /* cfg.max_message_len bytes */
	uint32_t rx_len;
	uint32_t rx_need;           /* 0 until the header is complete */
	uint32_t rx_discard;        /* bytes of an oversized message to drop */

	/* Bulk-IN queue. */
	struct ccid_txq_entry txq[CCID_TXQ_LEN];
	unsigned txq_head, txq_count;
	uint32_t tx_off;            /* bytes of txq[head] already pulled */
	bool tx_zlp_pending;

	/* Interrupt-IN. */
	bool notify_pending;
	struct { uint8_t slot, seq; } hwerr[CCID_HWERR_QUEUE_LEN];
	unsigned hwerr_head, hwerr_count;

	int64_t timer_deadline;     /* last value given to timer_update */

	unsigned n_slots;
	struct ccid_slot slots[CCID_EMU_MAX_SLOTS];
};

/* ccid_dev.c */
void ccid_dev_log(const ccid_dev *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
uint64_t ccid_dev_now(const ccid_dev *dev);
void ccid_dev_timer_sync(ccid_dev *dev);
unsigned ccid_dev_busy_slots(const ccid_dev *dev);
uint8_t ccid_slot_icc_status(const struct ccid_slot *slot);
void ccid_slot_reset_chain(struct ccid_slot *slot);
/* Cancels the backend op in flight, if any, without replying. */
bool ccid_slot_cancel_op(struct ccid_slot *slot);
void ccid_slot_parse_atr(struct ccid_slot *slot);
void ccid_slot_default_params(struct ccid_slot *slot);

/* ccid_descriptors.c */
int ccid_descriptors_build(ccid_dev *dev, const char **err);

/* ccid_bulk_in.c */
/* Queues a reply with header fields; @payload (inline copy) may be NULL. */
void ccid_txq_reply(ccid_dev *dev, uint8_t type, uint8_t slot, uint8_t seq,
		    uint8_t status, uint8_t error, uint8_t spec,
		    const uint8_t *payload, uint32_t len);
/* Queues a DataBlock whose payload is a slice of the slot's resp_buf. */
void ccid_txq_reply_resp(ccid_dev *dev, struct ccid_slot *slot, uint8_t seq,
			 uint32_t off, uint32_t len, uint8_t chain);
void ccid_txq_clear(ccid_dev *dev);
void ccid_intr_notify(ccid_dev *dev);
void ccid_intr_hwerr(ccid_dev *dev, uint8_t slot, uint8_t seq);
static inline uint8_t ccid_status_byte(enum ccid_cmd_status cmd, uint8_t icc)
{
	return (uint8_t)((unsigned)cmd << CCID_CMD_STATUS_SHIFT | icc);
}

/* ccid_bulk_out.c */
void ccid_rx_reset(ccid_dev *dev);
/* Completes the pending command of @slot (power on / XfrBlock). */
void ccid_slot_reply_pending_error(struct ccid_slot *slot, uint8_t berror);
void ccid_slot_time_extension(struct ccid_slot *slot);
/* Called by the class ABORT request. */
void ccid_slot_abort_request(struct ccid_slot *slot, uint8_t seq);

#endif /* CCID_EMU_CCID_DEV_PRIVATE_H */
