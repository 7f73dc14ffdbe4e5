/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Commands the card answers later: time extension (CCID 1.1 §6.2.6,
 * bmCommandStatus 2), abort (§5.3.1 class ABORT + §6.1.13
 * PC_to_RDR_Abort), busy slots (bError CMD_SLOT_BUSY, bMaxCCIDBusySlots).
 */
#include <string.h>

#include "expected.h"
#include "harness.h"

#define CLK EXP_CLOCK_STATUS
#define TX EXP_TIME_EXT_MULT

static struct harness *powered_late(const struct ccid_config *cfg)
{
	struct harness *h = h_new_configured(cfg, true);

	for (unsigned i = 0; i < h->cfg.n_slots; i++) {
		h_power_on(h, (uint8_t)i, 0x01);
		h->cards[i].answer_now = false;
	}
	return h;
}

/* XfrBlock with SELECT 00 A4 04 00 to @slot; the card keeps it pending. */
static void send_xfr(struct harness *h, uint8_t slot, uint8_t seq)
{
	uint8_t m[CCID_HDR_LEN + 4];

	h_hdr(m, 0x6F, 4, slot, seq, 0, 0, 0);
	m[10] = 0x00;
	m[11] = 0xA4;
	m[12] = 0x04;
	m[13] = 0x00;
	h_send(h, m, sizeof(m));
}

static void expect_select_ok(struct harness *h, uint8_t slot, uint8_t seq)
{
	uint8_t exp[CCID_HDR_LEN + 2];

	/* DataBlock: dwLength 2, OK + active, response 90 00 */
	h_hdr(exp, 0x80, 2, slot, seq, 0x00, 0x00, 0x00);
	exp[10] = 0x90;
	exp[11] = 0x00;
	h_expect(h, exp, sizeof(exp), "final answer");
}

/* Fires the timer the device asked for; fails if it asked for none. */
static void fire_timer(struct harness *h)
{
	ck_assert_msg(h->deadline >= 0, "no timer armed");
	if ((int64_t)h->now < h->deadline)
		h->now = (uint64_t)h->deadline;
	ccid_dev_timer_expired(h->dev);
}

/* ------------------------------------------------------------------ */
/* Time extension                                                     */
/* ------------------------------------------------------------------ */
START_TEST(test_time_extension)
{
	struct harness *h = powered_late(NULL);
	unsigned ready;

	ck_assert_uint_eq(h->now, 1000);
	ck_assert(!ccid_slot_is_busy(h->cards[0].slot));
	send_xfr(h, 0, 0x21);
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	/* The card holds the APDU: the slot says so until it answers. */
	ck_assert(ccid_slot_is_busy(h->cards[0].slot));
	h_assert_no_reply(h);
	/* first time extension due time_extension_ms after the command */
	ck_assert_int_eq(h->deadline, 1500);

	h_advance(h, 500);
	ready = h->n_bulk_in_ready;
	ccid_dev_timer_expired(h->dev);
	ck_assert_uint_gt(h->n_bulk_in_ready, ready);
	/* RDR_to_PC_DataBlock: dwLength 0, bSlot 0, same bSeq,
	 * bStatus 0x80 (time extension) | ICC active, bError = multiplier,
	 * bChainParameter 0 */
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x80, TX,
			  0x00), "time extension 1");
	h_assert_no_reply(h);
	/* and again every time_extension_ms while the card is busy */
	ck_assert_int_eq(h->deadline, 2000);
	h_advance(h, 500);
	ccid_dev_timer_expired(h->dev);
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x21, 0x80, TX,
			  0x00), "time extension 2");
	ck_assert_int_eq(h->deadline, 2500);

	h_advance(h, 100);
	ck_assert(ccid_slot_is_busy(h->cards[0].slot));
	fake_card_complete(&h->cards[0]);
	ck_assert(!ccid_slot_is_busy(h->cards[0].slot));
	expect_select_ok(h, 0, 0x21);
	h_assert_no_reply(h);
	/* no further time extension after the answer */
	h_advance(h, 5000);
	if (h->deadline >= 0)
		ccid_dev_timer_expired(h->dev);
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

/* A host that does not pull gets one pending time extension, not one per
 * period. */
START_TEST(test_time_extension_no_pileup)
{
	struct harness *h = powered_late(NULL);
	int n;

	send_xfr(h, 0, 0x22);
	for (int i = 0; i < 5; i++) {
		if (h->deadline < 0)
			break;
		fire_timer(h);
	}
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x80, TX,
			  0x00), "the one time extension");
	h_assert_no_reply(h);
	fake_card_complete(&h->cards[0]);
	expect_select_ok(h, 0, 0x22);
	n = (int)h_pull_msg(h);
	ck_assert_int_eq(n, -1);
	h_free(h);
}
END_TEST

/* The period comes from the config. */
START_TEST(test_time_extension_period)
{
	struct ccid_config cfg;
	struct harness *h;

	h_config_default(&cfg);
	cfg.time_extension_ms = 1234;
	h = powered_late(&cfg);
	h->now = 50000;
	send_xfr(h, 0, 0x23);
	ck_assert_int_eq(h->deadline, 50000 + 1234);
	fire_timer(h);
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x23, 0x80, TX,
			  0x00), "time extension");
	ck_assert_int_eq(h->deadline, 50000 + 2 * 1234);
	fake_card_complete(&h->cards[0]);
	expect_select_ok(h, 0, 0x23);
	h_free(h);
}
END_TEST

/* A slow power-on gets time extensions too, with ICC status inactive. */
START_TEST(test_time_extension_power_on)
{
	struct harness *h = h_new_configured(NULL, true);

	h->cards[0].answer_now = false;
	h_send(h, BYTES(0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00,
			0x00));
	ck_assert_uint_eq(h->cards[0].n_power_on, 1);
	h_assert_no_reply(h);
	fire_timer(h);
	/* DataBlock: time extension | present+inactive */
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x81, TX,
			  0x00), "time extension during power-on");
	fake_card_complete(&h->cards[0]);
	h_expect(h, BYTES(0x80, 0x04, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00,
			  0x00, 0x3B, 0x80, 0x01, 0x81), "ATR");
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Abort                                                              */
/* ------------------------------------------------------------------ */
static void class_abort(struct harness *h, uint8_t slot, uint8_t seq)
{
	/* 21 01 wValue = bSeq << 8 | bSlot, wIndex 0 (interface), wLength 0 */
	int r = h_control(h, 0x21, CCID_REQ_ABORT,
			  (uint16_t)(seq << 8 | slot), 0, 0, NULL, 0);

	ck_assert_int_eq(r, 0);
}

static void bulk_abort(struct harness *h, uint8_t slot, uint8_t seq)
{
	uint8_t m[CCID_HDR_LEN];

	/* PC_to_RDR_Abort: dwLength 0, bSlot, bSeq, RFU x3 */
	h_hdr(m, 0x72, 0, slot, seq, 0, 0, 0);
	h_send(h, m, sizeof(m));
}

static void check_aborted_xfr(struct harness *h)
{
	/* the pending XfrBlock (bSeq 0x30): DataBlock, failed + active,
	 * CMD_ABORTED */
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x40, 0xFF,
			  0x00), "aborted XfrBlock");
	/* the Abort (bSeq 0x31): SlotStatus OK, card still active */
	h_expect(h, BYTES(0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x31, 0x00, 0x00,
			  CLK), "Abort");
	h_assert_no_reply(h);
	ck_assert_uint_eq(h->cards[0].n_cancel, 1);
	ck_assert_uint_eq(h->cards[0].n_power_off, 0);
	/* a completion after cancel is ignored */
	fake_card_complete_late(&h->cards[0], FAKE_OP_TRANSMIT);
	h_assert_no_reply(h);
	/* and no time extension for the aborted command */
	if (h->deadline >= 0)
		fire_timer(h);
	h_assert_no_reply(h);
	/* the slot is free again */
	h->cards[0].answer_now = true;
	send_xfr(h, 0, 0x32);
	expect_select_ok(h, 0, 0x32);
}

START_TEST(test_abort_class_first)
{
	struct harness *h = powered_late(NULL);

	send_xfr(h, 0, 0x30);
	class_abort(h, 0, 0x31);
	bulk_abort(h, 0, 0x31);
	check_aborted_xfr(h);
	h_free(h);
}
END_TEST

START_TEST(test_abort_bulk_first)
{
	struct harness *h = powered_late(NULL);

	send_xfr(h, 0, 0x30);
	bulk_abort(h, 0, 0x31);
	class_abort(h, 0, 0x31);
	check_aborted_xfr(h);
	h_free(h);
}
END_TEST

/* The abort arrives after a time extension went out. */
START_TEST(test_abort_after_time_extension)
{
	struct harness *h = powered_late(NULL);

	send_xfr(h, 0, 0x30);
	fire_timer(h);
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x80, TX,
			  0x00), "time extension");
	class_abort(h, 0, 0x31);
	bulk_abort(h, 0, 0x31);
	check_aborted_xfr(h);
	h_free(h);
}
END_TEST

START_TEST(test_abort_power_on)
{
	struct harness *h = h_new_configured(NULL, true);

	h->cards[0].answer_now = false;
	h_send(h, BYTES(0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00,
			0x00));
	class_abort(h, 0, 0x41);
	bulk_abort(h, 0, 0x41);
	/* IccPowerOn: DataBlock, failed + inactive, CMD_ABORTED */
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x41, 0xFF,
			  0x00), "aborted IccPowerOn");
	h_expect(h, BYTES(0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x41, 0x01, 0x00,
			  CLK), "Abort");
	ck_assert_uint_eq(h->cards[0].n_cancel, 1);
	fake_card_complete_late(&h->cards[0], FAKE_OP_POWER_ON);
	h_assert_no_reply(h);
	/* still inactive: the late ATR did not power the slot */
	h_exchange(h, (&(struct vec){ "GetSlotStatus",
		BYTES(0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42, 0x00, 0x00, 0x00),
		BYTES(0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42, 0x01, 0x00, CLK) }));
	h_free(h);
}
END_TEST

/* Nothing in flight: only the Abort is answered. */
START_TEST(test_abort_idle_powered)
{
	struct harness *h = powered_late(NULL);

	class_abort(h, 0, 0x50);
	bulk_abort(h, 0, 0x50);
	h_expect(h, BYTES(0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x00, 0x00,
			  CLK), "Abort, idle");
	h_assert_no_reply(h);
	ck_assert_uint_eq(h->cards[0].n_cancel, 0);
	h_free(h);
}
END_TEST

/* Abort discards a command chain being assembled. */
START_TEST(test_abort_chain)
{
	struct ccid_config cfg;
	struct harness *h;

	h_config_default(&cfg);
	cfg.max_message_len = 271;
	h = powered_late(&cfg);
	h_exchange(h, (&(struct vec){ "chain part 1",
		BYTES(0x6F, 0x02, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x01, 0x00,
		      0x00, 0xA4),
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x10) }));
	class_abort(h, 0, 0x61);
	bulk_abort(h, 0, 0x61);
	h_expect(h, BYTES(0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x00, 0x00,
			  CLK), "Abort");
	h_assert_no_reply(h);
	h_exchange(h, (&(struct vec){ "continuation after abort",
		BYTES(0x6F, 0x02, 0x00, 0x00, 0x00, 0x00, 0x62, 0x00, 0x02, 0x00,
		      0x04, 0x00),
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x62, 0x40, 0x08, 0x00) }));
	ck_assert_uint_eq(h->cards[0].n_transmit, 0);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Busy slots                                                         */
/* ------------------------------------------------------------------ */
START_TEST(test_busy_same_slot)
{
	struct harness *h = powered_late(NULL);

	send_xfr(h, 0, 0x40);
	/* every command to the busy slot: its own reply type, failed + ICC
	 * status, CMD_SLOT_BUSY, with the NEW command's bSeq */
	h_exchange(h, (&(struct vec){ "GetSlotStatus while busy",
		BYTES(0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x41, 0x00, 0x00, 0x00),
		BYTES(0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x41, 0x40, 0xE0, CLK) }));
	h_exchange(h, (&(struct vec){ "XfrBlock while busy",
		BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x42, 0x00, 0x00, 0x00,
		      0x00, 0xB0, 0x00, 0x00),
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x42, 0x40, 0xE0, 0x00) }));
	h_exchange(h, (&(struct vec){ "IccPowerOff while busy",
		BYTES(0x63, 0x00, 0x00, 0x00, 0x00, 0x00, 0x43, 0x00, 0x00, 0x00),
		BYTES(0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x43, 0x40, 0xE0, CLK) }));
	h_exchange(h, (&(struct vec){ "IccPowerOn while busy",
		BYTES(0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x44, 0x00, 0x00, 0x00),
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x44, 0x40, 0xE0, 0x00) }));
	h_exchange(h, (&(struct vec){ "GetParameters while busy",
		BYTES(0x6C, 0x00, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x00),
		BYTES(0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x45, 0x40, 0xE0, 0x00) }));
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	ck_assert_uint_eq(h->cards[0].n_power_on, 1);
	ck_assert_uint_eq(h->cards[0].n_power_off, 0);
	ck_assert_uint_eq(h->cards[0].n_cancel, 0);
	fake_card_complete(&h->cards[0]);
	expect_select_ok(h, 0, 0x40);
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

/* bMaxCCIDBusySlots 1 on a 2-slot reader: slot 1 is refused while slot 0
 * works. */
START_TEST(test_busy_slots_limit)
{
	struct ccid_config cfg;
	struct harness *h;

	h_config_default(&cfg);
	cfg.n_slots = 2;
	cfg.max_busy_slots = 1;
	h = powered_late(&cfg);
	send_xfr(h, 0, 0x50);
	h_exchange(h, (&(struct vec){ "XfrBlock slot 1 while slot 0 busy",
		BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00, 0x00,
		      0x00, 0xA4, 0x04, 0x00),
		/* DataBlock for slot 1: failed + active, CMD_SLOT_BUSY */
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x51, 0x40, 0xE0, 0x00) }));
	ck_assert_uint_eq(h->cards[1].n_transmit, 0);
	fake_card_complete(&h->cards[0]);
	expect_select_ok(h, 0, 0x50);
	/* now slot 1 may go */
	send_xfr(h, 1, 0x52);
	ck_assert_uint_eq(h->cards[1].n_transmit, 1);
	fake_card_complete(&h->cards[1]);
	expect_select_ok(h, 1, 0x52);
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

/* bMaxCCIDBusySlots 2: both slots in flight, answers in completion
 * order. */
START_TEST(test_busy_slots_two)
{
	struct ccid_config cfg;
	struct harness *h;

	h_config_default(&cfg);
	cfg.n_slots = 2;
	cfg.max_busy_slots = 2;
	h = powered_late(&cfg);
	send_xfr(h, 0, 0x60);
	send_xfr(h, 1, 0x61);
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	ck_assert_uint_eq(h->cards[1].n_transmit, 1);
	h_assert_no_reply(h);
	fake_card_complete(&h->cards[1]);
	expect_select_ok(h, 1, 0x61);
	fake_card_complete(&h->cards[0]);
	expect_select_ok(h, 0, 0x60);
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

/* 4 slots, 2 may be busy: the third is refused. */
START_TEST(test_busy_slots_4_2)
{
	struct ccid_config cfg;
	struct harness *h;

	h_config_default(&cfg);
	cfg.n_slots = 4;
	cfg.max_busy_slots = 2;
	h = powered_late(&cfg);
	send_xfr(h, 0, 0x70);
	send_xfr(h, 2, 0x71);
	h_exchange(h, (&(struct vec){ "XfrBlock slot 3, two busy",
		BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x03, 0x72, 0x00, 0x00, 0x00,
		      0x00, 0xA4, 0x04, 0x00),
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x03, 0x72, 0x40, 0xE0, 0x00) }));
	h_exchange(h, (&(struct vec){ "IccPowerOn slot 1, two busy",
		BYTES(0x62, 0x00, 0x00, 0x00, 0x00, 0x01, 0x73, 0x00, 0x00, 0x00),
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x73, 0x40, 0xE0, 0x00) }));
	ck_assert_uint_eq(h->cards[3].n_transmit, 0);
	ck_assert_uint_eq(h->cards[1].n_power_on, 1);
	fake_card_complete(&h->cards[2]);
	expect_select_ok(h, 2, 0x71);
	send_xfr(h, 3, 0x74);
	ck_assert_uint_eq(h->cards[3].n_transmit, 1);
	fake_card_complete(&h->cards[3]);
	expect_select_ok(h, 3, 0x74);
	fake_card_complete(&h->cards[0]);
	expect_select_ok(h, 0, 0x70);
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

/* Errors reported late by the card. */
START_TEST(test_late_errors)
{
	struct harness *h = powered_late(NULL);

	send_xfr(h, 0, 0x80);
	h->cards[0].apdu_status = CCID_CARD_EMUTE;
	fake_card_complete(&h->cards[0]);
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x40, 0xFE,
			  0x00), "late ICC_MUTE");
	send_xfr(h, 0, 0x81);
	h->cards[0].apdu_status = CCID_CARD_EHW;
	fake_card_complete(&h->cards[0]);
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x81, 0x40, 0xFB,
			  0x00), "late HW_ERROR");
	send_xfr(h, 0, 0x82);
	h->cards[0].apdu_status = CCID_CARD_ENOCARD;
	fake_card_complete(&h->cards[0]);
	/* the card is gone: failed, ICC absent */
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x82, 0x42,
			  EXP_ERR_NO_ICC, 0x00), "late ENOCARD");
	/* a completion nobody asked for */
	fake_card_complete_late(&h->cards[0], FAKE_OP_TRANSMIT);
	fake_card_complete_late(&h->cards[0], FAKE_OP_POWER_ON);
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

/* A hardware error while a command is in flight fails that command. */
START_TEST(test_hardware_error_pending)
{
	struct harness *h = powered_late(NULL);

	send_xfr(h, 0, 0x90);
	ccid_slot_hardware_error(h->cards[0].slot);
	ck_assert_uint_eq(h->cards[0].n_cancel, 1);
	ck_assert_int_ge(h_pull_msg(h), 0);
	ck_assert_uint_eq(h->msg_len, CCID_HDR_LEN);
	ck_assert_uint_eq(h->msg[0], 0x80);             /* DataBlock */
	ck_assert_uint_eq(h->msg[6], 0x90);             /* bSeq */
	ck_assert_uint_eq(h->msg[7] & 0xC0, 0x40);      /* failed */
	ck_assert_uint_eq(h->msg[8], 0xFB);             /* HW_ERROR */
	h_assert_no_reply(h);
	h_expect_intr(h, BYTES(0x51, 0x00, 0x90, 0x01), "HardwareError");
	fake_card_complete_late(&h->cards[0], FAKE_OP_TRANSMIT);
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

/* Short-APDU level cannot chain: a card answer longer than one message
 * fails instead of being cut or overflowing. */
START_TEST(test_short_level_oversized_response)
{
	struct ccid_config cfg;
	struct harness *h;
	uint8_t resp[300];

	h_config_default(&cfg);
	cfg.features = CCID_FEAT_LEVEL_SHORT_APDU | CCID_FEAT_AUTO_PARAM_ATR;
	cfg.max_message_len = 271;
	h = powered_late(&cfg);
	memset(resp, 0x42, sizeof(resp));
	fake_card_set_resp(&h->cards[0], resp, sizeof(resp));
	send_xfr(h, 0, 0x91);
	fake_card_complete(&h->cards[0]);
	ck_assert_int_ge(h_pull_msg(h), 0);
	ck_assert_uint_eq(h->msg_len, CCID_HDR_LEN);
	ck_assert_uint_eq(h->msg[0], 0x80);
	ck_assert_uint_eq(h->msg[6], 0x91);
	ck_assert_uint_eq(h->msg[7], 0x40);             /* failed, active */
	ck_assert_uint_ne(h->msg[8], 0x00);
	h_assert_no_reply(h);
	h_free(h);
}
END_TEST

static Suite *async_suite(void)
{
	Suite *s = suite_create("async");
	TCase *tc;

	tc = h_tcase("time-extension");
	tcase_add_test(tc, test_time_extension);
	tcase_add_test(tc, test_time_extension_no_pileup);
	tcase_add_test(tc, test_time_extension_period);
	tcase_add_test(tc, test_time_extension_power_on);
	suite_add_tcase(s, tc);

	tc = h_tcase("abort");
	tcase_add_test(tc, test_abort_class_first);
	tcase_add_test(tc, test_abort_bulk_first);
	tcase_add_test(tc, test_abort_after_time_extension);
	tcase_add_test(tc, test_abort_power_on);
	tcase_add_test(tc, test_abort_idle_powered);
	tcase_add_test(tc, test_abort_chain);
	suite_add_tcase(s, tc);

	tc = h_tcase("busy");
	tcase_add_test(tc, test_busy_same_slot);
	tcase_add_test(tc, test_busy_slots_limit);
	tcase_add_test(tc, test_busy_slots_two);
	tcase_add_test(tc, test_busy_slots_4_2);
	tcase_add_test(tc, test_late_errors);
	tcase_add_test(tc, test_hardware_error_pending);
	tcase_add_test(tc, test_short_level_oversized_response);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return h_run_suite(async_suite());
}
