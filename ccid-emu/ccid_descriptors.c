/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * USB descriptors, all generated from struct ccid_config: device,
 * configuration (with interface, CCID class and endpoint descriptors) and
 * string descriptors.
 */
#include <string.h>

#include "ccid_dev_private.h"
#include "ccid_le.h"

#define CCID_LANGID_EN_US       0x0409u

/* Decodes one UTF-8 sequence at @s (NUL-terminated); returns its length or
 * 0 if invalid (overlong forms, surrogates and values past U+10FFFF are
 * rejected, RFC 3629 §3). */
static size_t ccid_utf8_decode(const unsigned char *s, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xE0) == 0xC0) {
		n = 2; c &= 0x1F; min = 0x80;
	} else if ((c & 0xF0) == 0xE0) {
		n = 3; c &= 0x0F; min = 0x800;
	} else if ((c & 0xF8) == 0xF0) {
		n = 4; c &= 0x07; min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3Fu);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return n;
}

/* Builds string descriptor @idx from UTF-8 @str; returns -1 with @err set
 * if the string is not valid UTF-8 or does not fit. */
static int ccid_string_build(ccid_dev *dev, unsigned idx, const char *str,
			     const char *name, const char **err)
{
	uint8_t *d = dev->str_desc[idx];
	const unsigned char *s = (const unsigned char *)str;
	unsigned units = 0;

	if (!str) {
		dev->str_len[idx] = 0;
		return 0;
	}
	while (*s) {
		uint32_t cp;
		size_t n = ccid_utf8_decode(s, &cp);

		if (!n) {
			*err = name;
			return -1;
		}
		s += n;
		if (units + (cp >= 0x10000 ? 2u : 1u) > CCID_STRING_MAX_UNITS) {
			*err = name;
			return -1;
		}
		if (cp >= 0x10000) {
			/* Outside the BMP: a UTF-16 surrogate pair. */
			cp -= 0x10000;
			ccid_le16_store(d + 2 + 2 * units++, (uint16_t)(0xD800 | cp >> 10));
			ccid_le16_store(d + 2 + 2 * units++, (uint16_t)(0xDC00 | (cp & 0x3FF)));
		} else {
			ccid_le16_store(d + 2 + 2 * units++, (uint16_t)cp);
		}
	}
	if (units == 0) {
		/* An empty string is announced as "no string" (index 0). */
		dev->str_len[idx] = 0;
		return 0;
	}
	d[0] = (uint8_t)(2 + 2 * units);
	d[1] = USB_DT_STRING;
	dev->str_len[idx] = d[0];
	return 0;
}

static void ccid_device_desc_build(ccid_dev *dev)
{
	uint8_t *d = dev->dev_desc;

	d[0] = USB_DT_DEVICE_LEN;
	d[1] = USB_DT_DEVICE;
	ccid_le16_store(d + 2, 0x0200);         /* bcdUSB 2.0, full speed */
	d[4] = 0x00;                            /* class per interface */
	d[5] = 0x00;
	d[6] = 0x00;
	d[7] = 64;                              /* bMaxPacketSize0 */
	ccid_le16_store(d + 8, dev->cfg.vendor_id);
	ccid_le16_store(d + 10, dev->cfg.product_id);
	ccid_le16_store(d + 12, dev->cfg.bcd_device);
	d[14] = dev->str_len[1] ? 1 : 0;        /* iManufacturer */
	d[15] = dev->str_len[2] ? 2 : 0;        /* iProduct */
	d[16] = dev->str_len[3] ? 3 : 0;        /* iSerialNumber */
	d[17] = 1;                              /* bNumConfigurations */
}

static uint8_t *ccid_endpoint_desc_build(uint8_t *d, uint8_t addr, uint8_t attr,
					 uint16_t mps, uint8_t interval)
{
	d[0] = USB_DT_ENDPOINT_LEN;
	d[1] = USB_DT_ENDPOINT;
	d[2] = addr;
	d[3] = attr;
	ccid_le16_store(d + 4, mps);
	d[6] = interval;
	return d + USB_DT_ENDPOINT_LEN;
}

/* CCID 1.1 §5.1, table 5.1-1. */
static uint8_t *ccid_class_desc_build(ccid_dev *dev, uint8_t *d)
{
	const struct ccid_config *cfg = &dev->cfg;

	d[0] = CCID_CLASS_DESC_LEN;
	d[1] = CCID_CLASS_DESC_TYPE;
	ccid_le16_store(d + 2, CCID_BCD_CCID);
	d[4] = (uint8_t)(cfg->n_slots - 1);     /* bMaxSlotIndex */
	d[5] = CCID_VOLTAGE_5V | CCID_VOLTAGE_3V | CCID_VOLTAGE_1_8V;
	ccid_le32_store(d + 6, CCID_PROTOCOL_T0 | CCID_PROTOCOL_T1);
	ccid_le32_store(d + 10, CCID_CLOCK_KHZ);        /* dwDefaultClock */
	ccid_le32_store(d + 14, CCID_CLOCK_KHZ);        /* dwMaximumClock */
	d[18] = 1;                                      /* bNumClockSupported */
	ccid_le32_store(d + 19, CCID_DATA_RATE_BPS);    /* dwDataRate */
	ccid_le32_store(d + 23, CCID_DATA_RATE_BPS);    /* dwMaxDataRate */
	d[27] = 1;                                      /* bNumDataRatesSupported */
	ccid_le32_store(d + 28, 254);                   /* dwMaxIFSD */
	ccid_le32_store(d + 32, 0);                     /* dwSynchProtocols */
	ccid_le32_store(d + 36, 0);                     /* dwMechanical */
	ccid_le32_store(d + 40, cfg->features);
	ccid_le32_store(d + 44, cfg->max_message_len);
	d[48] = 0xFF;   /* bClassGetResponse: echo the command's class */
	d[49] = 0xFF;   /* bClassEnvelope: echo the command's class */
	ccid_le16_store(d + 50, 0);                     /* wLcdLayout: none */
	d[52] = 0;                                      /* bPINSupport: none */
	d[53] = cfg->max_busy_slots;
	return d + CCID_CLASS_DESC_LEN;
}

static void ccid_config_desc_build(ccid_dev *dev)
{
	uint8_t *d = dev->cfg_desc, *p;

	d[0] = USB_DT_CONFIG_LEN;
	d[1] = USB_DT_CONFIG;
	ccid_le16_store(d + 2, CCID_CONFIG_DESC_LEN);
	d[4] = 1;                               /* bNumInterfaces */
	d[5] = 1;                               /* bConfigurationValue */
	d[6] = 0;                               /* iConfiguration */
	d[7] = (uint8_t)(0x80 | (dev->cfg.remote_wakeup ? 0x20 : 0));
	d[8] = 50;                              /* bMaxPower: 100 mA */

	p = d + USB_DT_CONFIG_LEN;
	p[0] = USB_DT_INTERFACE_LEN;
	p[1] = USB_DT_INTERFACE;
	p[2] = 0;                               /* bInterfaceNumber */
	p[3] = 0;                               /* bAlternateSetting */
	p[4] = 3;                               /* bNumEndpoints */
	p[5] = CCID_INTERFACE_CLASS;
	p[6] = 0;                               /* bInterfaceSubClass */
	p[7] = 0;                               /* bInterfaceProtocol: CCID */
	p[8] = dev->str_len[4] ? 4 : 0;         /* iInterface */
	p += USB_DT_INTERFACE_LEN;

	p = ccid_class_desc_build(dev, p);
	p = ccid_endpoint_desc_build(p, CCID_EP_BULK_OUT, USB_EP_XFER_BULK,
				     dev->cfg.bulk_max_packet, 0);
	p = ccid_endpoint_desc_build(p, CCID_EP_BULK_IN, USB_EP_XFER_BULK,
				     dev->cfg.bulk_max_packet, 0);
	ccid_endpoint_desc_build(p, CCID_EP_INTR_IN, USB_EP_XFER_INT,
				 CCID_INTR_MAX_PACKET, dev->cfg.intr_interval_ms);
}

int ccid_descriptors_build(ccid_dev *dev, const char **err)
{
	/* String 0 is the LANGID table (USB 2.0 §9.6.7). */
	dev->str_desc[0][0] = 4;
	dev->str_desc[0][1] = USB_DT_STRING;
	ccid_le16_store(&dev->str_desc[0][2], CCID_LANGID_EN_US);
	dev->str_len[0] = 4;

	if (ccid_string_build(dev, 1, dev->cfg.manufacturer,
			      "manufacturer is not valid UTF-8 of at most 126 UTF-16 units",
			      err) < 0 ||
	    ccid_string_build(dev, 2, dev->cfg.product,
			      "product is not valid UTF-8 of at most 126 UTF-16 units",
			      err) < 0 ||
	    ccid_string_build(dev, 3, dev->cfg.serial,
			      "serial is not valid UTF-8 of at most 126 UTF-16 units",
			      err) < 0 ||
	    ccid_string_build(dev, 4, dev->cfg.interface,
			      "interface is not valid UTF-8 of at most 126 UTF-16 units",
			      err) < 0)
		return -1;
	ccid_device_desc_build(dev);
	ccid_config_desc_build(dev);
	return 0;
}

const uint8_t *ccid_dev_device_descriptor(const ccid_dev *dev, size_t *len)
{
	*len = sizeof(dev->dev_desc);
	return dev->dev_desc;
}

const uint8_t *ccid_dev_config_descriptor(const ccid_dev *dev, size_t *len)
{
	*len = sizeof(dev->cfg_desc);
	return dev->cfg_desc;
}
