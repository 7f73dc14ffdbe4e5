/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Control requests: the standard requests a device answers itself
 * (USB 2.0 §9.4) and the CCID class requests (CCID 1.1 §5.3).  Everything
 * else stalls, which is the USB "Request Error" answer (USB 2.0 §9.2.7).
 */
#include <string.h>

#include "ccid_dev_private.h"
#include "ccid_le.h"

struct ccid_setup {
	uint8_t type;        /* bmRequestType */
	uint8_t request;     /* bRequest */
	uint16_t value;      /* wValue */
	uint16_t index;      /* wIndex */
	uint16_t length;     /* wLength */
};

/* Copies an IN reply, truncated to what the host asked for and to the
 * caller's buffer (USB 2.0 §9.3.5: a shorter reply is legal). */
static int ccid_control_reply(const struct ccid_setup *s, uint8_t *data,
			      size_t cap, const uint8_t *src, size_t len)
{
	if (len > s->length)
		len = s->length;
	if (len > cap)
		len = cap;
	if (len && !data)
		return CCID_CONTROL_STALL;
	if (len)
		memcpy(data, src, len);
	return (int)len;
}

static bool *ccid_ep_halt(ccid_dev *dev, uint16_t ep)
{
	switch (ep) {
	case CCID_EP_BULK_OUT: return &dev->halt_bulk_out;
	case CCID_EP_BULK_IN:  return &dev->halt_bulk_in;
	case CCID_EP_INTR_IN:  return &dev->halt_intr_in;
	default:               return NULL;
	}
}

static int ccid_get_descriptor(ccid_dev *dev, const struct ccid_setup *s,
			       uint8_t *data, size_t cap)
{
	uint8_t type = (uint8_t)(s->value >> 8), idx = (uint8_t)s->value;

	switch (type) {
	case USB_DT_DEVICE:
		if (idx)
			return CCID_CONTROL_STALL;
		return ccid_control_reply(s, data, cap, dev->dev_desc,
					  sizeof(dev->dev_desc));
	case USB_DT_CONFIG:
		if (idx)
			return CCID_CONTROL_STALL;
		return ccid_control_reply(s, data, cap, dev->cfg_desc,
					  sizeof(dev->cfg_desc));
	case USB_DT_STRING:
		/* Hosts differ in the LANGID they pass in wIndex (Linux uses
		 * the first one from string 0, some tools pass 0): all get
		 * the only language we have. */
		if (idx >= CCID_STRING_COUNT || !dev->str_len[idx])
			return CCID_CONTROL_STALL;
		return ccid_control_reply(s, data, cap, dev->str_desc[idx],
					  dev->str_len[idx]);
	case CCID_CLASS_DESC_TYPE:
		return ccid_control_reply(s, data, cap,
					  dev->cfg_desc + USB_DT_CONFIG_LEN +
					  USB_DT_INTERFACE_LEN,
					  CCID_CLASS_DESC_LEN);
	default:
		/* DEVICE_QUALIFIER and OTHER_SPEED_CONFIG: a full-speed-only
		 * device must stall them (USB 2.0 §9.6.2).  BOS does not exist
		 * before bcdUSB 2.01.  Interface and endpoint descriptors are
		 * only readable inside the configuration descriptor. */
		return CCID_CONTROL_STALL;
	}
}

static int ccid_set_configuration(ccid_dev *dev, uint16_t value)
{
	bool changed;

	if (value > 1)
		return CCID_CONTROL_STALL;
	if (value == 0) {
		/* Back to the Address state: the endpoints are gone, so is
		 * everything in flight on them. */
		ccid_dev_reset(dev);
		return 0;
	}
	dev->halt_bulk_in = dev->halt_bulk_out = dev->halt_intr_in = false;
	if (dev->configuration == 1)
		return 0;
	dev->configuration = 1;
	changed = dev->notify_pending;
	/* Tell the freshly configured host about cards already inserted, as
	 * a physical reader does when its interrupt endpoint comes alive. */
	for (unsigned i = 0; i < dev->n_slots; i++) {
		if (dev->slots[i].present)
			dev->slots[i].changed = true;
		changed |= dev->slots[i].changed;
	}
	/* Events of the unconfigured time (a removal, a hardware error) could
	 * not be pulled then; they can now, so the transport must hear so. */
	if (changed)
		ccid_intr_notify(dev);
	else if (dev->hwerr_count && dev->tops->intr_in_ready)
		dev->tops->intr_in_ready(dev->user);
	if (dev->txq_count && dev->tops->bulk_in_ready)
		dev->tops->bulk_in_ready(dev->user);
	return 0;
}

static int ccid_standard_request(ccid_dev *dev, const struct ccid_setup *s,
				 uint8_t *data, size_t cap)
{
	uint8_t recip = s->type & USB_RECIP_MASK;
	bool in = s->type & USB_DIR_IN;
	uint8_t buf[2] = { 0, 0 };
	bool *halt;

	switch (s->request) {
	case USB_REQ_GET_STATUS:
		if (!in || s->value != 0)
			return CCID_CONTROL_STALL;
		if (recip == USB_RECIP_DEVICE) {
			/* Bit 0 self-powered (no: bus-powered), bit 1 remote
			 * wake-up enabled. */
			buf[0] = dev->remote_wakeup_enabled ? 0x02 : 0x00;
		} else if (recip == USB_RECIP_INTERFACE) {
			if (s->index != 0 || !dev->configuration)
				return CCID_CONTROL_STALL;
		} else if (recip == USB_RECIP_ENDPOINT) {
			halt = ccid_ep_halt(dev, s->index);
			/* Only endpoint 0 exists before configuration
			 * (USB 2.0 §9.4.5). */
			if ((s->index & 0x7F) != 0 &&
			    (!halt || !dev->configuration))
				return CCID_CONTROL_STALL;
			buf[0] = halt && *halt ? 0x01 : 0x00;
		} else {
			return CCID_CONTROL_STALL;
		}
		return ccid_control_reply(s, data, cap, buf, 2);

	case USB_REQ_CLEAR_FEATURE:
	case USB_REQ_SET_FEATURE: {
		bool set = s->request == USB_REQ_SET_FEATURE;

		if (in || s->length)
			return CCID_CONTROL_STALL;
		if (recip == USB_RECIP_DEVICE &&
		    s->value == USB_FEATURE_REMOTE_WAKEUP) {
			if (!dev->cfg.remote_wakeup)
				return CCID_CONTROL_STALL;
			dev->remote_wakeup_enabled = set;
			return 0;
		}
		if (recip == USB_RECIP_ENDPOINT &&
		    s->value == USB_FEATURE_ENDPOINT_HALT) {
			if ((s->index & 0x7F) == 0)
				return set ? CCID_CONTROL_STALL : 0;
			halt = ccid_ep_halt(dev, s->index);
			if (!halt || !dev->configuration)
				return CCID_CONTROL_STALL;
			*halt = set;
			return 0;
		}
		/* TEST_MODE needs high speed; interfaces have no features. */
		return CCID_CONTROL_STALL;
	}

	case USB_REQ_SET_ADDRESS:
		/* The host controller (or usbredir) owns addressing; the
		 * model has nothing to do but must not refuse. */
		if (in || recip != USB_RECIP_DEVICE || s->value > 127)
			return CCID_CONTROL_STALL;
		return 0;

	case USB_REQ_GET_DESCRIPTOR:
		if (!in)
			return CCID_CONTROL_STALL;
		if (recip != USB_RECIP_DEVICE &&
		    !(recip == USB_RECIP_INTERFACE &&
		      (s->value >> 8) == CCID_CLASS_DESC_TYPE))
			return CCID_CONTROL_STALL;
		return ccid_get_descriptor(dev, s, data, cap);

	case USB_REQ_GET_CONFIGURATION:
		if (!in || recip != USB_RECIP_DEVICE)
			return CCID_CONTROL_STALL;
		buf[0] = dev->configuration;
		return ccid_control_reply(s, data, cap, buf, 1);

	case USB_REQ_SET_CONFIGURATION:
		if (in || recip != USB_RECIP_DEVICE || s->length)
			return CCID_CONTROL_STALL;
		return ccid_set_configuration(dev, s->value);

	case USB_REQ_GET_INTERFACE:
		if (!in || recip != USB_RECIP_INTERFACE || s->index != 0 ||
		    !dev->configuration)
			return CCID_CONTROL_STALL;
		return ccid_control_reply(s, data, cap, buf, 1);

	case USB_REQ_SET_INTERFACE:
		if (in || recip != USB_RECIP_INTERFACE || s->index != 0 ||
		    s->value != 0 || !dev->configuration)
			return CCID_CONTROL_STALL;
		dev->halt_bulk_in = dev->halt_bulk_out = dev->halt_intr_in = false;
		return 0;

	default:
		/* SET_DESCRIPTOR (descriptors are generated, not writable),
		 * SYNCH_FRAME (no isochronous endpoint), unknown requests. */
		return CCID_CONTROL_STALL;
	}
}

static int ccid_class_request(ccid_dev *dev, const struct ccid_setup *s,
			      uint8_t *data, size_t cap)
{
	bool in = s->type & USB_DIR_IN;
	uint8_t buf[4];

	/* The interface, and so its class requests, exists only in the
	 * configured state. */
	if ((s->type & USB_RECIP_MASK) != USB_RECIP_INTERFACE || s->index != 0 ||
	    !dev->configuration)
		return CCID_CONTROL_STALL;

	switch (s->request) {
	case CCID_REQ_ABORT: {
		uint8_t slot = (uint8_t)s->value, seq = (uint8_t)(s->value >> 8);

		if (in || s->length || slot >= dev->n_slots)
			return CCID_CONTROL_STALL;
		ccid_slot_abort_request(&dev->slots[slot], seq);
		return 0;
	}
	case CCID_REQ_GET_CLOCK_FREQUENCIES:
		if (!in || s->value != 0)
			return CCID_CONTROL_STALL;
		ccid_le32_store(buf, CCID_CLOCK_KHZ);
		return ccid_control_reply(s, data, cap, buf, sizeof(buf));
	case CCID_REQ_GET_DATA_RATES:
		if (!in || s->value != 0)
			return CCID_CONTROL_STALL;
		ccid_le32_store(buf, CCID_DATA_RATE_BPS);
		return ccid_control_reply(s, data, cap, buf, sizeof(buf));
	default:
		return CCID_CONTROL_STALL;
	}
}

int ccid_dev_control(ccid_dev *dev, const uint8_t setup[8], uint8_t *data,
		     size_t data_cap)
{
	struct ccid_setup s;
	int ret;

	if (!dev || !setup)
		return CCID_CONTROL_STALL;
	s.type = setup[0];
	s.request = setup[1];
	s.value = ccid_le16_load(setup + 2);
	s.index = ccid_le16_load(setup + 4);
	s.length = ccid_le16_load(setup + 6);

	switch (s.type & USB_TYPE_MASK) {
	case USB_TYPE_STANDARD:
		ret = ccid_standard_request(dev, &s, data, data_cap);
		break;
	case USB_TYPE_CLASS:
		ret = ccid_class_request(dev, &s, data, data_cap);
		break;
	default:
		/* No vendor requests: this reader has no proprietary
		 * commands for libccid to find. */
		ret = CCID_CONTROL_STALL;
		break;
	}
	if (ret < 0)
		ccid_dev_log(dev, "control %02x %02x %04x %04x %04x: stall",
			     s.type, s.request, s.value, s.index, s.length);
	return ret;
}
