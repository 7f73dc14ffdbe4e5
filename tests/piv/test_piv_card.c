/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual PIV card through the real device model, in process (suite
 * 'integration'): ATR, the worker thread answering while the device sends
 * time extensions during an RSA key generation, persistence across a
 * restart of the card, the store lock, and a corrupt store failing alone
 * while the card in the other slot keeps working.
 */
#include "itest_common.h"

#include <agent_piv.h>
#include <ccid_card_piv.h>
#include <ccid_piv_store.h>
#include <glib/gstdio.h>
#include <openssl/evp.h>
#include <string.h>

static char *tmp_root;

static const guint8 select_piv[] = {
	0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08
};

/* A device whose time extensions come every 10 ms (the smallest allowed),
 * so a card that blocked the device thread during a key generation would
 * show none. */
static void init_dev(struct itest *it, unsigned n_slots)
{
	struct ccid_config cfg;
	g_autoptr(GError) error = NULL;

	memset(it, 0, sizeof(*it));
	ccid_config_init(&cfg);
	cfg.n_slots = (uint8_t)n_slots;
	cfg.max_busy_slots = (uint8_t)n_slots;
	cfg.time_extension_ms = 10;
	it->t = agent_transport_new(NULL, FALSE);
	it->dev = agent_transport_create_dev(it->t, &cfg, &error);
	ck_assert_msg(it->dev != NULL, "%s", error ? error->message : "?");
	it->h = agent_host_new(it->t);
	agent_host_set_timeout_ms(it->h, 30000);
}

static char *card_dir(const char *name)
{
	return g_build_filename(tmp_root, name, NULL);
}

static guint sw_of(const GByteArray *r)
{
	return (guint)r->data[r->len - 2] << 8 | r->data[r->len - 1];
}

static guint xfr_sw(struct itest *it, guint8 slot, const guint8 *apdu,
		    gsize len)
{
	g_autoptr(GByteArray) r = itest_xfr(it, slot, apdu, len, NULL);

	return sw_of(r);
}

/* SP 800-73-4 mutual authentication with the default 3DES key. */
static void mgmt_auth(struct itest *it, guint8 slot)
{
	static const guint8 ask[] = { 0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02,
				      0x80, 0x00 };
	guint8 step2[5 + 22] = { 0x00, 0x87, 0x03, 0x9B, 22, 0x7C, 20, 0x80, 8 };
	g_autoptr(GByteArray) r = itest_xfr(it, slot, ask, sizeof(ask), NULL);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0;

	ck_assert_uint_eq(sw_of(r), 0x9000);
	ck_assert_uint_eq(r->len, 14);
	ck_assert_int_eq(EVP_DecryptInit_ex2(ctx, EVP_des_ede3_ecb(),
					     piv_default_mgmt_key, NULL, NULL), 1);
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	ck_assert_int_eq(EVP_DecryptUpdate(ctx, step2 + 9, &n, r->data + 4, 8), 1);
	EVP_CIPHER_CTX_free(ctx);
	step2[17] = 0x81;
	step2[18] = 8;
	memset(step2 + 19, 0x5A, 8);
	ck_assert_uint_eq(xfr_sw(it, slot, step2, sizeof(step2)), 0x9000);
}

static ccid_card_piv *add_card(struct itest *it, unsigned slot,
			       const char *dir, GError **error)
{
	agent_cardset *cs = agent_transport_get_cardset(it->t);

	return agent_piv_add(cs, slot, dir, error);
}

START_TEST(test_keygen_with_time_extensions)
{
	g_autofree char *dir = card_dir("keygen");
	static const guint8 gen_rsa[] = { 0x00, 0x47, 0x00, 0x9A, 0x05, 0xAC,
					  0x03, 0x80, 0x01, 0x07, 0x00 };
	static const guint8 gen_p256[] = { 0x00, 0x47, 0x00, 0x9C, 0x05, 0xAC,
					   0x03, 0x80, 0x01, 0x11, 0x00 };
	static const guint8 get_response[] = { 0x00, 0xC0, 0x00, 0x00, 0x00 };
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GByteArray) r = NULL;
	g_autoptr(GError) error = NULL;
	struct itest it;
	const guint8 *want_atr;
	gsize atr_len;
	guint n_te = 0, total_te = 0;
	gint64 t0;
	double rsa_ms, ec_ms;
	gsize pub_len;

	init_dev(&it, 1);
	ck_assert_ptr_nonnull(add_card(&it, 0, dir, &error));
	ck_assert_uint_eq(itest_configure(&it) & 0x03, 0x03);
	ck_assert(agent_host_power_on(it.h, 0, atr, &error));
	want_atr = ccid_card_piv_atr(&atr_len);
	ck_assert_uint_eq(atr->len, atr_len);
	ck_assert_mem_eq(atr->data, want_atr, atr_len);
	ck_assert_uint_eq(xfr_sw(&it, 0, select_piv, sizeof(select_piv)),
			  0x9000);
	mgmt_auth(&it, 0);

	/* RSA-2048: a few hundred ms of work; the device keeps the host
	 * informed with time extensions meanwhile.  Some key generations
	 * are quick, so the test takes the total over three. */
	for (int i = 0; i < 3; i++) {
		t0 = g_get_monotonic_time();
		g_clear_pointer(&r, g_byte_array_unref);
		r = itest_xfr(&it, 0, gen_rsa, sizeof(gen_rsa), &n_te);
		rsa_ms = (g_get_monotonic_time() - t0) / 1000.0;
		total_te += n_te;
		fprintf(stderr, "RSA-2048 key generation through the reader: "
			"%.0f ms, %u time extensions\n", rsa_ms, n_te);
		/* 7F49 82 010A 81 82 0100 n 82 03 e: 256 bytes, 61 0E */
		ck_assert_uint_eq(sw_of(r), 0x610E);
		pub_len = r->len - 2;
		g_byte_array_unref(r);
		r = itest_xfr(&it, 0, get_response, sizeof(get_response), NULL);
		ck_assert_uint_eq(sw_of(r), 0x9000);
		ck_assert_uint_eq(pub_len + r->len - 2, 270);
	}
	ck_assert_uint_ge(total_te, 1);

	t0 = g_get_monotonic_time();
	g_byte_array_unref(r);
	r = itest_xfr(&it, 0, gen_p256, sizeof(gen_p256), NULL);
	ec_ms = (g_get_monotonic_time() - t0) / 1000.0;
	fprintf(stderr, "P-256 key generation through the reader: %.1f ms\n",
		ec_ms);
	/* 7F49 43 86 41 04 x y */
	ck_assert_uint_eq(r->len, 2 + 3 + 2 + 65);
	ck_assert_uint_eq(sw_of(r), 0x9000);
	itest_clear(&it);
}
END_TEST

/* Everything written survives freeing the card and loading it again; a
 * wrong PIN counted before the restart stays counted. */
START_TEST(test_persistence)
{
	g_autofree char *dir = card_dir("persist");
	static const guint8 wrong_pin[] = { 0x00, 0x20, 0x00, 0x80, 0x08, '9',
					    '9', '9', '9', '9', '9', 0xFF, 0xFF };
	static const guint8 pin_status[] = { 0x00, 0x20, 0x00, 0x80 };
	static const guint8 put_chuid[] = { 0x00, 0xDB, 0x3F, 0xFF, 0x09, 0x5C,
					    0x03, 0x5F, 0xC1, 0x02, 0x53, 0x02,
					    0xCA, 0xFE };
	static const guint8 get_chuid[] = { 0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C,
					    0x03, 0x5F, 0xC1, 0x02, 0x00 };
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GByteArray) r = NULL;
	g_autoptr(GError) error = NULL;
	struct itest it;

	for (int round = 0; round < 2; round++) {
		init_dev(&it, 1);
		ck_assert_ptr_nonnull(add_card(&it, 0, dir, &error));
		itest_configure(&it);
		ck_assert(agent_host_power_on(it.h, 0, atr, &error));
		if (round == 0) {
			mgmt_auth(&it, 0);
			ck_assert_uint_eq(xfr_sw(&it, 0, put_chuid,
						 sizeof(put_chuid)), 0x9000);
			ck_assert_uint_eq(xfr_sw(&it, 0, wrong_pin,
						 sizeof(wrong_pin)), 0x63C2);
		} else {
			ck_assert_uint_eq(xfr_sw(&it, 0, pin_status,
						 sizeof(pin_status)), 0x63C2);
			r = itest_xfr(&it, 0, get_chuid, sizeof(get_chuid),
				      NULL);
			itest_assert_resp(r, (const guint8 *)"\x53\x02\xCA\xFE",
					  4, 0x9000);
		}
		itest_clear(&it);
	}
}
END_TEST

/* Two cards on one directory: the second is refused while the first
 * lives; a corrupt store fails with its file name while the card in the
 * other slot works. */
START_TEST(test_lock_and_corrupt)
{
	g_autofree char *good = card_dir("good");
	g_autofree char *bad = card_dir("bad");
	g_autofree char *bad_file = g_build_filename(bad, "card.ini", NULL);
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	struct itest it;

	init_dev(&it, 2);
	/* Slot 0: a corrupt store, refused with its file name. */
	ck_assert_int_eq(g_mkdir_with_parents(bad, 0700), 0);
	ck_assert(g_file_set_contents(bad_file, "[card]\nformat=1\n", -1, NULL));
	ck_assert_ptr_null(add_card(&it, 0, bad, &error));
	ck_assert(g_error_matches(error, CCID_PIV_STORE_ERROR,
				  CCID_PIV_STORE_ERROR_CORRUPT));
	ck_assert_msg(strstr(error->message, bad_file) != NULL, "%s",
		      error->message);
	g_clear_error(&error);
	/* Slot 1 (directory good-1): fine. */
	ck_assert_ptr_nonnull(add_card(&it, 1, good, &error));
	/* The same directory again, while that card lives: locked. */
	{
		g_autofree char *dir1 = agent_piv_slot_dir(good, 1);
		struct ccid_card_piv_config cfg = { .dir = dir1 };

		ck_assert_ptr_null(ccid_card_piv_new(ccid_dev_get_slot(it.dev, 0),
						     &cfg, &error));
		ck_assert(g_error_matches(error, CCID_PIV_STORE_ERROR,
					  CCID_PIV_STORE_ERROR_LOCKED));
		g_clear_error(&error);
	}
	/* Slot 1 works; slot 0 has no card. */
	ck_assert_uint_eq(itest_configure(&it) & 0x0F, 0x0C);
	ck_assert(agent_host_power_on(it.h, 1, atr, &error));
	ck_assert_uint_eq(xfr_sw(&it, 1, select_piv, sizeof(select_piv)),
			  0x9000);
	itest_clear(&it);
}
END_TEST

static void moved(void *user, gboolean changed, const GError *error)
{
	int *calls = user;

	ck_assert_msg(error == NULL, "%s", error ? error->message : "");
	ck_assert(changed);
	(*calls)++;
}

/* ctl remove / insert: the slot sees the card go and come back, and a
 * card that was out has lost its session. */
START_TEST(test_remove_insert)
{
	g_autofree char *dir = card_dir("moving");
	static const guint8 verify[] = { 0x00, 0x20, 0x00, 0x80, 0x08, '1',
					 '2', '3', '4', '5', '6', 0xFF, 0xFF };
	static const guint8 pin_status[] = { 0x00, 0x20, 0x00, 0x80 };
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GByteArray) m = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	agent_cardset *cs;
	struct itest it;
	guint8 icc = 0xFF;
	int calls = 0;

	init_dev(&it, 1);
	cs = agent_transport_get_cardset(it.t);
	ck_assert_ptr_nonnull(add_card(&it, 0, dir, &error));
	ck_assert_str_eq(agent_cardset_card_name(cs, 0), "piv");
	ck_assert(agent_cardset_is_present(cs, 0));
	itest_configure(&it);
	ck_assert(agent_host_power_on(it.h, 0, atr, &error));
	ck_assert_uint_eq(xfr_sw(&it, 0, verify, sizeof(verify)), 0x9000);

	agent_cardset_set_inserted(cs, 0, FALSE, moved, &calls);
	ck_assert_int_eq(calls, 1);
	ck_assert(!agent_cardset_is_present(cs, 0));
	/* NotifySlotChange: slot 0 absent, changed */
	ck_assert(agent_host_read_intr(it.h, m, &error));
	ck_assert_uint_eq(m->data[0], 0x50);
	ck_assert_uint_eq(m->data[1] & 0x03, 0x02);
	ck_assert(agent_host_get_slot_status(it.h, 0, &icc, &error));
	ck_assert_uint_eq(icc, CCID_ICC_ABSENT);

	agent_cardset_set_inserted(cs, 0, TRUE, moved, &calls);
	ck_assert_int_eq(calls, 2);
	g_byte_array_set_size(m, 0);
	ck_assert(agent_host_read_intr(it.h, m, &error));
	ck_assert_uint_eq(m->data[1] & 0x03, 0x03);
	ck_assert(agent_host_power_on(it.h, 0, atr, &error));
	/* The PIN verified before the card went out is forgotten. */
	ck_assert_uint_eq(xfr_sw(&it, 0, pin_status, sizeof(pin_status)),
			  0x63C3);
	itest_clear(&it);
}
END_TEST

static Suite *card_suite(void)
{
	Suite *s = suite_create("piv-card");
	TCase *tc = tcase_create("card");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_keygen_with_time_extensions);
	tcase_add_test(tc, test_persistence);
	tcase_add_test(tc, test_lock_and_corrupt);
	tcase_add_test(tc, test_remove_insert);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tmp_root = g_dir_make_tmp("piv-card-XXXXXX", NULL);
	g_assert(tmp_root != NULL);
	sr = srunner_create(card_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	{
		g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmp_root);

		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmp_root);
	}
	g_free(tmp_root);
	return failed == 0 ? 0 : 1;
}
