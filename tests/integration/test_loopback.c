/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The loopback card through the real device model: its ATR, every ISO
 * 7816-4 APDU case, the error status words, delayed answers with time
 * extensions, and that cancel (here: a USB bus reset) disarms the timer and
 * drops the parked answer.
 */
#include "itest_common.h"

#include <ccid_card_loopback.h>
#include <string.h>

static struct itest it;

static void setup(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GByteArray) atr = g_byte_array_new();

	itest_init(&it, 1);
	ck_assert(agent_transport_add_loopback(it.t, 0, &error) != NULL);
	ck_assert_uint_eq(itest_configure(&it) & 0x03, 0x03);
	ck_assert(agent_host_power_on(it.h, 0, atr, &error));
}

static void teardown(void)
{
	itest_clear(&it);
}

/* Sends @apdu and asserts an answer of exactly @sw with no data. */
static void expect_sw(const guint8 *apdu, gsize len, guint16 sw)
{
	g_autoptr(GByteArray) r = itest_xfr(&it, 0, apdu, len, NULL);

	itest_assert_resp(r, NULL, 0, sw);
}

static void expect_pattern(const guint8 *apdu, gsize len, gsize n)
{
	g_autoptr(GByteArray) r = itest_xfr(&it, 0, apdu, len, NULL);

	ck_assert_uint_eq(r->len, n + 2);
	for (gsize i = 0; i < n; i++)
		ck_assert_uint_eq(r->data[i], ccid_card_loopback_pattern_byte(i));
	ck_assert_uint_eq(r->data[n], 0x90);
	ck_assert_uint_eq(r->data[n + 1], 0x00);
}

START_TEST(test_atr)
{
	static const guint8 want[] = {
		0x3B, 0x88, 0x01, 0x63, 0x63, 0x69, 0x64, 0x6C, 0x6F, 0x6F,
		0x70, 0x98
	};
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	guint8 tck = 0;

	/* Warm reset: the same ATR again. */
	ck_assert(agent_host_power_on(it.h, 0, atr, &error));
	ck_assert_uint_eq(atr->len, sizeof(want));
	ck_assert_mem_eq(atr->data, want, sizeof(want));
	/* TCK makes the XOR of T0..TCK zero (ISO 7816-3 §8.2.5). */
	for (guint i = 1; i < atr->len; i++)
		tck ^= atr->data[i];
	ck_assert_uint_eq(tck, 0);
}
END_TEST

START_TEST(test_short_cases)
{
	const guint8 case1[] = { 0x80, 0x01, 0x00, 0x00 };
	const guint8 case2s_10[] = { 0x80, 0x02, 0x00, 0x00, 0x0A };
	const guint8 case2s_256[] = { 0x80, 0x02, 0x00, 0x00, 0x00 };
	const guint8 case3s[] = { 0x80, 0x01, 0x00, 0x00, 0x03, 0xAA, 0xBB, 0xCC };
	const guint8 case4s[] = { 0x80, 0x01, 0x00, 0x00, 0x02, 0x11, 0x22, 0x00 };
	const guint8 select[] = { 0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00 };
	g_autoptr(GByteArray) r3 = NULL;
	g_autoptr(GByteArray) r4 = NULL;

	expect_sw(case1, sizeof(case1), 0x9000);          /* empty ECHO */
	expect_pattern(case2s_10, sizeof(case2s_10), 10);
	expect_pattern(case2s_256, sizeof(case2s_256), 256);
	r3 = itest_xfr(&it, 0, case3s, sizeof(case3s), NULL);
	itest_assert_resp(r3, case3s + 5, 3, 0x9000);
	r4 = itest_xfr(&it, 0, case4s, sizeof(case4s), NULL);
	itest_assert_resp(r4, case4s + 5, 2, 0x9000);
	expect_sw(select, sizeof(select), 0x9000);
}
END_TEST

START_TEST(test_extended_cases)
{
	const guint8 case2e_300[] = { 0x80, 0x02, 0x00, 0x00, 0x00, 0x01, 0x2C };
	const guint8 case2e_max[] = { 0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00 };
	g_autofree guint8 *big = g_malloc(7 + 65535 + 2);
	g_autoptr(GByteArray) r3 = NULL;
	g_autoptr(GByteArray) r4 = NULL;

	expect_pattern(case2e_300, sizeof(case2e_300), 300);
	expect_pattern(case2e_max, sizeof(case2e_max), 65536);

	/* Case 3E with the largest Nc. */
	big[0] = 0x80;
	big[1] = CCID_LOOPBACK_INS_ECHO;
	big[2] = big[3] = 0;
	big[4] = 0;
	big[5] = 0xFF;
	big[6] = 0xFF;
	for (guint i = 0; i < 65535; i++)
		big[7 + i] = (guint8)(i * 13 + (i >> 8));
	r3 = itest_xfr(&it, 0, big, 7 + 65535, NULL);
	itest_assert_resp(r3, big + 7, 65535, 0x9000);

	/* Case 4E: 300 bytes and Le 00 00. */
	big[5] = 0x01;
	big[6] = 0x2C;
	big[7 + 300] = 0;
	big[7 + 301] = 0;
	r4 = itest_xfr(&it, 0, big, 7 + 300 + 2, NULL);
	itest_assert_resp(r4, big + 7, 300, 0x9000);
}
END_TEST

START_TEST(test_errors)
{
	const guint8 lc_mismatch[] = { 0x80, 0x01, 0x00, 0x00, 0x05, 0x01, 0x02 };
	const guint8 ext_lc_zero[] = { 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01 };
	const guint8 ext_short[] = { 0x80, 0x01, 0x00, 0x00, 0x00, 0x01 };
	const guint8 too_short[] = { 0x80, 0x01, 0x00 };
	const guint8 other_cla[] = { 0xA0, 0x01, 0x00, 0x00 };
	const guint8 iso_other_ins[] = { 0x00, 0xB0, 0x00, 0x00, 0x00 };
	const guint8 bad_ins[] = { 0x80, 0x55, 0x00, 0x00 };
	const guint8 delay_bad_len[] = { 0x80, 0x03, 0x00, 0x00, 0x02, 0x00, 0x10 };

	expect_sw(lc_mismatch, sizeof(lc_mismatch), 0x6700);
	expect_sw(ext_lc_zero, sizeof(ext_lc_zero), 0x6700);
	expect_sw(ext_short, sizeof(ext_short), 0x6700);
	expect_sw(too_short, sizeof(too_short), 0x6700);
	expect_sw(other_cla, sizeof(other_cla), 0x6E00);
	expect_sw(iso_other_ins, sizeof(iso_other_ins), 0x6D00);
	expect_sw(bad_ins, sizeof(bad_ins), 0x6D00);
	expect_sw(delay_bad_len, sizeof(delay_bad_len), 0x6700);
}
END_TEST

START_TEST(test_delay_time_extension)
{
	/* 1200 ms with the default 500 ms time extension. */
	const guint8 delay[] = { 0x80, 0x03, 0x00, 0x00, 0x04,
				 0x00, 0x00, 0x04, 0xB0 };
	/* DELAYED PATTERN 1500 ms, case 4S with Le 00 = 256 bytes.  Three
	 * extension periods, so a loaded machine that fires two timers in one
	 * main-loop turn still sees at least one extension. */
	const guint8 dpat[] = { 0x80, 0x04, 0x00, 0x00, 0x04,
				0x00, 0x00, 0x05, 0xDC, 0x00 };
	g_autoptr(GByteArray) r = NULL;
	g_autoptr(GByteArray) r2 = NULL;
	guint n_te = 0;
	gint64 t0 = g_get_monotonic_time();

	r = itest_xfr(&it, 0, delay, sizeof(delay), &n_te);
	itest_assert_resp(r, NULL, 0, 0x9000);
	ck_assert_int_ge(g_get_monotonic_time() - t0, 1200 * 1000);
	ck_assert_uint_ge(n_te, 2);

	n_te = 0;
	t0 = g_get_monotonic_time();
	r2 = itest_xfr(&it, 0, dpat, sizeof(dpat), &n_te);
	ck_assert_int_ge(g_get_monotonic_time() - t0, 1500 * 1000);
	ck_assert_uint_ge(n_te, 1);
	ck_assert_uint_eq(r2->len, 258);
	for (guint i = 0; i < 256; i++)
		ck_assert_uint_eq(r2->data[i], ccid_card_loopback_pattern_byte(i));
	ck_assert_uint_eq(r2->data[256], 0x90);
}
END_TEST

/* A timer that records what the card asks of it. */
struct rec_timer {
	guint arms, disarms;
	guint32 last_ms;
};

static void rec_arm(void *user, uint32_t ms)
{
	struct rec_timer *rt = user;

	rt->arms++;
	rt->last_ms = ms;
}

static void rec_disarm(void *user)
{
	struct rec_timer *rt = user;

	rt->disarms++;
}

static const struct ccid_card_loopback_timer_ops rec_ops = {
	rec_arm, rec_disarm
};

static void free_loopback(gpointer p)
{
	ccid_card_loopback_free(p);
}

START_TEST(test_cancel_drops_answer)
{
	const guint8 delay[] = { 0x80, 0x03, 0x00, 0x00, 0x04,
				 0x00, 0x00, 0x00, 0xC8 };
	struct itest x;
	struct rec_timer rt = { 0 };
	ccid_card_loopback *card;
	guint8 msg[10 + sizeof(delay)] = { CCID_PC_TO_RDR_XFR_BLOCK };
	guint8 buf[64];
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GError) error = NULL;

	/* A second device whose card uses the recording timer. */
	itest_init(&x, 1);
	card = ccid_card_loopback_new(ccid_dev_get_slot(x.dev, 0), &rec_ops,
				      &rt);
	ck_assert_ptr_nonnull(card);
	agent_transport_own_card(x.t, card, free_loopback);
	ccid_slot_set_card(ccid_dev_get_slot(x.dev, 0),
			   ccid_card_loopback_ops(), card, true);
	itest_configure(&x);
	ck_assert(agent_host_power_on(x.h, 0, atr, &error));

	msg[1] = sizeof(delay);
	msg[6] = 0x42;
	memcpy(msg + 10, delay, sizeof(delay));
	agent_host_send_raw(x.h, msg, sizeof(msg));
	ck_assert_uint_eq(rt.arms, 1);
	ck_assert_uint_eq(rt.last_ms, 200);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(x.dev, buf, sizeof(buf)),
			 CCID_PULL_NONE);

	/* Bus reset cancels the op: the card must disarm its timer... */
	ccid_dev_reset(x.dev);
	ck_assert_uint_eq(rt.disarms, 1);
	/* ...and a late expiry must not produce an answer. */
	ccid_card_loopback_timer_fired(card);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(x.dev, buf, sizeof(buf)),
			 CCID_PULL_NONE);
	itest_clear(&x);
}
END_TEST

static Suite *loopback_suite(void)
{
	Suite *s = suite_create("loopback card");
	TCase *tc = tcase_create("device model");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_atr);
	tcase_add_test(tc, test_short_cases);
	tcase_add_test(tc, test_extended_cases);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_delay_time_extension);
	tcase_add_test(tc, test_cancel_drops_answer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loopback_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
