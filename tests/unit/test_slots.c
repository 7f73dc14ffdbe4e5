/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Slots and the interrupt endpoint: RDR_to_PC_NotifySlotChange (CCID 1.1
 * §6.3.1: bmSlotICCState, two bits per slot from bit 0: bit 2n = card
 * present, bit 2n+1 = changed since the last notification),
 * RDR_to_PC_HardwareError (§6.3.2), card removal during a command, bus
 * reset, backend replacement and device teardown.
 */
#include <string.h>

#include "expected.h"
#include "harness.h"

#define CLK EXP_CLOCK_STATUS
#define NOICC EXP_ERR_NO_ICC

static struct harness *slots(unsigned n, bool present)
{
	struct ccid_config cfg;

	h_config_default(&cfg);
	cfg.n_slots = (uint8_t)n;
	cfg.max_busy_slots = (uint8_t)n;
	return h_new_configured(&cfg, present);
}

static void expect_intr_none(struct harness *h)
{
	uint8_t buf[64];
	int n = h_intr_pull(h, buf);

	ck_assert_msg(n == CCID_PULL_NONE,
		      "unexpected interrupt message (%d bytes, type 0x%02x)", n,
		      n > 0 ? buf[0] : 0);
}

static void expect_status(struct harness *h, uint8_t slot, uint8_t seq,
			  uint8_t status)
{
	uint8_t in[CCID_HDR_LEN], out[CCID_HDR_LEN];

	/* GetSlotStatus -> SlotStatus with @status, bError 0 */
	h_hdr(in, 0x65, 0, slot, seq, 0, 0, 0);
	h_hdr(out, 0x81, 0, slot, seq, status, 0x00, CLK);
	h_send(h, in, sizeof(in));
	h_expect(h, out, sizeof(out), "GetSlotStatus");
}

/* ------------------------------------------------------------------ */
/* NotifySlotChange                                                   */
/* ------------------------------------------------------------------ */
START_TEST(test_notify_one_slot)
{
	struct harness *h = slots(1, false);
	unsigned ready = h->n_intr_in_ready;

	expect_intr_none(h);
	h_card_insert(h, 0);
	ck_assert_uint_gt(h->n_intr_in_ready, ready);
	/* bMessageType 0x50, bmSlotICCState: slot 0 present (bit 0) +
	 * changed (bit 1) */
	h_expect_intr(h, BYTES(0x50, 0x03), "insert");
	expect_intr_none(h);
	expect_status(h, 0, 0x01, 0x01);
	h_card_remove(h, 0);
	/* slot 0 absent + changed */
	h_expect_intr(h, BYTES(0x50, 0x02), "remove");
	expect_intr_none(h);
	expect_status(h, 0, 0x02, 0x02);
	h_free(h);
}
END_TEST

/* Several events before the host pulls become one message carrying the
 * current state and a changed bit. */
START_TEST(test_notify_coalesce)
{
	struct harness *h = slots(1, false);

	h_card_insert(h, 0);
	h_card_remove(h, 0);
	h_card_insert(h, 0);
	h_expect_intr(h, BYTES(0x50, 0x03), "insert, remove, insert");
	expect_intr_none(h);
	/* a remove + insert pair is still a change (another card maybe) */
	h_card_remove(h, 0);
	h_card_insert(h, 0);
	h_expect_intr(h, BYTES(0x50, 0x03), "remove, insert");
	expect_intr_none(h);
	h_card_remove(h, 0);
	h_card_insert(h, 0);
	h_card_remove(h, 0);
	h_expect_intr(h, BYTES(0x50, 0x02), "remove, insert, remove");
	expect_intr_none(h);
	h_free(h);
}
END_TEST

/* The last slot of an n-slot reader: the message grows to 1 + ceil(n/4)
 * bytes. */
static const struct {
	unsigned n_slots;
	const uint8_t *msg;
	size_t len;
} notify_last_slot[] = {
	{ 1, BYTES(0x50, 0x03) },               /* slot 0: bits 0-1 */
	{ 2, BYTES(0x50, 0x0C) },               /* slot 1: bits 2-3 */
	{ 3, BYTES(0x50, 0x30) },               /* slot 2: bits 4-5 */
	{ 4, BYTES(0x50, 0xC0) },               /* slot 3: bits 6-7 */
	{ 5, BYTES(0x50, 0x00, 0x03) },         /* slot 4: byte 2 bits 0-1 */
	{ 6, BYTES(0x50, 0x00, 0x0C) },         /* slot 5 */
	{ 7, BYTES(0x50, 0x00, 0x30) },         /* slot 6 */
	{ 8, BYTES(0x50, 0x00, 0xC0) },         /* slot 7: byte 2 bits 6-7 */
};

START_TEST(test_notify_sizes)
{
	unsigned n = notify_last_slot[_i].n_slots;
	struct harness *h = slots(n, false);

	h_card_insert(h, n - 1);
	h_expect_intr(h, notify_last_slot[_i].msg, notify_last_slot[_i].len,
		      "insert into the last slot");
	expect_intr_none(h);
	h_free(h);
}
END_TEST

START_TEST(test_notify_8_slots)
{
	struct harness *h = slots(8, false);

	h_card_insert(h, 0);
	h_card_insert(h, 3);
	h_card_insert(h, 7);
	h_expect_intr(h, BYTES(0x50,
			       0xC3,    /* slot 3 present+changed (bits 6,7),
			                 * slot 0 present+changed (bits 0,1) */
			       0xC0),   /* slot 7 present+changed (bits 6,7) */
		      "insert 0, 3, 7");
	expect_intr_none(h);
	h_card_remove(h, 3);
	h_expect_intr(h, BYTES(0x50,
			       0x81,    /* slot 3 absent+changed (bit 7),
			                 * slot 0 present, unchanged (bit 0) */
			       0x40),   /* slot 7 present, unchanged (bit 6) */
		      "remove 3");
	expect_intr_none(h);
	for (uint8_t i = 0; i < 8; i++)
		expect_status(h, i, (uint8_t)(0x10 + i),
			      (i == 0 || i == 7) ? 0x01 : 0x02);
	h_free(h);
}
END_TEST

/* Present-bits of unchanged slots reflect the cards bound at start. */
START_TEST(test_notify_present_unchanged)
{
	struct ccid_config cfg;
	struct harness *h;

	h_config_default(&cfg);
	cfg.n_slots = 2;
	cfg.max_busy_slots = 2;
	h = h_new(&cfg, false);
	/* slot 0 gets another backend whose card is already in; slot 1
	 * stays empty */
	h->cards[6].index = 0;
	h->cards[6].slot = h->cards[0].slot;
	ccid_slot_set_card(h->cards[0].slot, fake_card_ops(), &h->cards[6], true);
	h_set_config(h, 1);
	h_drain(h);
	h_card_insert(h, 1);
	/* slot 0 present (bit 0), slot 1 present+changed (bits 2,3) */
	h_expect_intr(h, BYTES(0x50, 0x0D), "insert slot 1");
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* HardwareError                                                      */
/* ------------------------------------------------------------------ */
START_TEST(test_hardware_error)
{
	struct harness *h = slots(1, true);

	expect_status(h, 0, 0x5A, 0x01);
	ccid_slot_hardware_error(h->cards[0].slot);
	/* RDR_to_PC_HardwareError: bMessageType 0x51, bSlot 0, bSeq of the
	 * last command (0x5A), bHardwareErrorCode 0x01 (overcurrent) */
	h_expect_intr(h, BYTES(0x51, 0x00, 0x5A, 0x01), "hardware error");
	expect_intr_none(h);
	h_free(h);
}
END_TEST

START_TEST(test_hardware_error_slot2)
{
	struct harness *h = slots(4, true);

	expect_status(h, 2, 0x77, 0x01);
	expect_status(h, 1, 0x78, 0x01);
	ccid_slot_hardware_error(h->cards[2].slot);
	h_expect_intr(h, BYTES(0x51, 0x02, 0x77, 0x01), "hardware error slot 2");
	expect_intr_none(h);
	h_free(h);
}
END_TEST

/* HardwareError and NotifySlotChange are separate messages, one per
 * interrupt transfer. */
START_TEST(test_hardware_error_and_notify)
{
	struct harness *h = slots(1, true);
	uint8_t buf[64];
	int n1, n2;
	bool saw_hw = false, saw_notify = false;

	expect_status(h, 0, 0x33, 0x01);
	ccid_slot_hardware_error(h->cards[0].slot);
	h_card_remove(h, 0);
	for (int i = 0; i < 2; i++) {
		n1 = h_intr_pull(h, buf);
		ck_assert_int_gt(n1, 0);
		if (buf[0] == 0x51) {
			h_assert_bytes(buf, (size_t)n1, BYTES(0x51, 0x00, 0x33, 0x01),
				       "hardware error");
			saw_hw = true;
		} else {
			h_assert_bytes(buf, (size_t)n1, BYTES(0x50, 0x02),
				       "slot change");
			saw_notify = true;
		}
	}
	ck_assert(saw_hw && saw_notify);
	n2 = h_intr_pull(h, buf);
	ck_assert_int_eq(n2, CCID_PULL_NONE);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Removal during a command                                           */
/* ------------------------------------------------------------------ */
START_TEST(test_remove_during_apdu)
{
	struct harness *h = slots(1, true);

	h_power_on(h, 0, 0x01);
	h->cards[0].answer_now = false;
	h_send(h, BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00,
			0x00, 0x00, 0xA4, 0x04, 0x00));
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	h_card_remove(h, 0);
	ck_assert_uint_eq(h->cards[0].n_cancel, 1);
	/* DataBlock for the pending XfrBlock: failed, ICC absent */
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x60, 0x42, NOICC,
			  0x00), "pending XfrBlock after removal");
	h_assert_no_reply(h);
	h_expect_intr(h, BYTES(0x50, 0x02), "removal");
	/* a completion after the cancel is ignored */
	fake_card_complete_late(&h->cards[0], FAKE_OP_TRANSMIT);
	h_assert_no_reply(h);
	expect_status(h, 0, 0x61, 0x02);
	/* no time extension for the dead command */
	if (h->deadline >= 0) {
		h->now = (uint64_t)h->deadline;
		ccid_dev_timer_expired(h->dev);
	}
	h_assert_no_reply(h);
	/* a new card comes in unpowered */
	h_card_insert(h, 0);
	h_expect_intr(h, BYTES(0x50, 0x03), "insertion");
	expect_status(h, 0, 0x62, 0x01);
	h->cards[0].answer_now = true;
	h_exchange(h, (&(struct vec){ "XfrBlock to the new, unpowered card",
		BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x63, 0x00, 0x00, 0x00,
		      0x00, 0xA4, 0x04, 0x00),
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x63, 0x41, NOICC, 0x00) }));
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	h_power_on(h, 0, 0x64);
	h_free(h);
}
END_TEST

START_TEST(test_remove_during_power_on)
{
	struct harness *h = slots(1, true);

	h->cards[0].answer_now = false;
	h_send(h, BYTES(0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0x00, 0x00,
			0x00));
	h_card_remove(h, 0);
	ck_assert_uint_eq(h->cards[0].n_cancel, 1);
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x70, 0x42, NOICC,
			  0x00), "pending IccPowerOn after removal");
	h_assert_no_reply(h);
	fake_card_complete_late(&h->cards[0], FAKE_OP_POWER_ON);
	h_assert_no_reply(h);
	expect_status(h, 0, 0x71, 0x02);
	h_free(h);
}
END_TEST

/* The backend reports the card gone through the op's status
 * (CCID_CARD_ENOCARD) and then, as a backend does, through
 * ccid_slot_card_removed().  The slot is absent afterwards either way, and
 * the host must hear about it on the interrupt endpoint (CCID 1.1 §6.3.1):
 * exactly one NotifySlotChange saying absent + changed. */
static void enocard_then_removed(struct harness *h, uint8_t seq, uint8_t st)
{
	uint8_t exp[CCID_HDR_LEN];

	h->cards[0].apdu_status = CCID_CARD_ENOCARD;
	h->cards[0].power_on_status = CCID_CARD_ENOCARD;
	fake_card_complete(&h->cards[0]);
	/* failed, ICC absent */
	h_hdr(exp, 0x80, 0, 0, seq, st, NOICC, 0x00);
	h_expect(h, exp, sizeof(exp), "reply to the op the card lost");
	h_card_remove(h, 0);
	h_assert_no_reply(h);
	h_expect_intr(h, BYTES(0x50, 0x02), "slot change after ENOCARD");
	expect_intr_none(h);
	expect_status(h, 0, (uint8_t)(seq + 1), 0x02);
}

START_TEST(test_enocard_apdu_notifies)
{
	struct harness *h = slots(1, true);

	h_power_on(h, 0, 0x01);
	h->cards[0].answer_now = false;
	h_send(h, BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00,
			0x00, 0x00, 0xA4, 0x04, 0x00));
	enocard_then_removed(h, 0x20, 0x42);
	h_free(h);
}
END_TEST

START_TEST(test_enocard_power_on_notifies)
{
	struct harness *h = slots(1, true);

	h->cards[0].answer_now = false;
	h_send(h, BYTES(0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00,
			0x00));
	enocard_then_removed(h, 0x30, 0x42);
	h_free(h);
}
END_TEST

/* A powered card that is pulled out and put back is unpowered. */
START_TEST(test_remove_powered_idle)
{
	struct harness *h = slots(1, true);

	h_power_on(h, 0, 0x01);
	expect_status(h, 0, 0x02, 0x00);
	h_card_remove(h, 0);
	h_assert_no_reply(h);
	expect_status(h, 0, 0x03, 0x02);
	h_card_insert(h, 0);
	expect_status(h, 0, 0x04, 0x01);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Bus reset                                                          */
/* ------------------------------------------------------------------ */
START_TEST(test_bus_reset)
{
	struct harness *h = slots(1, true);
	uint8_t part[64];

	h_power_on(h, 0, 0x01);
	h->cards[0].answer_now = false;
	h_send(h, BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x70, 0x00, 0x00,
			0x00, 0x00, 0xA4, 0x04, 0x00));
	/* a reply left in the queue (busy) */
	h_send(h, BYTES(0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x71, 0x00, 0x00,
			0x00));
	/* and half a message: 64 bytes of a 128-byte XfrBlock */
	memset(part, 0x65, sizeof(part));
	h_hdr(part, 0x6F, 118, 0, 0x72, 0, 0, 0);
	h_send(h, part, sizeof(part));

	ccid_dev_reset(h->dev);
	ck_assert(!ccid_dev_is_configured(h->dev));
	/* op cancelled, then card powered off (contract order) */
	ck_assert_uint_eq(h->cards[0].n_cancel, 1);
	ck_assert_uint_eq(h->cards[0].n_power_off, 1);
	ck_assert_msg(strstr(h->cards[0].events, "CO") != NULL,
		      "expected cancel then power_off, events \"%s\"",
		      h->cards[0].events);
	/* queued bulk-IN data is gone */
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, h->xfer, 64),
			 CCID_PULL_NONE);
	fake_card_complete_late(&h->cards[0], FAKE_OP_TRANSMIT);
	h_assert_no_reply(h);

	h_set_config(h, 1);
	h_drain(h);
	/* the half message is forgotten: this header starts a new message;
	 * the card is still present, now inactive */
	expect_status(h, 0, 0x73, 0x01);
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	/* no time extension from before the reset */
	if (h->deadline >= 0) {
		h->now = (uint64_t)h->deadline;
		ccid_dev_timer_expired(h->dev);
	}
	h_assert_no_reply(h);
	h->cards[0].answer_now = true;
	h_power_on(h, 0, 0x74);
	h_free(h);
}
END_TEST

START_TEST(test_bus_reset_presence_kept)
{
	struct harness *h = slots(2, false);

	h_card_insert(h, 1);
	ccid_dev_reset(h->dev);
	h_set_config(h, 1);
	h_drain(h);
	expect_status(h, 0, 0x01, 0x02);
	expect_status(h, 1, 0x02, 0x01);
	ck_assert_uint_eq(h->cards[0].n_power_on, 0);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Backend replacement and teardown                                   */
/* ------------------------------------------------------------------ */
START_TEST(test_set_card_replaces)
{
	struct harness *h = slots(1, true);
	struct fake_card *spare = &h->cards[5];   /* unused by a 1-slot reader */

	h_power_on(h, 0, 0x01);
	h->cards[0].answer_now = false;
	h_send(h, BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
			0x00, 0x00, 0xA4, 0x04, 0x00));

	spare->index = 0;
	spare->slot = h->cards[0].slot;
	spare->answer_now = true;
	fake_card_set_atr(spare, BYTES(FAKE_ATR_T1));
	ccid_slot_set_card(h->cards[0].slot, fake_card_ops(), spare, true);
	/* old backend: cancelled, then detached */
	ck_assert_uint_eq(h->cards[0].n_cancel, 1);
	ck_assert_uint_eq(h->cards[0].n_detach, 1);
	ck_assert_msg(strstr(h->cards[0].events, "CD") != NULL,
		      "expected cancel then detach, events \"%s\"",
		      h->cards[0].events);
	/* whatever the guest was told about the old command, drop it */
	h_drain(h);
	/* the new card is not powered */
	expect_status(h, 0, 0x11, 0x01);
	h_power_on(h, 0, 0x12);
	ck_assert_uint_eq(spare->n_power_on, 1);
	ck_assert_uint_eq(h->cards[0].n_power_on, 1);
	h_free(h);
	/* h_free() frees the device: the new card is detached, once */
}
END_TEST

START_TEST(test_free_detaches)
{
	struct harness *h = slots(2, true);

	h_power_on(h, 0, 0x01);
	h->cards[0].answer_now = false;
	h_send(h, BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
			0x00, 0x00, 0xA4, 0x04, 0x00));
	ccid_dev_free(h->dev);
	h->dev = NULL;
	ck_assert_uint_eq(h->cards[0].n_cancel, 1);
	ck_assert_uint_eq(h->cards[0].n_detach, 1);
	ck_assert_uint_eq(h->cards[1].n_detach, 1);
	ck_assert_msg(strstr(h->cards[0].events, "CD") != NULL ||
		      strstr(h->cards[0].events, "COD") != NULL,
		      "expected cancel before detach, events \"%s\"",
		      h->cards[0].events);
	h_free(h);
}
END_TEST

/* A transport that polls: no wake-up callbacks, no log callback. */
START_TEST(test_polling_transport)
{
	struct harness *h = h_new_polling(NULL, false);

	h_set_config(h, 1);
	h_drain(h);
	h_card_insert(h, 0);
	h_expect_intr(h, BYTES(0x50, 0x03), "insert");
	h_power_on(h, 0, 0x01);
	/* malformed input exercises the debug log path */
	h_send(h, BYTES(0x6F, 0x05, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
			0x00, 0x00));
	h_drain(h);
	ck_assert_uint_eq(h->n_bulk_in_ready, 0);
	ck_assert_uint_eq(h->n_intr_in_ready, 0);
	ck_assert_uint_eq(h->n_logs, 0);
	h_free(h);
}
END_TEST

static Suite *slots_suite(void)
{
	Suite *s = suite_create("slots");
	TCase *tc;

	tc = h_tcase("notify");
	tcase_add_test(tc, test_notify_one_slot);
	tcase_add_test(tc, test_notify_coalesce);
	tcase_add_loop_test(tc, test_notify_sizes, 0, (int)N_ELEMS(notify_last_slot));
	tcase_add_test(tc, test_notify_8_slots);
	tcase_add_test(tc, test_notify_present_unchanged);
	suite_add_tcase(s, tc);

	tc = h_tcase("hwerror");
	tcase_add_test(tc, test_hardware_error);
	tcase_add_test(tc, test_hardware_error_slot2);
	tcase_add_test(tc, test_hardware_error_and_notify);
	suite_add_tcase(s, tc);

	tc = h_tcase("removal");
	tcase_add_test(tc, test_remove_during_apdu);
	tcase_add_test(tc, test_remove_during_power_on);
	tcase_add_test(tc, test_remove_powered_idle);
	tcase_add_test(tc, test_enocard_apdu_notifies);
	tcase_add_test(tc, test_enocard_power_on_notifies);
	suite_add_tcase(s, tc);

	tc = h_tcase("lifecycle");
	tcase_add_test(tc, test_bus_reset);
	tcase_add_test(tc, test_bus_reset_presence_kept);
	tcase_add_test(tc, test_set_card_replaces);
	tcase_add_test(tc, test_free_detaches);
	tcase_add_test(tc, test_polling_transport);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return h_run_suite(slots_suite());
}
