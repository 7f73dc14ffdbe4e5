/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Control transfers: USB 2.0 §9.4 standard requests (and the request
 * errors §9.4 demands in the Address state), and the CCID 1.1 §5.3 class
 * requests.
 *
 * SETUP packets are written out as: bmRequestType, bRequest, wValue,
 * wIndex, wLength (the h_control() argument order).
 */
#include <stdio.h>
#include <string.h>

#include "expected.h"
#include "harness.h"

#define STALL CCID_CONTROL_STALL

/* bmRequestType values */
#define RT_DEV_IN    0x80   /* standard, device, IN */
#define RT_DEV_OUT   0x00
#define RT_IF_IN     0x81   /* standard, interface, IN */
#define RT_IF_OUT    0x01
#define RT_EP_IN     0x82   /* standard, endpoint, IN */
#define RT_EP_OUT    0x02
#define RT_CLASS_IN  0xA1   /* class, interface, IN */
#define RT_CLASS_OUT 0x21   /* class, interface, OUT */

static struct harness *new_rwu(bool rwu, bool configured)
{
	struct ccid_config cfg;

	h_config_default(&cfg);
	cfg.remote_wakeup = rwu;
	return configured ? h_new_configured(&cfg, true) : h_new(&cfg, true);
}

static void expect_status(struct harness *h, uint8_t rt, uint16_t index,
			  uint8_t b0, uint8_t b1, const char *what)
{
	uint8_t buf[8] = { 0xAA, 0xAA, 0xAA };
	/* GET_STATUS: rt, 0x00, wValue 0, wIndex, wLength 2 */
	int n = h_control(h, rt, USB_REQ_GET_STATUS, 0, index, 2, buf, sizeof(buf));

	ck_assert_msg(n == 2, "%s: GET_STATUS returned %d", what, n);
	ck_assert_msg(buf[0] == b0 && buf[1] == b1,
		      "%s: GET_STATUS = %02x %02x, expected %02x %02x", what,
		      buf[0], buf[1], b0, b1);
}

static uint8_t self_powered_bit(struct harness *h)
{
	size_t len = 0;
	const uint8_t *d = ccid_dev_config_descriptor(h->dev, &len);

	/* bmAttributes bit 6 self-powered -> GET_STATUS bit 0 */
	return (d[7] & 0x40) ? 0x01 : 0x00;
}

/* ------------------------------------------------------------------ */
/* GET_STATUS / SET_FEATURE / CLEAR_FEATURE                           */
/* ------------------------------------------------------------------ */
START_TEST(test_status_device_rwu)
{
	struct harness *h = new_rwu(true, true);
	uint8_t sp = self_powered_bit(h);

	/* After reset remote wake-up is disabled (USB 2.0 §9.4.5). */
	expect_status(h, RT_DEV_IN, 0, sp, 0x00, "device, initial");
	/* SET_FEATURE: 00 03 wValue=1 (DEVICE_REMOTE_WAKEUP) wIndex=0 wLength=0 */
	ck_assert_int_eq(h_control(h, RT_DEV_OUT, USB_REQ_SET_FEATURE,
				   USB_FEATURE_REMOTE_WAKEUP, 0, 0, NULL, 0), 0);
	expect_status(h, RT_DEV_IN, 0, (uint8_t)(sp | 0x02), 0x00, "device, RWU on");
	/* CLEAR_FEATURE: 00 01 0001 0000 0000 */
	ck_assert_int_eq(h_control(h, RT_DEV_OUT, USB_REQ_CLEAR_FEATURE,
				   USB_FEATURE_REMOTE_WAKEUP, 0, 0, NULL, 0), 0);
	expect_status(h, RT_DEV_IN, 0, sp, 0x00, "device, RWU off");
	/* A bus reset disables it again. */
	ck_assert_int_eq(h_control(h, RT_DEV_OUT, USB_REQ_SET_FEATURE,
				   USB_FEATURE_REMOTE_WAKEUP, 0, 0, NULL, 0), 0);
	ccid_dev_reset(h->dev);
	expect_status(h, RT_DEV_IN, 0, sp, 0x00, "device, after bus reset");
	h_free(h);
}
END_TEST

/* A device that does not advertise remote wake-up rejects the feature
 * (USB 2.0 §9.4.9: a feature that cannot be set is a request error). */
START_TEST(test_status_device_no_rwu)
{
	struct harness *h = new_rwu(false, true);
	uint8_t sp = self_powered_bit(h);

	ck_assert_int_eq(h_control(h, RT_DEV_OUT, USB_REQ_SET_FEATURE,
				   USB_FEATURE_REMOTE_WAKEUP, 0, 0, NULL, 0), STALL);
	expect_status(h, RT_DEV_IN, 0, sp, 0x00, "device");
	/* TEST_MODE (2) is for high-speed devices only */
	ck_assert_int_eq(h_control(h, RT_DEV_OUT, USB_REQ_SET_FEATURE, 2, 0x0100,
				   0, NULL, 0), STALL);
	/* unknown device feature */
	ck_assert_int_eq(h_control(h, RT_DEV_OUT, USB_REQ_SET_FEATURE, 7, 0, 0,
				   NULL, 0), STALL);
	/* ENDPOINT_HALT is not a device feature */
	ck_assert_int_eq(h_control(h, RT_DEV_OUT, USB_REQ_CLEAR_FEATURE, 0, 0, 0,
				   NULL, 0), STALL);
	h_free(h);
}
END_TEST

START_TEST(test_status_interface)
{
	struct harness *h = new_rwu(false, true);
	uint8_t buf[8];

	/* 81 00 0000 0000 0002 -> 00 00 (all bits reserved) */
	expect_status(h, RT_IF_IN, 0, 0x00, 0x00, "interface 0");
	/* there is no interface 1 */
	ck_assert_int_eq(h_control(h, RT_IF_IN, USB_REQ_GET_STATUS, 0, 1, 2, buf,
				   sizeof(buf)), STALL);
	/* no interface features exist */
	ck_assert_int_eq(h_control(h, RT_IF_OUT, USB_REQ_SET_FEATURE, 0, 0, 0,
				   NULL, 0), STALL);
	h_free(h);
}
END_TEST

static const uint16_t good_eps[] = { 0x00, CCID_EP_BULK_OUT, CCID_EP_BULK_IN,
				     CCID_EP_INTR_IN };
static const uint16_t bad_eps[] = { 0x01, 0x03, 0x04, 0x05, 0x0F, 0x82,
				    0x84, 0x8F, 0x0102 };

START_TEST(test_status_endpoint)
{
	struct harness *h = new_rwu(false, true);
	uint8_t buf[8];

	for (size_t i = 0; i < N_ELEMS(good_eps); i++)
		expect_status(h, RT_EP_IN, good_eps[i], 0x00, 0x00, "endpoint");
	for (size_t i = 0; i < N_ELEMS(bad_eps); i++) {
		int n = h_control(h, RT_EP_IN, USB_REQ_GET_STATUS, 0, bad_eps[i],
				  2, buf, sizeof(buf));

		ck_assert_msg(n == STALL, "GET_STATUS(ep 0x%02x) = %d, expected stall",
			      bad_eps[i], n);
	}
	h_free(h);
}
END_TEST

START_TEST(test_endpoint_halt)
{
	struct harness *h = new_rwu(false, true);
	static const uint16_t eps[] = { CCID_EP_BULK_OUT, CCID_EP_BULK_IN,
					CCID_EP_INTR_IN };

	for (size_t i = 0; i < N_ELEMS(eps); i++) {
		/* SET_FEATURE: 02 03 wValue=0 (ENDPOINT_HALT) wIndex=ep */
		ck_assert_int_eq(h_control(h, RT_EP_OUT, USB_REQ_SET_FEATURE,
					   USB_FEATURE_ENDPOINT_HALT, eps[i], 0,
					   NULL, 0), 0);
		expect_status(h, RT_EP_IN, eps[i], 0x01, 0x00, "halted");
		/* the other endpoints are unaffected */
		for (size_t k = 0; k < N_ELEMS(eps); k++)
			if (k != i)
				expect_status(h, RT_EP_IN, eps[k], 0x00, 0x00,
					      "not halted");
		/* CLEAR_FEATURE: 02 01 0000 ep 0000 */
		ck_assert_int_eq(h_control(h, RT_EP_OUT, USB_REQ_CLEAR_FEATURE,
					   USB_FEATURE_ENDPOINT_HALT, eps[i], 0,
					   NULL, 0), 0);
		expect_status(h, RT_EP_IN, eps[i], 0x00, 0x00, "cleared");
	}
	/* nonexistent endpoint */
	ck_assert_int_eq(h_control(h, RT_EP_OUT, USB_REQ_SET_FEATURE,
				   USB_FEATURE_ENDPOINT_HALT, 0x04, 0, NULL, 0),
			 STALL);
	ck_assert_int_eq(h_control(h, RT_EP_OUT, USB_REQ_CLEAR_FEATURE,
				   USB_FEATURE_ENDPOINT_HALT, 0x85, 0, NULL, 0),
			 STALL);
	/* wrong feature selector for an endpoint */
	ck_assert_int_eq(h_control(h, RT_EP_OUT, USB_REQ_SET_FEATURE, 1,
				   CCID_EP_BULK_IN, 0, NULL, 0), STALL);
	h_free(h);
}
END_TEST

/* "The Halt feature is reset to zero after either a SetConfiguration() or
 * SetInterface() request" (USB 2.0 §9.4.5), and by a bus reset. */
START_TEST(test_halt_cleared)
{
	struct harness *h = new_rwu(false, true);

	ck_assert_int_eq(h_control(h, RT_EP_OUT, USB_REQ_SET_FEATURE, 0,
				   CCID_EP_BULK_IN, 0, NULL, 0), 0);
	h_set_config(h, 1);
	expect_status(h, RT_EP_IN, CCID_EP_BULK_IN, 0x00, 0x00,
		      "after SET_CONFIGURATION");

	ck_assert_int_eq(h_control(h, RT_EP_OUT, USB_REQ_SET_FEATURE, 0,
				   CCID_EP_BULK_OUT, 0, NULL, 0), 0);
	/* SET_INTERFACE: 01 0B wValue=0 (alt) wIndex=0 (interface) */
	ck_assert_int_eq(h_control(h, RT_IF_OUT, USB_REQ_SET_INTERFACE, 0, 0, 0,
				   NULL, 0), 0);
	expect_status(h, RT_EP_IN, CCID_EP_BULK_OUT, 0x00, 0x00,
		      "after SET_INTERFACE");

	ck_assert_int_eq(h_control(h, RT_EP_OUT, USB_REQ_SET_FEATURE, 0,
				   CCID_EP_INTR_IN, 0, NULL, 0), 0);
	ccid_dev_reset(h->dev);
	h_set_config(h, 1);
	expect_status(h, RT_EP_IN, CCID_EP_INTR_IN, 0x00, 0x00,
		      "after bus reset");
	h_free(h);
}
END_TEST

/* Address state (not configured): requests naming an interface or an
 * endpoint other than 0 are request errors (USB 2.0 §9.4.4, §9.4.5,
 * §9.4.9, §9.4.10). */
START_TEST(test_address_state)
{
	struct harness *h = new_rwu(false, false);
	uint8_t buf[8];
	char bad[512] = "";
	static const struct bad_req {
		uint8_t rt, req;
		uint16_t value, index, length;
		const char *what;
	} reqs[] = {
		{ RT_EP_IN, USB_REQ_GET_STATUS, 0, CCID_EP_BULK_IN, 2,
		  "GET_STATUS(ep 0x81)" },
		{ RT_IF_IN, USB_REQ_GET_STATUS, 0, 0, 2, "GET_STATUS(interface 0)" },
		{ RT_EP_OUT, USB_REQ_SET_FEATURE, 0, CCID_EP_BULK_IN, 0,
		  "SET_FEATURE(HALT, ep 0x81)" },
		{ RT_EP_OUT, USB_REQ_CLEAR_FEATURE, 0, CCID_EP_BULK_OUT, 0,
		  "CLEAR_FEATURE(HALT, ep 0x02)" },
		{ RT_IF_IN, USB_REQ_GET_INTERFACE, 0, 0, 1, "GET_INTERFACE" },
		{ RT_IF_OUT, USB_REQ_SET_INTERFACE, 0, 0, 0, "SET_INTERFACE" },
		/* class requests address the interface too */
		{ RT_CLASS_IN, CCID_REQ_GET_CLOCK_FREQUENCIES, 0, 0, 4,
		  "GET_CLOCK_FREQUENCIES" },
		{ RT_CLASS_IN, CCID_REQ_GET_DATA_RATES, 0, 0, 4, "GET_DATA_RATES" },
	};

	ck_assert(!ccid_dev_is_configured(h->dev));
	expect_status(h, RT_DEV_IN, 0, self_powered_bit(h), 0x00, "device");
	expect_status(h, RT_EP_IN, 0x00, 0x00, 0x00, "endpoint 0");
	/* GET_CONFIGURATION works and says 0 */
	buf[0] = 0xAA;
	ck_assert_int_eq(h_control(h, RT_DEV_IN, USB_REQ_GET_CONFIGURATION, 0, 0,
				   1, buf, sizeof(buf)), 1);
	ck_assert_uint_eq(buf[0], 0x00);
	/* collect every deviation so one run reports them all */
	for (size_t i = 0; i < N_ELEMS(reqs); i++) {
		int n = h_control(h, reqs[i].rt, reqs[i].req, reqs[i].value,
				  reqs[i].index, reqs[i].length, buf, sizeof(buf));

		if (n != STALL) {
			size_t l = strlen(bad);

			snprintf(bad + l, sizeof(bad) - l, "%s%s -> %d",
				 l ? "; " : "", reqs[i].what, n);
		}
	}
	ck_assert_msg(!bad[0], "Address state, expected request errors: %s", bad);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* GET/SET_CONFIGURATION, GET/SET_INTERFACE                           */
/* ------------------------------------------------------------------ */
static uint8_t get_config(struct harness *h)
{
	uint8_t buf[4] = { 0xAA };
	/* 80 08 0000 0000 0001 */
	int n = h_control(h, RT_DEV_IN, USB_REQ_GET_CONFIGURATION, 0, 0, 1, buf,
			  sizeof(buf));

	ck_assert_int_eq(n, 1);
	return buf[0];
}

START_TEST(test_configuration)
{
	struct harness *h = new_rwu(false, false);

	ck_assert_uint_eq(get_config(h), 0);
	ck_assert(!ccid_dev_is_configured(h->dev));
	/* 00 09 0001 0000 0000 */
	h_set_config(h, 1);
	ck_assert(ccid_dev_is_configured(h->dev));
	ck_assert_uint_eq(get_config(h), 1);
	/* there is no configuration 2: request error, state unchanged */
	ck_assert_int_eq(h_control(h, RT_DEV_OUT, USB_REQ_SET_CONFIGURATION, 2, 0,
				   0, NULL, 0), STALL);
	ck_assert_int_eq(h_control(h, RT_DEV_OUT, USB_REQ_SET_CONFIGURATION, 0xFF,
				   0, 0, NULL, 0), STALL);
	ck_assert(ccid_dev_is_configured(h->dev));
	ck_assert_uint_eq(get_config(h), 1);
	/* setting the same configuration again is fine */
	h_set_config(h, 1);
	ck_assert_uint_eq(get_config(h), 1);
	/* back to the Address state */
	h_set_config(h, 0);
	ck_assert(!ccid_dev_is_configured(h->dev));
	ck_assert_uint_eq(get_config(h), 0);
	/* bus reset deconfigures */
	h_set_config(h, 1);
	ccid_dev_reset(h->dev);
	ck_assert(!ccid_dev_is_configured(h->dev));
	ck_assert_uint_eq(get_config(h), 0);
	h_free(h);
}
END_TEST

START_TEST(test_interface)
{
	struct harness *h = new_rwu(false, true);
	uint8_t buf[4] = { 0xAA };

	/* 81 0A 0000 0000 0001 -> bAlternateSetting 0 */
	ck_assert_int_eq(h_control(h, RT_IF_IN, USB_REQ_GET_INTERFACE, 0, 0, 1,
				   buf, sizeof(buf)), 1);
	ck_assert_uint_eq(buf[0], 0x00);
	ck_assert_int_eq(h_control(h, RT_IF_IN, USB_REQ_GET_INTERFACE, 0, 1, 1,
				   buf, sizeof(buf)), STALL);
	/* 01 0B 0000 0000 0000 */
	ck_assert_int_eq(h_control(h, RT_IF_OUT, USB_REQ_SET_INTERFACE, 0, 0, 0,
				   NULL, 0), 0);
	/* no alternate setting 1, no interface 1 */
	ck_assert_int_eq(h_control(h, RT_IF_OUT, USB_REQ_SET_INTERFACE, 1, 0, 0,
				   NULL, 0), STALL);
	ck_assert_int_eq(h_control(h, RT_IF_OUT, USB_REQ_SET_INTERFACE, 0, 1, 0,
				   NULL, 0), STALL);
	ck_assert(ccid_dev_is_configured(h->dev));
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* GET_DESCRIPTOR of every type; requests that must stall             */
/* ------------------------------------------------------------------ */
START_TEST(test_get_descriptor_types)
{
	struct harness *h = new_rwu(false, true);
	uint8_t buf[512];
	size_t len = 0;
	const uint8_t *blob;
	int n;
	/* wValue high byte = type, low byte = index */
	static const uint16_t stall_values[] = {
		0x0600,         /* DEVICE_QUALIFIER: full-speed only, §9.6.2 */
		0x0700,         /* OTHER_SPEED_CONFIGURATION */
		0x0F00,         /* BOS: bcdUSB < 2.01 */
		0x0400,         /* INTERFACE: not directly accessible */
		0x0500,         /* ENDPOINT: not directly accessible */
		0x0000,         /* type 0 */
		0x0800,         /* INTERFACE_POWER */
		0x0B00,         /* INTERFACE_ASSOCIATION */
		0x4200,         /* nonsense */
		0xFF00,
		0x0201,         /* CONFIGURATION index 1: only one config */
		0x02FF,
	};

	blob = ccid_dev_device_descriptor(h->dev, &len);
	n = h_control(h, RT_DEV_IN, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 255, buf,
		      sizeof(buf));
	h_assert_bytes(buf, n < 0 ? 0 : (size_t)n, blob, len,
		       "GET_DESCRIPTOR(DEVICE)");
	blob = ccid_dev_config_descriptor(h->dev, &len);
	n = h_control(h, RT_DEV_IN, USB_REQ_GET_DESCRIPTOR, 0x0200, 0, 0xFFFF,
		      buf, sizeof(buf));
	h_assert_bytes(buf, n < 0 ? 0 : (size_t)n, blob, len,
		       "GET_DESCRIPTOR(CONFIGURATION)");
	n = h_control(h, RT_DEV_IN, USB_REQ_GET_DESCRIPTOR, 0x0300, 0, 255, buf,
		      sizeof(buf));
	h_assert_bytes(buf, n < 0 ? 0 : (size_t)n,
		       BYTES(0x04, 0x03, 0x09, 0x04), "GET_DESCRIPTOR(STRING 0)");
	for (size_t i = 0; i < N_ELEMS(stall_values); i++) {
		n = h_control(h, RT_DEV_IN, USB_REQ_GET_DESCRIPTOR,
			      stall_values[i], 0, 255, buf, sizeof(buf));
		ck_assert_msg(n == STALL,
			      "GET_DESCRIPTOR(wValue 0x%04x) = %d, expected stall",
			      stall_values[i], n);
	}
	/* The CCID class descriptor is not a standard GET_DESCRIPTOR type;
	 * a device may stall or return it (USB 2.0 §9.4.3), but if it
	 * answers it must be the one in the configuration. */
	n = h_control(h, RT_DEV_IN, USB_REQ_GET_DESCRIPTOR, 0x2100, 0, 255, buf,
		      sizeof(buf));
	if (n != STALL)
		h_assert_bytes(buf, (size_t)n, blob + 18, CCID_CLASS_DESC_LEN,
			       "GET_DESCRIPTOR(0x21)");
	/* wLength 0: an empty data stage, not a stall */
	n = h_control(h, RT_DEV_IN, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 0, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 0);
	h_free(h);
}
END_TEST

struct bad_req {
	uint8_t rt;
	uint8_t req;
	uint16_t value;
	uint16_t index;
	uint16_t length;
	const char *what;
};

static const struct bad_req bad_reqs[] = {
	/* SET_DESCRIPTOR is optional and not supported */
	{ 0x00, USB_REQ_SET_DESCRIPTOR, 0x0100, 0, 18, "SET_DESCRIPTOR" },
	/* SYNCH_FRAME only applies to isochronous endpoints */
	{ 0x82, USB_REQ_SYNCH_FRAME, 0, CCID_EP_INTR_IN, 2, "SYNCH_FRAME 0x83" },
	{ 0x82, USB_REQ_SYNCH_FRAME, 0, CCID_EP_BULK_IN, 2, "SYNCH_FRAME 0x81" },
	/* reserved standard request codes */
	{ 0x80, 0x02, 0, 0, 2, "std request 0x02 IN" },
	{ 0x00, 0x04, 0, 0, 0, "std request 0x04" },
	{ 0x80, 0x0D, 0, 0, 2, "std request 0x0D" },
	{ 0x00, 0x30, 0, 0, 0, "std request 0x30" },
	{ 0x81, 0xFF, 0, 0, 2, "std request 0xFF interface" },
	{ 0x82, 0x77, 0, CCID_EP_BULK_IN, 2, "std request 0x77 endpoint" },
	/* wrong direction for the request */
	{ 0x00, USB_REQ_GET_DESCRIPTOR, 0x0100, 0, 18, "GET_DESCRIPTOR OUT" },
	{ 0x00, USB_REQ_GET_CONFIGURATION, 0, 0, 1, "GET_CONFIGURATION OUT" },
	/* recipient "other" and reserved recipients */
	{ 0x83, USB_REQ_GET_STATUS, 0, 0, 2, "GET_STATUS other" },
	{ 0x84, USB_REQ_GET_STATUS, 0, 0, 2, "GET_STATUS recipient 4" },
	/* vendor requests */
	{ 0xC0, 0x00, 0, 0, 8, "vendor IN device 0x00" },
	{ 0xC0, 0x01, 0, 0, 8, "vendor IN device 0x01" },
	{ 0x40, 0x01, 0, 0, 0, "vendor OUT device" },
	{ 0xC1, 0x01, 0, 0, 8, "vendor IN interface" },
	{ 0x41, 0xFF, 0xFFFF, 0, 0, "vendor OUT interface" },
	{ 0xC2, 0x01, 0, CCID_EP_BULK_IN, 8, "vendor IN endpoint" },
	/* reserved type */
	{ 0xE0, 0x00, 0, 0, 8, "reserved type IN" },
	{ 0x60, 0x00, 0, 0, 0, "reserved type OUT" },
	/* class requests that do not exist or are misaddressed */
	{ 0xA1, 0x00, 0, 0, 8, "class request 0x00" },
	{ 0xA1, 0x04, 0, 0, 8, "class request 0x04" },
	{ 0x21, 0x04, 0, 0, 0, "class request 0x04 OUT" },
	{ 0xA1, 0xFF, 0, 0, 8, "class request 0xFF" },
	{ 0xA1, CCID_REQ_GET_CLOCK_FREQUENCIES, 0, 1, 4,
	  "GET_CLOCK_FREQUENCIES interface 1" },
	{ 0xA1, CCID_REQ_GET_DATA_RATES, 0, 1, 4, "GET_DATA_RATES interface 1" },
	{ 0x21, CCID_REQ_GET_CLOCK_FREQUENCIES, 0, 0, 4,
	  "GET_CLOCK_FREQUENCIES OUT" },
	{ 0xA1, CCID_REQ_ABORT, 0x0100, 0, 0, "ABORT IN" },
	{ 0x21, CCID_REQ_ABORT, 0x0100, 1, 0, "ABORT interface 1" },
	{ 0xA0, CCID_REQ_GET_CLOCK_FREQUENCIES, 0, 0, 4,
	  "GET_CLOCK_FREQUENCIES to device" },
	{ 0xA2, CCID_REQ_GET_DATA_RATES, 0, CCID_EP_BULK_IN, 4,
	  "GET_DATA_RATES to endpoint" },
};

START_TEST(test_requests_stall)
{
	const struct bad_req *r = &bad_reqs[_i];
	struct harness *h = new_rwu(false, true);
	uint8_t buf[512] = { 0 };
	int n;

	n = h_control(h, r->rt, r->req, r->value, r->index, r->length, buf,
		      sizeof(buf));
	ck_assert_msg(n == STALL, "%s (%02x %02x %04x %04x %04x) = %d, "
		      "expected stall", r->what, r->rt, r->req, r->value,
		      r->index, r->length, n);
	/* the device keeps working */
	ck_assert_uint_eq(get_config(h), 1);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* CCID class requests (CCID 1.1 §5.3)                                */
/* ------------------------------------------------------------------ */
static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

START_TEST(test_get_clock_frequencies)
{
	struct harness *h = new_rwu(false, true);
	const uint8_t *d;
	size_t len = 0;
	uint8_t buf[1024];
	int n;
	unsigned num;
	uint32_t def, max;
	bool has_default = false;

	d = ccid_dev_config_descriptor(h->dev, &len) + 18;
	num = d[18];            /* bNumClockSupported */
	def = le32(d + 10);     /* dwDefaultClock */
	max = le32(d + 14);     /* dwMaximumClock */
	ck_assert_uint_ge(num, 1);
	/* A1 02 0000 0000 wLength: room for more than announced */
	n = h_control(h, RT_CLASS_IN, CCID_REQ_GET_CLOCK_FREQUENCIES, 0, 0,
		      sizeof(buf), buf, sizeof(buf));
	ck_assert_int_eq(n, (int)(4 * num));
	for (unsigned i = 0; i < num; i++) {
		uint32_t f = le32(buf + 4 * i);

		ck_assert_uint_le(f, max);
		if (f == def)
			has_default = true;
	}
	ck_assert_msg(has_default, "dwDefaultClock %u not in the list", def);
	/* the exact answer for the configured single clock */
	h_assert_bytes(buf, (size_t)n, BYTES(LE32(EXP_DEFAULT_CLOCK)),
		       "GET_CLOCK_FREQUENCIES");
	/* truncated to wLength */
	n = h_control(h, RT_CLASS_IN, CCID_REQ_GET_CLOCK_FREQUENCIES, 0, 0, 2,
		      buf, sizeof(buf));
	ck_assert_int_eq(n, 2);
	h_free(h);
}
END_TEST

START_TEST(test_get_data_rates)
{
	struct harness *h = new_rwu(false, true);
	const uint8_t *d;
	size_t len = 0;
	uint8_t buf[1024];
	int n;
	unsigned num;
	uint32_t def, max;
	bool has_default = false;

	d = ccid_dev_config_descriptor(h->dev, &len) + 18;
	num = d[27];            /* bNumDataRatesSupported */
	def = le32(d + 19);     /* dwDataRate */
	max = le32(d + 23);     /* dwMaxDataRate */
	ck_assert_uint_ge(num, 1);
	/* A1 03 0000 0000 wLength */
	n = h_control(h, RT_CLASS_IN, CCID_REQ_GET_DATA_RATES, 0, 0,
		      sizeof(buf), buf, sizeof(buf));
	ck_assert_int_eq(n, (int)(4 * num));
	for (unsigned i = 0; i < num; i++) {
		uint32_t r = le32(buf + 4 * i);

		ck_assert_uint_le(r, max);
		if (r == def)
			has_default = true;
	}
	ck_assert_msg(has_default, "dwDataRate %u not in the list", def);
	h_assert_bytes(buf, (size_t)n, BYTES(LE32(EXP_DATA_RATE)),
		       "GET_DATA_RATES");
	n = h_control(h, RT_CLASS_IN, CCID_REQ_GET_DATA_RATES, 0, 0, 3, buf,
		      sizeof(buf));
	ck_assert_int_eq(n, 3);
	h_free(h);
}
END_TEST

/* ABORT with nothing in flight: accepted; the matching PC_to_RDR_Abort is
 * answered with SlotStatus OK (details in test_async). */
START_TEST(test_class_abort_idle)
{
	struct harness *h = new_rwu(false, true);

	/* 21 01 wValue = bSeq 0x05 << 8 | bSlot 0, wIndex 0, wLength 0 */
	ck_assert_int_eq(h_control(h, RT_CLASS_OUT, CCID_REQ_ABORT, 0x0500, 0, 0,
				   NULL, 0), 0);
	h_assert_no_reply(h);
	h_exchange(h, (&(struct vec){ "PC_to_RDR_Abort after class ABORT",
		/* PC_to_RDR_Abort: type, dwLength=0, bSlot=0, bSeq=5, RFU x3 */
		BYTES(0x72, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00),
		/* RDR_to_PC_SlotStatus: type, dwLength=0, bSlot=0, bSeq=5,
		 * bStatus=present+inactive, bError=0, bClockStatus */
		BYTES(0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x01, 0x00,
		      EXP_CLOCK_STATUS) }));
	h_free(h);
}
END_TEST

static Suite *control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc;

	tc = h_tcase("standard");
	tcase_add_test(tc, test_status_device_rwu);
	tcase_add_test(tc, test_status_device_no_rwu);
	tcase_add_test(tc, test_status_interface);
	tcase_add_test(tc, test_status_endpoint);
	tcase_add_test(tc, test_endpoint_halt);
	tcase_add_test(tc, test_halt_cleared);
	tcase_add_test(tc, test_address_state);
	tcase_add_test(tc, test_configuration);
	tcase_add_test(tc, test_interface);
	tcase_add_test(tc, test_get_descriptor_types);
	tcase_add_loop_test(tc, test_requests_stall, 0, (int)N_ELEMS(bad_reqs));
	suite_add_tcase(s, tc);

	tc = h_tcase("class");
	tcase_add_test(tc, test_get_clock_frequencies);
	tcase_add_test(tc, test_get_data_rates);
	tcase_add_test(tc, test_class_abort_idle);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return h_run_suite(control_suite());
}
