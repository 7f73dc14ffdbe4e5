/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The two IN directions: the bulk-IN queue of RDR_to_PC replies and the
 * interrupt-IN messages NotifySlotChange / HardwareError (CCID 1.1 §6.2,
 * §6.3).  The transport pulls; nothing here pushes bytes anywhere.
 */
#include <string.h>

#include "ccid_dev_private.h"
#include "ccid_le.h"

_Static_assert(1 + (2 * CCID_EMU_MAX_SLOTS + 7) / 8 <= 4,
	       "NotifySlotChange must fit the interrupt message buffer");

static struct ccid_txq_entry *ccid_txq_push(ccid_dev *dev, uint8_t slot)
{
	struct ccid_txq_entry *e;

	if (dev->txq_count == CCID_TXQ_LEN) {
		/* Only a host that sends commands without ever reading the
		 * replies gets here; a real reader would NAK its bulk-OUT.
		 * Dropping keeps memory bounded and the host can resync
		 * with GetSlotStatus. */
		ccid_dev_log(dev, "bulk-IN queue full, reply dropped");
		return NULL;
	}
	e = &dev->txq[(dev->txq_head + dev->txq_count) % CCID_TXQ_LEN];
	dev->txq_count++;
	e->slot = slot < dev->n_slots ? (int8_t)slot : -1;
	e->holds_resp = false;
	if (e->slot >= 0)
		dev->slots[slot].queued++;
	return e;
}

static void ccid_txq_header(struct ccid_txq_entry *e, uint8_t type,
			    uint32_t len, uint8_t slot, uint8_t seq,
			    uint8_t status, uint8_t error, uint8_t spec)
{
	e->hdr[CCID_OFF_TYPE] = type;
	ccid_le32_store(e->hdr + CCID_OFF_LENGTH, len);
	e->hdr[CCID_OFF_SLOT] = slot;
	e->hdr[CCID_OFF_SEQ] = seq;
	e->hdr[CCID_OFF_STATUS] = status;
	e->hdr[CCID_OFF_ERROR] = error;
	e->hdr[CCID_OFF_SPEC2] = spec;
}

static void ccid_txq_wake(ccid_dev *dev)
{
	if (dev->tops->bulk_in_ready)
		dev->tops->bulk_in_ready(dev->user);
}

void ccid_txq_reply(ccid_dev *dev, uint8_t type, uint8_t slot, uint8_t seq,
		    uint8_t status, uint8_t error, uint8_t spec,
		    const uint8_t *payload, uint32_t len)
{
	struct ccid_txq_entry *e;

	if (len > CCID_INLINE_MAX)
		len = CCID_INLINE_MAX;  /* callers never pass more; be safe */
	e = ccid_txq_push(dev, slot);
	if (!e)
		return;
	ccid_txq_header(e, type, len, slot, seq, status, error, spec);
	if (len)
		memcpy(e->inl, payload, len);
	e->payload = e->inl;
	e->payload_len = len;
	ccid_txq_wake(dev);
}

void ccid_txq_reply_resp(ccid_dev *dev, struct ccid_slot *slot, uint8_t seq,
			 uint32_t off, uint32_t len, uint8_t chain)
{
	struct ccid_txq_entry *e = ccid_txq_push(dev, slot->index);

	if (!e)
		return;
	ccid_txq_header(e, CCID_RDR_TO_PC_DATA_BLOCK, len, slot->index, seq,
			ccid_status_byte(CCID_CMD_OK, ccid_slot_icc_status(slot)),
			0, chain);
	e->payload = slot->resp_buf + off;
	e->payload_len = len;
	e->holds_resp = true;
	slot->resp_in_queue = true;
	ccid_txq_wake(dev);
}

static void ccid_txq_pop(ccid_dev *dev)
{
	struct ccid_txq_entry *e = &dev->txq[dev->txq_head];

	if (e->slot >= 0) {
		struct ccid_slot *slot = &dev->slots[e->slot];

		slot->queued--;
		if (e->holds_resp)
			slot->resp_in_queue = false;
	}
	dev->txq_head = (dev->txq_head + 1) % CCID_TXQ_LEN;
	dev->txq_count--;
	dev->tx_off = 0;
}

void ccid_txq_clear(ccid_dev *dev)
{
	while (dev->txq_count)
		ccid_txq_pop(dev);
	dev->tx_off = 0;
	dev->tx_zlp_pending = false;
}

bool ccid_dev_bulk_in_ready(const ccid_dev *dev)
{
	return dev != NULL && !dev->halt_bulk_in && dev->configuration &&
	       (dev->tx_zlp_pending || dev->txq_count > 0);
}

int ccid_dev_bulk_in_pull(ccid_dev *dev, uint8_t *buf, size_t cap)
{
	struct ccid_txq_entry *e;
	uint32_t total, n = 0;

	if (!dev || dev->halt_bulk_in || !dev->configuration)
		return CCID_PULL_NONE;
	if (dev->tx_zlp_pending) {
		dev->tx_zlp_pending = false;
		return 0;
	}
	if (!dev->txq_count || !buf || cap == 0)
		return CCID_PULL_NONE;

	e = &dev->txq[dev->txq_head];
	total = CCID_HDR_LEN + e->payload_len;
	if (dev->tx_off < CCID_HDR_LEN) {
		uint32_t h = CCID_HDR_LEN - dev->tx_off;

		if (h > cap)
			h = (uint32_t)cap;
		memcpy(buf, e->hdr + dev->tx_off, h);
		n = h;
	}
	if (n < cap && dev->tx_off + n >= CCID_HDR_LEN) {
		uint32_t poff = dev->tx_off + n - CCID_HDR_LEN;
		uint32_t p = e->payload_len - poff;

		if (p > cap - n)
			p = (uint32_t)(cap - n);
		if (p)
			memcpy(buf + n, e->payload + poff, p);
		n += p;
	}
	dev->tx_off += n;
	if (dev->tx_off < total && cap % dev->cfg.bulk_max_packet != 0) {
		/* A transfer whose size is not a whole number of packets ends
		 * with a short packet, and a short packet tells the host the
		 * message is over (USB 2.0 §5.8.3): its buffer was too small
		 * (GnuPG's CCID driver reads 2065 bytes at most) and it has
		 * given up on the rest.  Keeping the rest would hand it to the
		 * next read as a stray message and desynchronise every later
		 * answer; drop it instead.  Real hardware would babble here. */
		ccid_dev_log(dev, "bulk-IN transfer of %zu bytes ends inside a "
			     "%u-byte message: the rest (%u bytes) is dropped",
			     cap, total, total - dev->tx_off);
		ccid_txq_pop(dev);
		return (int)n;
	}
	if (dev->tx_off == total) {
		/* The host's transfer was filled exactly and the message
		 * ends on a packet boundary: it cannot know the message is
		 * over until a zero-length packet says so (USB 2.0 §5.8.3). */
		if (n == cap && total % dev->cfg.bulk_max_packet == 0)
			dev->tx_zlp_pending = true;
		ccid_txq_pop(dev);
	}
	return (int)n;
}

void ccid_intr_notify(ccid_dev *dev)
{
	dev->notify_pending = true;
	if (dev->tops->intr_in_ready)
		dev->tops->intr_in_ready(dev->user);
}

void ccid_intr_hwerr(ccid_dev *dev, uint8_t slot, uint8_t seq)
{
	unsigned i;

	if (dev->hwerr_count == CCID_HWERR_QUEUE_LEN) {
		ccid_dev_log(dev, "hardware-error queue full, event dropped");
		return;
	}
	i = (dev->hwerr_head + dev->hwerr_count) % CCID_HWERR_QUEUE_LEN;
	dev->hwerr[i].slot = slot;
	dev->hwerr[i].seq = seq;
	dev->hwerr_count++;
	if (dev->tops->intr_in_ready)
		dev->tops->intr_in_ready(dev->user);
}

int ccid_dev_intr_in_pull(ccid_dev *dev, uint8_t *buf, size_t cap)
{
	/* Big enough for both: NotifySlotChange is 1 + 2 bytes for 8 slots,
	 * HardwareError is 4 bytes. */
	uint8_t msg[4];
	size_t len;

	if (!dev || dev->halt_intr_in || !dev->configuration || !buf || cap == 0)
		return CCID_PULL_NONE;
	if (dev->notify_pending) {
		/* CCID 1.1 §6.3.1: two bits per slot, bit 2n "present",
		 * bit 2n+1 "changed since the last notification". */
		len = 1 + (2 * dev->n_slots + 7) / 8;
		memset(msg, 0, sizeof(msg));
		msg[0] = CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE;
		for (unsigned i = 0; i < dev->n_slots; i++) {
			struct ccid_slot *slot = &dev->slots[i];
			unsigned bits = (slot->present ? CCID_SLOT_BIT_PRESENT : 0) |
					(slot->changed ? CCID_SLOT_BIT_CHANGED : 0);

			msg[1 + i / 4] |= (uint8_t)(bits << (2 * (i % 4)));
			slot->changed = false;
		}
		dev->notify_pending = false;
	} else if (dev->hwerr_count) {
		/* CCID 1.1 §6.3.2. */
		msg[0] = CCID_RDR_TO_PC_HARDWARE_ERROR;
		msg[1] = dev->hwerr[dev->hwerr_head].slot;
		msg[2] = dev->hwerr[dev->hwerr_head].seq;
		msg[3] = CCID_HW_ERROR_OVERCURRENT;
		len = 4;
		dev->hwerr_head = (dev->hwerr_head + 1) % CCID_HWERR_QUEUE_LEN;
		dev->hwerr_count--;
	} else {
		return CCID_PULL_NONE;
	}
	if (len > cap)
		len = cap;
	memcpy(buf, msg, len);
	return (int)len;
}
