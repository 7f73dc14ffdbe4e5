/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Descriptors generated from struct ccid_config, string descriptors, and
 * the config validation of ccid_dev_new().
 *
 * References: USB 2.0 §9.6 (standard descriptors), CCID 1.1 §5.1 (Smart
 * Card Device Class descriptor), ccid_emu.h (config contract).
 */
#include <stdlib.h>
#include <string.h>

#include "expected.h"
#include "harness.h"

/* ------------------------------------------------------------------ */
/* Configurations under test                                          */
/* ------------------------------------------------------------------ */

/* Config B: 4 slots, short-APDU level, the smallest message length,
 * 32-byte bulk packets, remote wake-up, non-ASCII strings. */
#define B_FEATURES (CCID_FEAT_AUTO_PARAM_ATR | CCID_FEAT_AUTO_ACTIVATION | \
		    CCID_FEAT_AUTO_VOLTAGE | CCID_FEAT_AUTO_CLOCK | \
		    CCID_FEAT_AUTO_BAUD | CCID_FEAT_LEVEL_SHORT_APDU)

static void config_b(struct ccid_config *cfg)
{
	h_config_default(cfg);
	cfg->vendor_id = 0x1234;
	cfg->product_id = 0x5678;
	cfg->bcd_device = 0x0102;
	cfg->manufacturer = "ACME \xF0\x9F\x94\x91";     /* "ACME " U+1F511 */
	cfg->product = "Gr\xC3\xBC\xC3\x9F" "e \xE2\x82\xAC Reader"; /* Grüße € Reader */
	cfg->serial = "SN-0001";
	cfg->interface = "CCID";
	cfg->n_slots = 4;
	cfg->max_busy_slots = 2;
	cfg->max_message_len = 271;
	cfg->features = B_FEATURES;
	cfg->bulk_max_packet = 32;
	cfg->intr_interval_ms = 16;
	cfg->time_extension_ms = 1000;
	cfg->remote_wakeup = true;
}

/* ------------------------------------------------------------------ */
/* Device descriptor                                                  */
/* ------------------------------------------------------------------ */
static const uint8_t dev_desc_default[] = {
	0x12,                   /* bLength: 18 */
	0x01,                   /* bDescriptorType: DEVICE */
	LE16(EXP_BCD_USB),      /* bcdUSB */
	0x00,                   /* bDeviceClass: given by the interface */
	0x00,                   /* bDeviceSubClass */
	0x00,                   /* bDeviceProtocol */
	EXP_EP0_MAX_PACKET,     /* bMaxPacketSize0 */
	0x09, 0x12,             /* idVendor: 0x1209 */
	0x1D, 0xCC,             /* idProduct: 0xCC1D */
	0x00, 0x01,             /* bcdDevice: 1.00 */
	EXP_IMANUFACTURER,      /* iManufacturer */
	EXP_IPRODUCT,           /* iProduct */
	EXP_ISERIAL,            /* iSerialNumber */
	0x01,                   /* bNumConfigurations */
};

static const uint8_t dev_desc_b[] = {
	0x12,                   /* bLength: 18 */
	0x01,                   /* bDescriptorType: DEVICE */
	LE16(EXP_BCD_USB),      /* bcdUSB */
	0x00,                   /* bDeviceClass */
	0x00,                   /* bDeviceSubClass */
	0x00,                   /* bDeviceProtocol */
	EXP_EP0_MAX_PACKET,     /* bMaxPacketSize0 */
	0x34, 0x12,             /* idVendor: 0x1234 */
	0x78, 0x56,             /* idProduct: 0x5678 */
	0x02, 0x01,             /* bcdDevice: 1.02 */
	EXP_IMANUFACTURER,      /* iManufacturer */
	EXP_IPRODUCT,           /* iProduct */
	EXP_ISERIAL,            /* iSerialNumber */
	0x01,                   /* bNumConfigurations */
};

static void check_device_desc(struct harness *h, const uint8_t *exp,
			      size_t exp_len)
{
	uint8_t buf[256];
	size_t len = 0;
	const uint8_t *blob = ccid_dev_device_descriptor(h->dev, &len);
	int n;

	ck_assert(blob != NULL);
	h_assert_bytes(blob, len, exp, exp_len, "ccid_dev_device_descriptor");
	/* GET_DESCRIPTOR(DEVICE), wLength 18 */
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 18);
	h_assert_bytes(buf, (size_t)n, exp, exp_len, "GET_DESCRIPTOR(DEVICE)");
	/* A host first asks for 8 bytes to learn bMaxPacketSize0. */
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 8, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 8);
	h_assert_bytes(buf, 8, exp, 8, "GET_DESCRIPTOR(DEVICE) wLength 8");
	/* wLength larger than the descriptor: only 18 bytes come back. */
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 0xFF, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 18);
}

START_TEST(test_device_desc_default)
{
	struct harness *h = h_new(NULL, true);

	check_device_desc(h, dev_desc_default, sizeof(dev_desc_default));
	h_free(h);
}
END_TEST

START_TEST(test_device_desc_b)
{
	struct ccid_config cfg;
	struct harness *h;

	config_b(&cfg);
	h = h_new(&cfg, true);
	check_device_desc(h, dev_desc_b, sizeof(dev_desc_b));
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Configuration descriptor: 9 + 9 + 54 + 3 * 7 = 93 bytes            */
/* ------------------------------------------------------------------ */
static const uint8_t cfg_desc_default[] = {
	/* Configuration descriptor */
	0x09,                   /* bLength */
	0x02,                   /* bDescriptorType: CONFIGURATION */
	0x5D, 0x00,             /* wTotalLength: 93 */
	0x01,                   /* bNumInterfaces */
	0x01,                   /* bConfigurationValue */
	0x00,                   /* iConfiguration */
	EXP_CONFIG_ATTR,        /* bmAttributes: no remote wake-up */
	EXP_MAX_POWER,          /* bMaxPower */
	/* Interface descriptor */
	0x09,                   /* bLength */
	0x04,                   /* bDescriptorType: INTERFACE */
	0x00,                   /* bInterfaceNumber */
	0x00,                   /* bAlternateSetting */
	0x03,                   /* bNumEndpoints: bulk OUT, bulk IN, intr IN */
	0x0B,                   /* bInterfaceClass: Smart Card */
	0x00,                   /* bInterfaceSubClass */
	0x00,                   /* bInterfaceProtocol: CCID */
	0x00,                   /* iInterface */
	/* Smart Card Device Class descriptor (CCID 1.1 §5.1) */
	0x36,                   /*  0 bLength: 54 */
	0x21,                   /*  1 bDescriptorType: CCID */
	0x10, 0x01,             /*  2 bcdCCID: 1.10 */
	0x00,                   /*  4 bMaxSlotIndex: 1 slot */
	EXP_VOLTAGE,            /*  5 bVoltageSupport */
	LE32(EXP_PROTOCOLS),    /*  6 dwProtocols */
	LE32(EXP_DEFAULT_CLOCK),/* 10 dwDefaultClock (kHz) */
	LE32(EXP_MAX_CLOCK),    /* 14 dwMaximumClock (kHz) */
	EXP_NUM_CLOCKS,         /* 18 bNumClockSupported */
	LE32(EXP_DATA_RATE),    /* 19 dwDataRate (bps) */
	LE32(EXP_MAX_DATA_RATE),/* 23 dwMaxDataRate (bps) */
	EXP_NUM_DATA_RATES,     /* 27 bNumDataRatesSupported */
	LE32(EXP_MAX_IFSD),     /* 28 dwMaxIFSD */
	0x00, 0x00, 0x00, 0x00, /* 32 dwSynchProtocols: none */
	0x00, 0x00, 0x00, 0x00, /* 36 dwMechanical: none */
	0x7E, 0x00, 0x04, 0x00, /* 40 dwFeatures: auto ATR params, activation,
	                         *    voltage, clock, baud, PPS; extended APDU */
	0x12, 0x00, 0x01, 0x00, /* 44 dwMaxCCIDMessageLength: 65554 */
	EXP_CLASS_GET_RESPONSE, /* 48 bClassGetResponse */
	EXP_CLASS_ENVELOPE,     /* 49 bClassEnvelope */
	0x00, 0x00,             /* 50 wLcdLayout: no LCD */
	0x00,                   /* 52 bPINSupport: none */
	0x01,                   /* 53 bMaxCCIDBusySlots */
	/* Endpoint: bulk OUT */
	0x07,                   /* bLength */
	0x05,                   /* bDescriptorType: ENDPOINT */
	0x02,                   /* bEndpointAddress: OUT 2 */
	0x02,                   /* bmAttributes: bulk */
	0x40, 0x00,             /* wMaxPacketSize: 64 */
	0x00,                   /* bInterval */
	/* Endpoint: bulk IN */
	0x07, 0x05,
	0x81,                   /* bEndpointAddress: IN 1 */
	0x02,                   /* bmAttributes: bulk */
	0x40, 0x00,             /* wMaxPacketSize: 64 */
	0x00,                   /* bInterval */
	/* Endpoint: interrupt IN */
	0x07, 0x05,
	0x83,                   /* bEndpointAddress: IN 3 */
	0x03,                   /* bmAttributes: interrupt */
	0x08, 0x00,             /* wMaxPacketSize: 8 */
	0x04,                   /* bInterval: 4 ms */
};

static const uint8_t cfg_desc_b[] = {
	/* Configuration descriptor */
	0x09,                   /* bLength */
	0x02,                   /* bDescriptorType: CONFIGURATION */
	0x5D, 0x00,             /* wTotalLength: 93 */
	0x01,                   /* bNumInterfaces */
	0x01,                   /* bConfigurationValue */
	0x00,                   /* iConfiguration */
	EXP_CONFIG_ATTR | EXP_CONFIG_ATTR_RWU, /* bmAttributes: remote wake-up */
	EXP_MAX_POWER,          /* bMaxPower */
	/* Interface descriptor */
	0x09, 0x04,
	0x00,                   /* bInterfaceNumber */
	0x00,                   /* bAlternateSetting */
	0x03,                   /* bNumEndpoints */
	0x0B,                   /* bInterfaceClass: Smart Card */
	0x00,                   /* bInterfaceSubClass */
	0x00,                   /* bInterfaceProtocol */
	0x04,                   /* iInterface: string 4, "CCID" */
	/* Smart Card Device Class descriptor */
	0x36,                   /*  0 bLength: 54 */
	0x21,                   /*  1 bDescriptorType */
	0x10, 0x01,             /*  2 bcdCCID: 1.10 */
	0x03,                   /*  4 bMaxSlotIndex: 4 slots */
	EXP_VOLTAGE,            /*  5 bVoltageSupport */
	LE32(EXP_PROTOCOLS),    /*  6 dwProtocols */
	LE32(EXP_DEFAULT_CLOCK),/* 10 dwDefaultClock */
	LE32(EXP_MAX_CLOCK),    /* 14 dwMaximumClock */
	EXP_NUM_CLOCKS,         /* 18 bNumClockSupported */
	LE32(EXP_DATA_RATE),    /* 19 dwDataRate */
	LE32(EXP_MAX_DATA_RATE),/* 23 dwMaxDataRate */
	EXP_NUM_DATA_RATES,     /* 27 bNumDataRatesSupported */
	LE32(EXP_MAX_IFSD),     /* 28 dwMaxIFSD */
	0x00, 0x00, 0x00, 0x00, /* 32 dwSynchProtocols */
	0x00, 0x00, 0x00, 0x00, /* 36 dwMechanical */
	0x3E, 0x00, 0x02, 0x00, /* 40 dwFeatures: auto ATR params, activation,
	                         *    voltage, clock, baud; short APDU */
	0x0F, 0x01, 0x00, 0x00, /* 44 dwMaxCCIDMessageLength: 271 */
	EXP_CLASS_GET_RESPONSE, /* 48 bClassGetResponse */
	EXP_CLASS_ENVELOPE,     /* 49 bClassEnvelope */
	0x00, 0x00,             /* 50 wLcdLayout */
	0x00,                   /* 52 bPINSupport */
	0x02,                   /* 53 bMaxCCIDBusySlots */
	/* Endpoint: bulk OUT */
	0x07, 0x05,
	0x02,                   /* OUT 2 */
	0x02,                   /* bulk */
	0x20, 0x00,             /* wMaxPacketSize: 32 */
	0x00,
	/* Endpoint: bulk IN */
	0x07, 0x05,
	0x81,                   /* IN 1 */
	0x02,                   /* bulk */
	0x20, 0x00,             /* wMaxPacketSize: 32 */
	0x00,
	/* Endpoint: interrupt IN */
	0x07, 0x05,
	0x83,                   /* IN 3 */
	0x03,                   /* interrupt */
	0x08, 0x00,             /* wMaxPacketSize: 8 */
	0x10,                   /* bInterval: 16 ms */
};

static void check_config_desc(struct harness *h, const uint8_t *exp,
			      size_t exp_len)
{
	uint8_t buf[512];
	size_t len = 0;
	const uint8_t *blob = ccid_dev_config_descriptor(h->dev, &len);
	int n;

	ck_assert_uint_eq(exp_len, 93);
	ck_assert(blob != NULL);
	h_assert_bytes(blob, len, exp, exp_len, "ccid_dev_config_descriptor");
	/* The host reads the 9-byte header first, then wTotalLength. */
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 9, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 9);
	h_assert_bytes(buf, 9, exp, 9, "GET_DESCRIPTOR(CONFIG) wLength 9");
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 93, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 93);
	h_assert_bytes(buf, 93, exp, exp_len, "GET_DESCRIPTOR(CONFIG) wLength 93");
	/* Windows asks for 255 (or 4096) bytes at once. */
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 0xFF, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 93);
	h_assert_bytes(buf, 93, exp, exp_len, "GET_DESCRIPTOR(CONFIG) wLength 255");
	/* A reply never exceeds the caller's buffer, even below wLength. */
	memset(buf, 0xAA, sizeof(buf));
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 0xFF, buf, 20);
	ck_assert_int_eq(n, 20);
	h_assert_bytes(buf, 20, exp, 20, "GET_DESCRIPTOR(CONFIG) data_cap 20");
	ck_assert_uint_eq(buf[20], 0xAA);
}

START_TEST(test_config_desc_default)
{
	struct harness *h = h_new(NULL, true);

	check_config_desc(h, cfg_desc_default, sizeof(cfg_desc_default));
	h_free(h);
}
END_TEST

START_TEST(test_config_desc_b)
{
	struct ccid_config cfg;
	struct harness *h;

	config_b(&cfg);
	h = h_new(&cfg, true);
	check_config_desc(h, cfg_desc_b, sizeof(cfg_desc_b));
	h_free(h);
}
END_TEST

/* Fields that follow the config one to one, for every slot count. */
START_TEST(test_class_desc_slots)
{
	unsigned n_slots = (unsigned)_i;
	struct ccid_config cfg;
	struct harness *h;
	const uint8_t *d;
	size_t len = 0;

	h_config_default(&cfg);
	cfg.n_slots = (uint8_t)n_slots;
	cfg.max_busy_slots = (uint8_t)n_slots;
	cfg.bulk_max_packet = 8;
	cfg.intr_interval_ms = 255;
	h = h_new(&cfg, false);
	d = ccid_dev_config_descriptor(h->dev, &len);
	ck_assert_uint_eq(len, 93);
	/* class descriptor starts at 18 */
	ck_assert_uint_eq(d[18 + 0], 54);
	ck_assert_uint_eq(d[18 + 1], 0x21);
	ck_assert_uint_eq(d[18 + 4], n_slots - 1);      /* bMaxSlotIndex */
	ck_assert_uint_eq(d[18 + 53], n_slots);         /* bMaxCCIDBusySlots */
	/* endpoint packet sizes and interval */
	ck_assert_uint_eq(d[72 + 4], 8);
	ck_assert_uint_eq(d[72 + 5], 0);
	ck_assert_uint_eq(d[79 + 4], 8);
	ck_assert_uint_eq(d[86 + 4], CCID_INTR_MAX_PACKET);
	ck_assert_uint_eq(d[86 + 6], 255);
	for (unsigned i = 0; i < CCID_EMU_MAX_SLOTS + 2; i++) {
		if (i < n_slots)
			ck_assert_ptr_nonnull(ccid_dev_get_slot(h->dev, i));
		else
			ck_assert_ptr_null(ccid_dev_get_slot(h->dev, i));
	}
	for (unsigned i = 0; i < n_slots; i++)
		ck_assert_uint_eq(ccid_slot_get_index(ccid_dev_get_slot(h->dev, i)), i);
	h_free(h);
}
END_TEST

/* ccid_config_init(): the documented defaults, and descriptors that agree
 * with whatever the remaining fields hold. */
START_TEST(test_config_init_defaults)
{
	struct ccid_config cfg;
	struct harness *h;
	const uint8_t *d;
	size_t len = 0;
	uint8_t buf[256];
	uint32_t level;
	const char *strs[4];
	uint8_t idx[4];

	memset(&cfg, 0x5A, sizeof(cfg));
	ccid_config_init(&cfg);
	/* SCM Microsystems SCR 335, listed by stock libccid, at a bcdDevice
	 * past GnuPG's SCR 335 firmware quirk (< 5.14). */
	ck_assert_uint_eq(cfg.vendor_id, 0x04E6);
	ck_assert_uint_eq(cfg.product_id, 0x5115);
	ck_assert_uint_ge(cfg.bcd_device, 0x0514);
	ck_assert_uint_eq(cfg.n_slots, 1);
	ck_assert_uint_ge(cfg.max_busy_slots, 1);
	ck_assert_uint_le(cfg.max_busy_slots, cfg.n_slots);
	level = cfg.features & (CCID_FEAT_LEVEL_TPDU | CCID_FEAT_LEVEL_SHORT_APDU |
				CCID_FEAT_LEVEL_EXTENDED_APDU);
	ck_assert_uint_eq(level, CCID_FEAT_LEVEL_EXTENDED_APDU);
	ck_assert_uint_eq(cfg.max_message_len, CCID_EMU_DEFAULT_MAX_MSG);
	ck_assert_uint_eq(cfg.bulk_max_packet, 64);
	ck_assert_uint_eq(cfg.intr_interval_ms, 4);
	ck_assert_uint_eq(cfg.time_extension_ms, 500);
	ck_assert_ptr_nonnull(cfg.manufacturer);
	ck_assert_ptr_nonnull(cfg.product);
	/* The strings name the project: lsusb shows them, and pcscd appends
	 * the interface string to the reader name. */
	ck_assert(strstr(cfg.product, "ccid-emu") && strstr(cfg.manufacturer, "ccid-emu"));
	ck_assert_ptr_nonnull(cfg.interface);
	ck_assert(strstr(cfg.interface, "ccid-emu") != NULL);

	h = h_new(&cfg, true);
	d = ccid_dev_device_descriptor(h->dev, &len);
	ck_assert_uint_eq(len, 18);
	ck_assert_uint_eq(d[8], 0xE6);          /* idVendor 0x04E6 */
	ck_assert_uint_eq(d[9], 0x04);
	ck_assert_uint_eq(d[10], 0x15);         /* idProduct 0x5115 */
	ck_assert_uint_eq(d[11], 0x51);
	ck_assert_uint_eq(d[12], cfg.bcd_device & 0xFF);
	ck_assert_uint_eq(d[13], cfg.bcd_device >> 8);
	/* every present string is reachable and decodes to the config's */
	strs[0] = cfg.manufacturer;
	strs[1] = cfg.product;
	strs[2] = cfg.serial;
	strs[3] = cfg.interface;
	memcpy(idx, d + 14, 3);
	idx[3] = ccid_dev_config_descriptor(h->dev, &len)[9 + 8];  /* iInterface */
	for (unsigned i = 0; i < 4; i++) {
		int n;

		if (!strs[i]) {
			ck_assert_uint_eq(idx[i], 0);
			continue;
		}
		ck_assert_uint_ne(idx[i], 0);
		n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR,
			      (uint16_t)(0x0300 | idx[i]), 0x0409, 255, buf,
			      sizeof(buf));
		ck_assert_int_eq(n, (int)(2 + 2 * strlen(strs[i])));
		ck_assert_uint_eq(buf[0], (unsigned)n);
		ck_assert_uint_eq(buf[1], 0x03);
		for (size_t k = 0; k < strlen(strs[i]); k++) {
			ck_assert_uint_eq(buf[2 + 2 * k], (uint8_t)strs[i][k]);
			ck_assert_uint_eq(buf[3 + 2 * k], 0);
		}
	}

	d = ccid_dev_config_descriptor(h->dev, &len);
	ck_assert_uint_eq(len, 93);
	ck_assert_uint_eq(d[7] & 0x20, cfg.remote_wakeup ? 0x20 : 0);
	ck_assert_uint_eq(d[18 + 4], 0);                  /* bMaxSlotIndex */
	ck_assert_uint_eq(d[18 + 40], cfg.features & 0xFF); /* dwFeatures */
	ck_assert_uint_eq(d[18 + 41], (cfg.features >> 8) & 0xFF);
	ck_assert_uint_eq(d[18 + 42], (cfg.features >> 16) & 0xFF);
	ck_assert_uint_eq(d[18 + 43], (cfg.features >> 24) & 0xFF);
	ck_assert_uint_eq(d[18 + 44], 0x12);              /* 65554 */
	ck_assert_uint_eq(d[18 + 45], 0x00);
	ck_assert_uint_eq(d[18 + 46], 0x01);
	ck_assert_uint_eq(d[18 + 47], 0x00);
	ck_assert_uint_eq(d[18 + 53], cfg.max_busy_slots);
	ck_assert_uint_eq(d[86 + 6], 4);                  /* bInterval */
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* String descriptors                                                 */
/* ------------------------------------------------------------------ */
static const struct {
	uint8_t index;
	const uint8_t *desc;
	size_t len;
} strings_b[] = {
	{ 0, BYTES(0x04,                /* bLength */
		   0x03,                /* bDescriptorType: STRING */
		   0x09, 0x04) },       /* wLANGID[0]: 0x0409 en-US */
	{ 1, BYTES(0x10, 0x03,          /* 16 bytes: "ACME " U+1F511 */
		   0x41, 0x00,          /* A */
		   0x43, 0x00,          /* C */
		   0x4D, 0x00,          /* M */
		   0x45, 0x00,          /* E */
		   0x20, 0x00,          /* space */
		   0x3D, 0xD8,          /* U+1F511 high surrogate D83D */
		   0x11, 0xDD) },       /*         low surrogate  DD11 */
	{ 2, BYTES(0x1E, 0x03,          /* 30 bytes: "Grüße € Reader" */
		   0x47, 0x00,          /* G */
		   0x72, 0x00,          /* r */
		   0xFC, 0x00,          /* ü U+00FC */
		   0xDF, 0x00,          /* ß U+00DF */
		   0x65, 0x00,          /* e */
		   0x20, 0x00,          /* space */
		   0xAC, 0x20,          /* € U+20AC */
		   0x20, 0x00,          /* space */
		   0x52, 0x00,          /* R */
		   0x65, 0x00,          /* e */
		   0x61, 0x00,          /* a */
		   0x64, 0x00,          /* d */
		   0x65, 0x00,          /* e */
		   0x72, 0x00) },       /* r */
	{ 3, BYTES(0x10, 0x03,          /* 16 bytes: "SN-0001" */
		   0x53, 0x00, 0x4E, 0x00, 0x2D, 0x00, 0x30, 0x00,
		   0x30, 0x00, 0x30, 0x00, 0x31, 0x00) },
	{ 4, BYTES(0x0A, 0x03,          /* 10 bytes: "CCID" (iInterface) */
		   0x43, 0x00, 0x43, 0x00, 0x49, 0x00, 0x44, 0x00) },
};

START_TEST(test_string_desc)
{
	struct ccid_config cfg;
	struct harness *h;
	uint8_t buf[512];
	int n;

	config_b(&cfg);
	h = h_new(&cfg, true);
	for (size_t i = 0; i < N_ELEMS(strings_b); i++) {
		/* wIndex carries the LANGID; 0 for string 0 */
		n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR,
			      (uint16_t)(0x0300 | strings_b[i].index),
			      strings_b[i].index ? 0x0409 : 0, 255, buf,
			      sizeof(buf));
		ck_assert_msg(n >= 0, "string %u stalled", strings_b[i].index);
		h_assert_bytes(buf, (size_t)n, strings_b[i].desc, strings_b[i].len,
			       "GET_DESCRIPTOR(STRING)");
	}
	/* Absent indices stall. */
	for (unsigned idx = 5; idx < 256; idx += (idx < 16 ? 1 : 37)) {
		n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR,
			      (uint16_t)(0x0300 | idx), 0x0409, 255, buf,
			      sizeof(buf));
		ck_assert_msg(n == CCID_CONTROL_STALL,
			      "string %u should stall, got %d", idx, n);
	}
	h_free(h);
}
END_TEST

START_TEST(test_string_desc_truncated)
{
	struct ccid_config cfg;
	struct harness *h;
	uint8_t buf[64];
	int n;

	config_b(&cfg);
	h = h_new(&cfg, true);
	/* wLength 4: bLength still says 30, only 4 bytes go out */
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0302, 0x0409, 4, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 4);
	h_assert_bytes(buf, 4, BYTES(0x1E, 0x03, 0x47, 0x00), "string 2, wLength 4");
	/* wLength 1 (Windows probes with 2 or 1) */
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0302, 0x0409, 1, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(buf[0], 0x1E);
	/* wLength 2 on the LANGID table */
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0300, 0, 2, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 2);
	h_assert_bytes(buf, 2, BYTES(0x04, 0x03), "string 0, wLength 2");
	/* data_cap below wLength bounds the copy */
	memset(buf, 0xAA, sizeof(buf));
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0302, 0x0409, 255, buf, 7);
	ck_assert_int_eq(n, 7);
	ck_assert_uint_eq(buf[7], 0xAA);
	h_assert_bytes(buf, 7, BYTES(0x1E, 0x03, 0x47, 0x00, 0x72, 0x00, 0xFC),
		       "string 2, data_cap 7");
	h_free(h);
}
END_TEST

START_TEST(test_string_desc_missing)
{
	struct ccid_config cfg;
	struct harness *h;
	const uint8_t *d;
	size_t len = 0;
	uint8_t buf[64];
	int n;

	h_config_default(&cfg);
	cfg.manufacturer = NULL;
	cfg.product = "P";
	cfg.serial = NULL;
	h = h_new(&cfg, true);
	d = ccid_dev_device_descriptor(h->dev, &len);
	ck_assert_uint_eq(len, 18);
	ck_assert_uint_eq(d[14], 0);    /* iManufacturer: none */
	ck_assert_uint_ne(d[15], 0);    /* iProduct */
	ck_assert_uint_eq(d[16], 0);    /* iSerialNumber: none */
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, (uint16_t)(0x0300 | d[15]),
		      0x0409, 255, buf, sizeof(buf));
	ck_assert_int_eq(n, 4);
	h_assert_bytes(buf, 4, BYTES(0x04, 0x03, 0x50, 0x00), "product \"P\"");
	for (unsigned idx = 1; idx < 8; idx++) {
		if (idx == d[15])
			continue;
		n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR,
			      (uint16_t)(0x0300 | idx), 0x0409, 255, buf,
			      sizeof(buf));
		ck_assert_msg(n == CCID_CONTROL_STALL,
			      "string %u should stall, got %d", idx, n);
	}
	h_free(h);
}
END_TEST

START_TEST(test_string_desc_none)
{
	struct ccid_config cfg;
	struct harness *h;
	const uint8_t *d;
	size_t len = 0;
	uint8_t buf[64];
	int n;

	h_config_default(&cfg);
	cfg.manufacturer = NULL;
	cfg.product = NULL;
	cfg.serial = NULL;
	h = h_new(&cfg, true);
	d = ccid_dev_device_descriptor(h->dev, &len);
	ck_assert_uint_eq(d[14], 0);
	ck_assert_uint_eq(d[15], 0);
	ck_assert_uint_eq(d[16], 0);
	for (unsigned idx = 1; idx < 4; idx++) {
		n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR,
			      (uint16_t)(0x0300 | idx), 0x0409, 255, buf,
			      sizeof(buf));
		ck_assert_int_eq(n, CCID_CONTROL_STALL);
	}
	h_free(h);
}
END_TEST

/* The config strings are copied: the caller may free them right away. */
START_TEST(test_string_copied)
{
	struct ccid_config cfg;
	struct harness *h;
	char *prod = strdup("Temp");
	uint8_t buf[64];
	int n;

	ck_assert_ptr_nonnull(prod);
	h_config_default(&cfg);
	cfg.product = prod;
	h = h_new(&cfg, true);
	memset(prod, 'X', 4);
	free(prod);
	h->cfg.product = NULL;
	n = h_control(h, 0x80, USB_REQ_GET_DESCRIPTOR, 0x0300 | EXP_IPRODUCT,
		      0x0409, 255, buf, sizeof(buf));
	ck_assert_int_eq(n, 10);
	h_assert_bytes(buf, 10, BYTES(0x0A, 0x03, 0x54, 0x00, 0x65, 0x00, 0x6D,
				      0x00, 0x70, 0x00), "product \"Temp\"");
	h_free(h);
}
END_TEST

/* A string longer than a descriptor can hold (bLength is one byte) is
 * either refused at ccid_dev_new() or cut to whole UTF-16 units. */
START_TEST(test_string_too_long)
{
	struct ccid_config cfg;
	struct ccid_transport_ops tops = { 0 };
	char longstr[201];
	const char *err = NULL;
	ccid_dev *dev;
	uint8_t buf[1024];
	uint8_t setup[8] = { 0x80, USB_REQ_GET_DESCRIPTOR, 0x00, 0x03,
			     0x09, 0x04, 0xFF, 0xFF };
	int n;
	struct harness *h;

	memset(longstr, 'x', 200);
	longstr[200] = '\0';
	h_config_default(&cfg);
	cfg.manufacturer = longstr;
	/* try with a throw-away transport first to see whether it is refused */
	h = h_new(NULL, false);
	tops = h->tops;
	dev = ccid_dev_new(&cfg, &tops, h, &err);
	if (!dev) {
		ck_assert_ptr_nonnull(err);
		ck_assert_msg(strstr(err, "manufacturer") != NULL,
			      "error does not name the field: %s", err);
		h_free(h);
		return;
	}
	setup[2] = 0x01;  /* iManufacturer */
	n = ccid_dev_control(dev, setup, buf, sizeof(buf));
	ck_assert_int_ge(n, 4);
	ck_assert_int_le(n, 255);
	ck_assert_uint_eq(buf[0], (unsigned)n);
	ck_assert_int_eq(n % 2, 0);
	ck_assert_uint_eq(buf[1], 0x03);
	for (int i = 2; i < n; i += 2) {
		ck_assert_uint_eq(buf[i], 'x');
		ck_assert_uint_eq(buf[i + 1], 0);
	}
	ccid_dev_free(dev);
	h_free(h);
}
END_TEST

/* Invalid UTF-8 (a stray continuation byte, an overlong '/', an encoded
 * surrogate, a truncated sequence) is refused by name or turned into valid
 * UTF-16: never copied through as garbage or lone surrogates. */
static const char *const bad_utf8[] = {
	"A\x80" "B",
	"\xC0\xAF",
	"\xED\xA0\x80",
	"Z\xE2\x82",
	"\xF4\x90\x80\x80",          /* past U+10FFFF */
};

START_TEST(test_string_bad_utf8)
{
	struct ccid_config cfg;
	const char *err = NULL;
	ccid_dev *dev;
	uint8_t buf[512];
	uint8_t setup[8] = { 0x80, USB_REQ_GET_DESCRIPTOR, EXP_IPRODUCT, 0x03,
			     0x09, 0x04, 0xFF, 0x00 };
	struct harness *h = h_new(NULL, false);
	int n;

	h_config_default(&cfg);
	cfg.product = bad_utf8[_i];
	dev = ccid_dev_new(&cfg, &h->tops, h, &err);
	if (!dev) {
		ck_assert_ptr_nonnull(err);
		ck_assert_msg(strstr(err, "product") != NULL,
			      "error does not name the field: %s", err);
		h_free(h);
		return;
	}
	n = ccid_dev_control(dev, setup, buf, sizeof(buf));
	ccid_dev_free(dev);
	ck_assert_int_ge(n, 2);
	ck_assert_uint_eq(buf[0], (unsigned)n);
	ck_assert_int_eq(n % 2, 0);
	for (int i = 2; i < n; i += 2) {
		unsigned u = buf[i] | (unsigned)buf[i + 1] << 8;

		if (u >= 0xD800 && u <= 0xDBFF) {
			unsigned lo;

			ck_assert_int_lt(i + 3, n);
			lo = buf[i + 2] | (unsigned)buf[i + 3] << 8;
			ck_assert_msg(lo >= 0xDC00 && lo <= 0xDFFF,
				      "unpaired high surrogate");
			i += 2;
		} else {
			ck_assert_msg(!(u >= 0xDC00 && u <= 0xDFFF),
				      "lone low surrogate");
		}
	}
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Config validation                                                  */
/* ------------------------------------------------------------------ */
struct bad_cfg {
	const char *field;      /* must appear in the error message */
	void (*mutate)(struct ccid_config *cfg, struct ccid_transport_ops *t);
};

#define BAD(name, field, body) \
	static void bad_##name(struct ccid_config *cfg, \
			       struct ccid_transport_ops *t) \
	{ (void)cfg; (void)t; body; }
BAD(slots0, "n_slots", cfg->n_slots = 0)
BAD(slots9, "n_slots", cfg->n_slots = 9)
BAD(busy0, "max_busy_slots", cfg->max_busy_slots = 0)
BAD(busy_gt, "max_busy_slots", cfg->n_slots = 2; cfg->max_busy_slots = 3)
BAD(msg_small, "max_message_len", cfg->max_message_len = CCID_EMU_MIN_MAX_MSG - 1)
BAD(msg_zero, "max_message_len", cfg->max_message_len = 0)
BAD(msg_big, "max_message_len", cfg->max_message_len = CCID_EMU_DEFAULT_MAX_MSG + 1)
BAD(feat_none, "features", cfg->features = CCID_FEAT_AUTO_PARAM_ATR)
BAD(feat_both, "features", cfg->features = CCID_FEAT_LEVEL_SHORT_APDU |
					    CCID_FEAT_LEVEL_EXTENDED_APDU)
BAD(feat_tpdu, "features", cfg->features = CCID_FEAT_LEVEL_TPDU)
BAD(feat_tpdu_short, "features", cfg->features = CCID_FEAT_LEVEL_TPDU |
						  CCID_FEAT_LEVEL_SHORT_APDU)
/* CCID 1.1 §5.1: 0x40 (the reader negotiates) and 0x80 (the reader does
 * PPS on the host's parameters) are alternatives. */
BAD(feat_pps_both, "features", cfg->features |= CCID_FEAT_AUTO_PPS_NEGOTIATION |
						 CCID_FEAT_AUTO_PPS_CURRENT)
BAD(pkt0, "bulk_max_packet", cfg->bulk_max_packet = 0)
BAD(pkt7, "bulk_max_packet", cfg->bulk_max_packet = 7)
BAD(pkt48, "bulk_max_packet", cfg->bulk_max_packet = 48)
BAD(pkt128, "bulk_max_packet", cfg->bulk_max_packet = 128)
BAD(intr0, "intr_interval_ms", cfg->intr_interval_ms = 0)
BAD(te9, "time_extension_ms", cfg->time_extension_ms = 9)
BAD(te_big, "time_extension_ms", cfg->time_extension_ms = 60001)
BAD(now_null, "now_ms", t->now_ms = NULL)
BAD(timer_null, "timer_update", t->timer_update = NULL)

static const struct bad_cfg bad_cfgs[] = {
	{ "n_slots", bad_slots0 },
	{ "n_slots", bad_slots9 },
	{ "max_busy_slots", bad_busy0 },
	{ "max_busy_slots", bad_busy_gt },
	{ "max_message_len", bad_msg_small },
	{ "max_message_len", bad_msg_zero },
	{ "max_message_len", bad_msg_big },
	{ "features", bad_feat_none },
	{ "features", bad_feat_both },
	{ "features", bad_feat_tpdu },
	{ "features", bad_feat_tpdu_short },
	{ "features", bad_feat_pps_both },
	{ "bulk_max_packet", bad_pkt0 },
	{ "bulk_max_packet", bad_pkt7 },
	{ "bulk_max_packet", bad_pkt48 },
	{ "bulk_max_packet", bad_pkt128 },
	{ "intr_interval_ms", bad_intr0 },
	{ "time_extension_ms", bad_te9 },
	{ "time_extension_ms", bad_te_big },
	{ "now_ms", bad_now_null },
	{ "timer_update", bad_timer_null },
};

static uint64_t dummy_now(void *user)
{
	(void)user;
	return 0;
}

static void dummy_timer(void *user, int64_t deadline)
{
	(void)user;
	(void)deadline;
}

START_TEST(test_config_invalid)
{
	const struct bad_cfg *b = &bad_cfgs[_i];
	struct ccid_config cfg;
	struct ccid_transport_ops tops = {
		.now_ms = dummy_now,
		.timer_update = dummy_timer,
	};
	const char *err = NULL;
	ccid_dev *dev;

	h_config_default(&cfg);
	b->mutate(&cfg, &tops);
	dev = ccid_dev_new(&cfg, &tops, NULL, &err);
	if (dev)
		ccid_dev_free(dev);
	ck_assert_msg(dev == NULL, "bad %s accepted", b->field);
	ck_assert_msg(err != NULL, "bad %s: no error message", b->field);
	ck_assert_msg(strstr(err, b->field) != NULL,
		      "bad %s: message does not name the field: \"%s\"",
		      b->field, err);
	/* err may be NULL */
	dev = ccid_dev_new(&cfg, &tops, NULL, NULL);
	ck_assert_ptr_null(dev);
}
END_TEST

START_TEST(test_config_null)
{
	struct ccid_config cfg;
	struct ccid_transport_ops tops = {
		.now_ms = dummy_now,
		.timer_update = dummy_timer,
	};
	const char *err = NULL;

	ck_assert_ptr_null(ccid_dev_new(NULL, &tops, NULL, &err));
	ck_assert_ptr_nonnull(err);
	err = NULL;
	h_config_default(&cfg);
	ck_assert_ptr_null(ccid_dev_new(&cfg, NULL, NULL, &err));
	ck_assert_ptr_nonnull(err);
	ccid_dev_free(NULL);
}
END_TEST

/* Boundary values that must be accepted. */
struct good_cfg {
	const char *what;
	void (*mutate)(struct ccid_config *cfg);
};

#define GOOD(name, body) \
	static void good_##name(struct ccid_config *cfg) { body; }
GOOD(slots8, cfg->n_slots = 8; cfg->max_busy_slots = 8)
GOOD(slots8_busy1, cfg->n_slots = 8; cfg->max_busy_slots = 1)
GOOD(msg_min, cfg->max_message_len = CCID_EMU_MIN_MAX_MSG)
GOOD(msg_max, cfg->max_message_len = CCID_EMU_DEFAULT_MAX_MSG)
GOOD(short_min, cfg->features = CCID_FEAT_LEVEL_SHORT_APDU;
	 cfg->max_message_len = CCID_EMU_MIN_MAX_MSG)
GOOD(pkt8, cfg->bulk_max_packet = 8)
GOOD(pkt16, cfg->bulk_max_packet = 16)
GOOD(pkt32, cfg->bulk_max_packet = 32)
GOOD(intr1, cfg->intr_interval_ms = 1)
GOOD(intr255, cfg->intr_interval_ms = 255)
GOOD(te10, cfg->time_extension_ms = 10)
GOOD(te60000, cfg->time_extension_ms = 60000)
GOOD(nostrings, cfg->manufacturer = NULL; cfg->product = NULL;
	 cfg->serial = NULL)
GOOD(rwu, cfg->remote_wakeup = true)

static const struct good_cfg good_cfgs[] = {
	{ "8 slots", good_slots8 },
	{ "8 slots, 1 busy", good_slots8_busy1 },
	{ "max_message_len 271", good_msg_min },
	{ "max_message_len 65554", good_msg_max },
	{ "short APDU, 271", good_short_min },
	{ "packet 8", good_pkt8 },
	{ "packet 16", good_pkt16 },
	{ "packet 32", good_pkt32 },
	{ "interval 1", good_intr1 },
	{ "interval 255", good_intr255 },
	{ "time extension 10", good_te10 },
	{ "time extension 60000", good_te60000 },
	{ "no strings", good_nostrings },
	{ "remote wake-up", good_rwu },
};

START_TEST(test_config_valid)
{
	const struct good_cfg *g = &good_cfgs[_i];
	struct ccid_config cfg;
	/* optional ops left NULL on purpose */
	struct ccid_transport_ops tops = {
		.now_ms = dummy_now,
		.timer_update = dummy_timer,
	};
	const char *err = NULL;
	ccid_dev *dev;

	h_config_default(&cfg);
	g->mutate(&cfg);
	dev = ccid_dev_new(&cfg, &tops, NULL, &err);
	ck_assert_msg(dev != NULL, "%s refused: %s", g->what, err ? err : "?");
	ck_assert(!ccid_dev_is_configured(dev));
	ccid_dev_free(dev);
}
END_TEST

static Suite *descriptors_suite(void)
{
	Suite *s = suite_create("descriptors");
	TCase *tc;

	tc = h_tcase("device");
	tcase_add_test(tc, test_device_desc_default);
	tcase_add_test(tc, test_device_desc_b);
	suite_add_tcase(s, tc);

	tc = h_tcase("config");
	tcase_add_test(tc, test_config_desc_default);
	tcase_add_test(tc, test_config_desc_b);
	tcase_add_loop_test(tc, test_class_desc_slots, 1, CCID_EMU_MAX_SLOTS + 1);
	tcase_add_test(tc, test_config_init_defaults);
	suite_add_tcase(s, tc);

	tc = h_tcase("strings");
	tcase_add_test(tc, test_string_desc);
	tcase_add_test(tc, test_string_desc_truncated);
	tcase_add_test(tc, test_string_desc_missing);
	tcase_add_test(tc, test_string_desc_none);
	tcase_add_test(tc, test_string_copied);
	tcase_add_test(tc, test_string_too_long);
	tcase_add_loop_test(tc, test_string_bad_utf8, 0, (int)N_ELEMS(bad_utf8));
	suite_add_tcase(s, tc);

	tc = h_tcase("validation");
	tcase_add_loop_test(tc, test_config_invalid, 0, (int)N_ELEMS(bad_cfgs));
	tcase_add_test(tc, test_config_null);
	tcase_add_loop_test(tc, test_config_valid, 0, (int)N_ELEMS(good_cfgs));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return h_run_suite(descriptors_suite());
}
