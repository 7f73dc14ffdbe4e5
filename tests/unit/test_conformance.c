/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Driver conformance: the byte-level rows of docs/driver-conformance.md.
 * Each row is one documented requirement of a host driver the reader must
 * work with (libccid 1.5.2, Windows' usbccid.sys, GnuPG 2.2's scdaemon
 * CCID driver) and the bytes that satisfy it, checked against the device
 * as it ships: ccid_config_init()'s defaults, not a test configuration.
 * Row IDs (L-, W-, G- for the driver that needs it, several letters when
 * more than one does) are the ones the document uses.
 */
#include <string.h>

#include "harness.h"

/* ------------------------------------------------------------------ */
/* Descriptor rows: bytes at an offset of the device or configuration  */
/* descriptor.                                                         */
/* ------------------------------------------------------------------ */
enum desc_kind { DESC_DEVICE, DESC_CONFIG };

/* Offsets inside the configuration descriptor: configuration (9),
 * interface (9), CCID class descriptor (54), three endpoints (7 each). */
#define IF_OFF      9u
#define CLASS_OFF   18u
#define EP_OFF      (CLASS_OFF + 54u)

static const struct desc_row {
	const char *id;
	enum desc_kind kind;
	size_t off;
	const uint8_t *exp;
	size_t exp_len;
} desc_rows[] = {
	/* usbccid.sys binds by compatible ID USB\Class_0B&SubClass_00;
	 * libccid and scdaemon look for interface class 0x0B. */
	{ "LWG-interface-class", DESC_CONFIG, IF_OFF + 5,
	  BYTES(0x0B,           /* bInterfaceClass: smart card */
		0x00,           /* bInterfaceSubClass */
		0x00) },        /* bInterfaceProtocol: CCID (bulk + interrupt) */
	/* Device class 0: the interface says what it is. */
	{ "W-device-class", DESC_DEVICE, 4,
	  BYTES(0x00, 0x00, 0x00) },
	/* scdaemon: "CCID device descriptor is not like expected" unless
	 * bLength >= 54; libccid reads the 54 bytes of the extra
	 * descriptor. */
	{ "LG-class-desc", DESC_CONFIG, CLASS_OFF,
	  BYTES(0x36,           /* bLength 54 */
		0x21,           /* bDescriptorType: CCID functional */
		LE16(0x0110)) },/* bcdCCID 1.10 */
	/* scdaemon refuses a reader without T=1; libccid takes either. */
	{ "LG-protocols", DESC_CONFIG, CLASS_OFF + 6,
	  BYTES(LE32(0x00000003)) },    /* dwProtocols: T=0 | T=1 */
	/* One clock and one data rate: usbccid.sys and libccid ask
	 * GET_CLOCK_FREQUENCIES / GET_DATA_RATES for that many entries
	 * (control rows below). */
	{ "LW-clock", DESC_CONFIG, CLASS_OFF + 10,
	  BYTES(LE32(4000),     /* dwDefaultClock kHz */
		LE32(4000),     /* dwMaximumClock kHz */
		0x01) },        /* bNumClockSupported */
	{ "LW-data-rate", DESC_CONFIG, CLASS_OFF + 19,
	  BYTES(LE32(10752),    /* dwDataRate bps */
		LE32(10752),    /* dwMaxDataRate bps */
		0x01) },        /* bNumDataRatesSupported */
	/* Exchange level: short and extended APDU (0x00040000), which all
	 * three drivers accept; automatic parameters from the ATR (0x02),
	 * voltage (0x08), clock (0x10), baud rate (0x20) and parameter
	 * negotiation by the reader (0x40) without the alternative 0x80
	 * (scdaemon: "conflicting negotiation features"). */
	{ "LWG-features", DESC_CONFIG, CLASS_OFF + 40,
	  BYTES(LE32(0x0004007A)) },
	/* A whole extended APDU (10 + 65544 bytes) in one message: libccid
	 * and scdaemon chain commands longer than this, so they never
	 * need to. */
	{ "LG-max-message", DESC_CONFIG, CLASS_OFF + 44,
	  BYTES(LE32(65554)) },
	/* No PIN pad, no LCD: no driver sends secure PIN entry. */
	{ "LWG-no-pinpad", DESC_CONFIG, CLASS_OFF + 50,
	  BYTES(LE16(0x0000),   /* wLcdLayout */
		0x00) },        /* bPINSupport */
	/* Bulk OUT, bulk IN and interrupt IN: libccid and scdaemon wait on
	 * the interrupt endpoint for card events instead of polling. */
	{ "LWG-endpoints", DESC_CONFIG, EP_OFF,
	  BYTES(0x07, 0x05, 0x02, 0x02, LE16(64), 0x00,     /* bulk OUT 0x02 */
		0x07, 0x05, 0x81, 0x02, LE16(64), 0x00,     /* bulk IN 0x81 */
		0x07, 0x05, 0x83, 0x03, LE16(8), 0x04) },   /* intr IN 0x83, 4 ms */
	/* The default identity: SCM SCR 335, listed by stock libccid (no
	 * per-model code there), at a bcdDevice past scdaemon's IFSD
	 * workaround for SCR 335 firmware below 5.14. */
	{ "LG-identity", DESC_DEVICE, 8,
	  BYTES(LE16(0x04E6),   /* idVendor */
		LE16(0x5115),   /* idProduct */
		LE16(0x0520)) },/* bcdDevice 5.20 */
};

START_TEST(test_desc_row)
{
	const struct desc_row *r = &desc_rows[_i];
	struct ccid_config cfg;
	struct harness *h;
	const uint8_t *d;
	size_t len;

	ccid_config_init(&cfg);
	h = h_new(&cfg, true);
	d = r->kind == DESC_DEVICE ? ccid_dev_device_descriptor(h->dev, &len) :
				     ccid_dev_config_descriptor(h->dev, &len);
	ck_assert_msg(r->off + r->exp_len <= len, "%s: offset past the descriptor",
		      r->id);
	h_assert_bytes(d + r->off, r->exp_len, r->exp, r->exp_len, r->id);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Control rows: class requests the drivers send.                      */
/* ------------------------------------------------------------------ */
static const struct ctrl_row {
	const char *id;
	uint8_t type, req;
	uint16_t value, len;
	const uint8_t *exp;
	size_t exp_len;
} ctrl_rows[] = {
	/* A1 02: GET_CLOCK_FREQUENCIES, bNumClockSupported x dwClock */
	{ "LW-get-clock-frequencies", 0xA1, 0x02, 0x0000, 4,
	  BYTES(LE32(4000)) },
	/* A1 03: GET_DATA_RATES, bNumDataRatesSupported x dwDataRate */
	{ "LW-get-data-rates", 0xA1, 0x03, 0x0000, 4,
	  BYTES(LE32(10752)) },
	/* usbccid.sys asks with a larger buffer: still one entry each */
	{ "W-get-clock-frequencies-256", 0xA1, 0x02, 0x0000, 256,
	  BYTES(LE32(4000)) },
	{ "W-get-data-rates-256", 0xA1, 0x03, 0x0000, 256,
	  BYTES(LE32(10752)) },
};

START_TEST(test_ctrl_row)
{
	const struct ctrl_row *r = &ctrl_rows[_i];
	struct ccid_config cfg;
	struct harness *h;
	uint8_t buf[256];
	int n;

	ccid_config_init(&cfg);
	h = h_new_configured(&cfg, true);
	n = h_control(h, r->type, r->req, r->value, 0, r->len, buf, sizeof(buf));
	ck_assert_msg(n >= 0, "%s stalled", r->id);
	h_assert_bytes(buf, (size_t)n, r->exp, r->exp_len, r->id);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Message rows: what a driver sends on a powered T=1 card, and the     */
/* reply it needs.                                                      */
/* ------------------------------------------------------------------ */
static const struct vec msg_rows[] = {
	/* usbccid.sys reads the protocol in force after power-on. */
	{ "W-get-parameters",
	  BYTES(0x6C, LE32(0), 0x00, 0x20, 0x00, 0x00, 0x00),
	  /* RDR_to_PC_Parameters, 7 bytes, bProtocolNum 1 (T=1) */
	  BYTES(0x82, LE32(7), 0x00, 0x20, 0x00, 0x00, 0x01,
		0x11, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00) },
	/* scdaemon sends SetParameters T=1 with these exact bytes after
	 * power-on (seen in the guest, scd/ccid-driver.c ccid_get_atr) and
	 * needs RDR_to_PC_Parameters back, else it gives up on the card. */
	{ "G-set-parameters-t1",
	  BYTES(0x61, LE32(7), 0x00, 0x21, 0x01, 0x00, 0x00,
		0x11, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00),
	  BYTES(0x82, LE32(7), 0x00, 0x21, 0x00, 0x00, 0x01,
		0x11, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00) },
	/* libccid sends a vendor Escape only for some IDs (Gemalto's, not
	 * ours); usbccid.sys on an application's IOCTL.  The answer is
	 * RDR_to_PC_Escape, failed, bError 0 (command not supported), never
	 * a stall or silence. */
	{ "LW-escape",
	  BYTES(0x6B, LE32(1), 0x00, 0x22, 0x00, 0x00, 0x00, 0x6A),
	  BYTES(0x83, LE32(0), 0x00, 0x22, 0x40, 0x00, 0x00) },
	/* GetSlotStatus: scdaemon polls it for SCM readers even with an
	 * interrupt endpoint (ccid_require_get_status). */
	{ "G-get-slot-status",
	  BYTES(0x65, LE32(0), 0x00, 0x23, 0x00, 0x00, 0x00),
	  BYTES(0x81, LE32(0), 0x00, 0x23, 0x00, 0x00, 0x00) },
	/* APDU level: a short APDU in one XfrBlock, answered in one
	 * DataBlock (the fake card says 90 00). */
	{ "LWG-xfrblock-short",
	  BYTES(0x6F, LE32(5), 0x00, 0x24, 0x00, 0x00, 0x00,
		0x00, 0xA4, 0x04, 0x00, 0x00),
	  BYTES(0x80, LE32(2), 0x00, 0x24, 0x00, 0x00, 0x00, 0x90, 0x00) },
};

START_TEST(test_msg_row)
{
	const struct vec *v = &msg_rows[_i];
	struct ccid_config cfg;
	struct harness *h;

	ccid_config_init(&cfg);
	h = h_new_configured(&cfg, true);
	h->cards[0].answer_now = true;
	h_power_on(h, 0, 0x10);
	h_send(h, v->in, v->in_len);
	h_expect(h, v->out, v->out_len, v->what);
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

/* LG-xfrblock-extended: an extended APDU (case 3, Lc 300) goes to the card
 * whole, in one message, at the extended APDU level: no TPDU, no
 * chaining. */
START_TEST(test_xfrblock_extended)
{
	struct ccid_config cfg;
	struct harness *h;
	uint8_t msg[CCID_HDR_LEN + 307];

	ccid_config_init(&cfg);
	h = h_new_configured(&cfg, true);
	h->cards[0].answer_now = true;
	h_power_on(h, 0, 0x10);
	h_hdr(msg, 0x6F, 307, 0, 0x30, 0, 0, 0);
	/* 80 01 00 00 | 00 01 2C | 300 data bytes */
	msg[10] = 0x80; msg[11] = 0x01; msg[12] = 0x00; msg[13] = 0x00;
	msg[14] = 0x00; msg[15] = 0x01; msg[16] = 0x2C;
	for (unsigned i = 0; i < 300; i++)
		msg[17 + i] = (uint8_t)i;
	h_send(h, msg, sizeof(msg));
	h_expect(h, BYTES(0x80, LE32(2), 0x00, 0x30, 0x00, 0x00, 0x00,
			  0x90, 0x00), "extended APDU answered");
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	h_assert_bytes(h->cards[0].last_apdu, h->cards[0].last_apdu_len,
		       msg + CCID_HDR_LEN, 307, "APDU the card got");
	h_free(h);
}
END_TEST

/* LWG-time-extension: a card operation longer than the drivers' read
 * timeouts (libccid: its own, scdaemon: 5 s) is kept alive by
 * RDR_to_PC_DataBlock with bStatus 0x80 (time extension requested) and
 * bError 1 (multiplier) every 500 ms; the answer follows with the same
 * bSeq. */
START_TEST(test_time_extension)
{
	struct ccid_config cfg;
	struct harness *h;
	uint8_t msg[CCID_HDR_LEN + 5];

	ccid_config_init(&cfg);
	h = h_new_configured(&cfg, true);
	h->cards[0].answer_now = true;
	h_power_on(h, 0, 0x10);
	h->cards[0].answer_now = false;
	h_hdr(msg, 0x6F, 5, 0, 0x40, 0, 0, 0);
	memcpy(msg + CCID_HDR_LEN, (const uint8_t[]){ 0x00, 0xA4, 0x04, 0x00, 0x00 }, 5);
	h_send(h, msg, sizeof(msg));
	h_assert_no_reply(h);
	for (unsigned k = 0; k < 3; k++) {
		h_advance(h, cfg.time_extension_ms);
		ccid_dev_timer_expired(h->dev);
		h_expect(h, BYTES(0x80, LE32(0), 0x00, 0x40, 0x80, 0x01, 0x00),
			 "time extension");
	}
	fake_card_complete(&h->cards[0]);
	h_expect(h, BYTES(0x80, LE32(2), 0x00, 0x40, 0x00, 0x00, 0x00,
			  0x90, 0x00), "answer after time extensions");
	h_free(h);
}
END_TEST

/* W-abort: usbccid.sys cancels with the class ABORT request (21 01,
 * wValue = bSeq << 8 | bSlot) followed by PC_to_RDR_Abort with the same
 * bSeq; the command in flight fails with CMD_ABORTED (0xFF) and the
 * Abort gets RDR_to_PC_SlotStatus. */
START_TEST(test_abort)
{
	struct ccid_config cfg;
	struct harness *h;
	uint8_t msg[CCID_HDR_LEN + 5];
	int r;

	ccid_config_init(&cfg);
	h = h_new_configured(&cfg, true);
	h->cards[0].answer_now = true;
	h_power_on(h, 0, 0x10);
	h->cards[0].answer_now = false;
	h_hdr(msg, 0x6F, 5, 0, 0x50, 0, 0, 0);
	memcpy(msg + CCID_HDR_LEN, (const uint8_t[]){ 0x00, 0xA4, 0x04, 0x00, 0x00 }, 5);
	h_send(h, msg, sizeof(msg));
	r = h_control(h, 0x21, 0x01, 0x5100, 0, 0, NULL, 0);
	ck_assert_int_eq(r, 0);
	h_hdr(msg, 0x72, 0, 0, 0x51, 0, 0, 0);
	h_send(h, msg, CCID_HDR_LEN);
	h_expect(h, BYTES(0x80, LE32(0), 0x00, 0x50, 0x40, 0xFF, 0x00),
		 "XfrBlock aborted");
	h_expect(h, BYTES(0x81, LE32(0), 0x00, 0x51, 0x00, 0x00, 0x00),
		 "Abort answered");
	h_free(h);
}
END_TEST

/* LG-notify: card insertion and removal on the interrupt endpoint,
 * RDR_to_PC_NotifySlotChange: bmSlotICCState, 2 bits per slot (present,
 * changed). */
START_TEST(test_notify)
{
	struct ccid_config cfg;
	struct harness *h;
	uint8_t buf[8];
	int n;

	ccid_config_init(&cfg);
	h = h_new_configured(&cfg, false);
	h_card_insert(h, 0);
	n = ccid_dev_intr_in_pull(h->dev, buf, sizeof(buf));
	h_assert_bytes(buf, (size_t)n, BYTES(0x50, 0x03), "inserted");
	h_card_remove(h, 0);
	n = ccid_dev_intr_in_pull(h->dev, buf, sizeof(buf));
	h_assert_bytes(buf, (size_t)n, BYTES(0x50, 0x02), "removed");
	h_free(h);
}
END_TEST

static Suite *conformance_suite(void)
{
	Suite *s = suite_create("conformance");
	TCase *tc = h_tcase("rows");

	tcase_add_loop_test(tc, test_desc_row, 0, (int)N_ELEMS(desc_rows));
	tcase_add_loop_test(tc, test_ctrl_row, 0, (int)N_ELEMS(ctrl_rows));
	tcase_add_loop_test(tc, test_msg_row, 0, (int)N_ELEMS(msg_rows));
	tcase_add_test(tc, test_xfrblock_extended);
	tcase_add_test(tc, test_time_extension);
	tcase_add_test(tc, test_abort);
	tcase_add_test(tc, test_notify);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return h_run_suite(conformance_suite());
}
