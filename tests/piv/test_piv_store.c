/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the virtual PIV card's directory store (suite 'unit'):
 * creation with the defaults and the right modes, a round trip of every
 * field through card.ini, the counter on disk after a wrong PIN, clear
 * errors for corrupt files, and the lock.  Each test works in its own
 * temporary directory.
 */
#include <check.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ccid_piv_applet.h"
#include "ccid_piv_crypto.h"
#include "ccid_piv_store.h"

static char *tmp;

static void setup(void)
{
	tmp = g_dir_make_tmp("piv-store-XXXXXX", NULL);
	ck_assert_ptr_nonnull(tmp);
}

static void rm_rf(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *n;

	if (d == NULL)
		return;
	while ((n = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = g_build_filename(dir, n, NULL);

		if (g_file_test(p, G_FILE_TEST_IS_DIR))
			rm_rf(p);
		else
			g_unlink(p);
	}
	g_dir_close(d);
	g_rmdir(dir);
}

static void teardown(void)
{
	rm_rf(tmp);
	g_clear_pointer(&tmp, g_free);
}

static char *card_dir(void)
{
	return g_build_filename(tmp, "cards", "one", NULL);
}

static gboolean save_cb(void *user, const struct piv_data *d, GError **error)
{
	return ccid_piv_store_save(user, d, error);
}

static size_t run(piv_applet *a, const char *hex, guint8 *resp)
{
	guint8 cmd[300];
	size_t n = 0;

	for (const char *p = hex; *p; p++) {
		if (g_ascii_isxdigit(p[0]) && g_ascii_isxdigit(p[1])) {
			cmd[n++] = (guint8)(g_ascii_xdigit_value(p[0]) << 4 |
					    g_ascii_xdigit_value(p[1]));
			p++;
		}
	}
	return piv_applet_process(a, cmd, n, resp);
}

static unsigned sw(const guint8 *r, size_t n)
{
	return (unsigned)r[n - 2] << 8 | r[n - 1];
}

START_TEST(test_create_defaults)
{
	g_autofree char *dir = card_dir();
	g_autofree char *file = g_build_filename(dir, "card.ini", NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(piv_data) d = NULL;
	gboolean created = FALSE;
	struct stat st;
	uint8_t pin[8];

	ck_assert(ccid_piv_store_ensure(dir, &created, &error));
	ck_assert(created);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert(ccid_piv_store_ensure(dir, &created, &error));
	ck_assert(!created);
	d = ccid_piv_store_load(dir, &error);
	ck_assert_msg(d != NULL, "%s", error ? error->message : "");
	piv_pin_pad("123456", pin);
	ck_assert_mem_eq(d->pin, pin, 8);
	piv_pin_pad("12345678", pin);
	ck_assert_mem_eq(d->puk, pin, 8);
	ck_assert_uint_eq(d->pin_left, 3);
	ck_assert_uint_eq(d->mgmt_alg, PIV_ALG_3DES);
	ck_assert_mem_eq(d->mgmt_key, piv_default_mgmt_key, 24);
	ck_assert_uint_ge(d->serial, 10000000);
}
END_TEST

/* Keys, objects, PIN, PUK, counters and management key survive a save
 * and a load; the saved key still signs for the same public key. */
START_TEST(test_round_trip)
{
	g_autofree char *dir = card_dir();
	g_autoptr(GError) error = NULL;
	g_autoptr(piv_data) back = NULL;
	g_autoptr(GByteArray) s1 = g_byte_array_new();
	g_autoptr(GByteArray) s2 = g_byte_array_new();
	g_autoptr(GByteArray) p1 = g_byte_array_new();
	g_autoptr(GByteArray) p2 = g_byte_array_new();
	g_autoptr(piv_data) d = NULL;
	guint8 block[256] = { 0x00, 0x01 };

	ck_assert(ccid_piv_store_ensure(dir, NULL, &error));
	d = ccid_piv_store_load(dir, &error);
	ck_assert_ptr_nonnull(d);
	d->keys[0].alg = PIV_ALG_RSA2048;
	d->keys[0].origin = PIV_ORIGIN_GENERATED;
	d->keys[0].pin_policy = PIV_PIN_POLICY_ONCE;
	d->keys[0].pkey = piv_crypto_generate(PIV_ALG_RSA2048);
	d->keys[3].alg = PIV_ALG_ECC_P256;
	d->keys[3].origin = PIV_ORIGIN_IMPORTED;
	d->keys[3].pin_policy = PIV_PIN_POLICY_NEVER;
	d->keys[3].pkey = piv_crypto_generate(PIV_ALG_ECC_P256);
	g_tree_insert(d->objects, GUINT_TO_POINTER(0x5FC102),
		      g_bytes_new("\x30\x19\x01", 3));
	d->pin_left = 1;
	d->puk_max = 7;
	d->puk_left = 5;
	piv_pin_pad("999999", d->pin);
	d->mgmt_alg = PIV_ALG_AES256;
	memset(d->mgmt_key, 0x5A, 32);
	d->mgmt_len = 32;
	ck_assert(ccid_piv_store_save(dir, d, &error));

	back = ccid_piv_store_load(dir, &error);
	ck_assert_msg(back != NULL, "%s", error ? error->message : "");
	ck_assert_uint_eq(back->serial, d->serial);
	ck_assert_mem_eq(back->pin, d->pin, 8);
	ck_assert_uint_eq(back->pin_left, 1);
	ck_assert_uint_eq(back->puk_max, 7);
	ck_assert_uint_eq(back->puk_left, 5);
	ck_assert_uint_eq(back->mgmt_alg, PIV_ALG_AES256);
	ck_assert_uint_eq(back->mgmt_len, 32);
	ck_assert_mem_eq(back->mgmt_key, d->mgmt_key, 32);
	ck_assert(g_bytes_equal(g_tree_lookup(back->objects,
					      GUINT_TO_POINTER(0x5FC102)),
				g_tree_lookup(d->objects,
					      GUINT_TO_POINTER(0x5FC102))));
	ck_assert_uint_eq(back->keys[0].alg, PIV_ALG_RSA2048);
	ck_assert_uint_eq(back->keys[3].origin, PIV_ORIGIN_IMPORTED);
	ck_assert_uint_eq(back->keys[3].pin_policy, PIV_PIN_POLICY_NEVER);
	ck_assert_uint_eq(back->keys[1].alg, 0);
	/* Same key: the same raw RSA result and the same EC public point. */
	block[255] = 0x42;
	ck_assert(piv_crypto_rsa_raw(d->keys[0].pkey, block, 256, s1));
	ck_assert(piv_crypto_rsa_raw(back->keys[0].pkey, block, 256, s2));
	ck_assert_uint_eq(s1->len, 256);
	ck_assert_mem_eq(s1->data, s2->data, 256);
	ck_assert(piv_crypto_public_template(d->keys[3].pkey, p1));
	ck_assert(piv_crypto_public_template(back->keys[3].pkey, p2));
	ck_assert_uint_eq(p1->len, p2->len);
	ck_assert_mem_eq(p1->data, p2->data, p1->len);
}
END_TEST

/* The counter on disk is already down when the answer to a wrong PIN
 * leaves the card; no temporary file stays behind. */
START_TEST(test_counter_on_disk)
{
	g_autofree char *dir = card_dir();
	g_autoptr(GError) error = NULL;
	g_autoptr(piv_data) disk = NULL;
	g_autoptr(piv_applet) a = NULL;
	guint8 resp[PIV_APPLET_RESP_CAP];
	size_t n;
	GDir *gd;
	const char *name;
	unsigned files = 0;

	ck_assert(ccid_piv_store_ensure(dir, NULL, &error));
	a = piv_applet_new(ccid_piv_store_load(dir, &error), save_cb, dir);
	n = run(a, "00 20 00 80 08 313233343537FFFF", resp);
	ck_assert_uint_eq(sw(resp, n), 0x63C2);
	disk = ccid_piv_store_load(dir, &error);
	ck_assert_uint_eq(disk->pin_left, 2);
	gd = g_dir_open(dir, 0, NULL);
	while ((name = g_dir_read_name(gd)) != NULL) {
		ck_assert_str_eq(name, "card.ini");
		files++;
	}
	g_dir_close(gd);
	ck_assert_uint_eq(files, 1);
}
END_TEST

/* The process dies inside a PIN try, after the store saw the first write
 * (the pessimistic count) and before the card answered: the next agent
 * finds the try counted, although the PIN given was the right one. */
static gboolean save_then_die(void *user, const struct piv_data *d,
			      GError **error)
{
	if (!ccid_piv_store_save(user, d, error))
		return FALSE;
	raise(SIGKILL);
	return TRUE;
}

START_TEST(test_killed_during_try)
{
	g_autofree char *dir = card_dir();
	g_autoptr(GError) error = NULL;
	g_autoptr(piv_data) disk = NULL;
	int status = 0;
	pid_t pid;

	ck_assert(ccid_piv_store_ensure(dir, NULL, &error));
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		piv_applet *a = piv_applet_new(ccid_piv_store_load(dir, NULL),
					       save_then_die, dir);
		guint8 resp[PIV_APPLET_RESP_CAP];

		/* the right PIN */
		run(a, "00 20 00 80 08 313233343536FFFF", resp);
		_exit(0);   /* not reached: killed in the save */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	disk = ccid_piv_store_load(dir, &error);
	ck_assert_msg(disk != NULL, "%s", error ? error->message : "");
	ck_assert_uint_eq(disk->pin_left, 2);
}
END_TEST

/* One corrupt file per row: the error is CORRUPT and names the file and
 * the field. */
static const struct {
	const char *what;
	const char *replace, *with;
	const char *field;
} corruptions[] = {
	{ "not a key file", NULL, "\x01\x02 garbage", "card.ini" },
	{ "PIN value not hex", "value=313233343536ffff", "value=31323334353XYZff", "[pin] value" },
	{ "PIN value too short", "value=313233343536ffff", "value=3132", "[pin] value" },
	{ "remaining above retries", "remaining=3\n\n[puk]", "remaining=9\n\n[puk]", "[pin] remaining" },
	{ "unknown management-key algorithm", "algorithm=3DES", "algorithm=DES", "[management-key] algorithm" },
	{ "management key of the wrong size", "key=010203040506070801020304050607080102030405060708", "key=0102", "[management-key] key" },
	{ "a format from the future", "format=1", "format=2", "[card] format" },
};

START_TEST(test_corrupt)
{
	g_autofree char *dir = card_dir();
	g_autofree char *file = g_build_filename(dir, "card.ini", NULL);
	g_autoptr(GError) error = NULL;
	g_autofree char *orig = NULL;

	ck_assert(ccid_piv_store_ensure(dir, NULL, &error));
	ck_assert(g_file_get_contents(file, &orig, NULL, NULL));
	for (size_t i = 0; i < G_N_ELEMENTS(corruptions); i++) {
		g_autoptr(GError) e = NULL;
		g_autofree char *text = NULL;
		struct piv_data *d;

		if (corruptions[i].replace == NULL) {
			text = g_strdup(corruptions[i].with);
		} else {
			g_auto(GStrv) parts = g_strsplit(orig,
				corruptions[i].replace, 2);

			ck_assert_msg(g_strv_length(parts) == 2, "%s: %s not in "
				      "the file", corruptions[i].what,
				      corruptions[i].replace);
			text = g_strjoin(corruptions[i].with, parts[0],
					 parts[1], NULL);
		}
		ck_assert(g_file_set_contents(file, text, -1, NULL));
		d = ccid_piv_store_load(dir, &e);
		ck_assert_msg(d == NULL, "%s: loaded", corruptions[i].what);
		ck_assert_msg(g_error_matches(e, CCID_PIV_STORE_ERROR,
					      CCID_PIV_STORE_ERROR_CORRUPT),
			      "%s: %s", corruptions[i].what, e->message);
		ck_assert_msg(strstr(e->message, file) != NULL &&
			      strstr(e->message, corruptions[i].field) != NULL,
			      "%s: %s", corruptions[i].what, e->message);
	}
	/* A key that is not a key. */
	{
		g_autoptr(GError) e = NULL;
		g_autofree char *text = g_strconcat(orig, "\n[slot 9a]\n"
			"algorithm=RSA2048\norigin=generated\npin-policy=once\n"
			"private-key=AAAA\n", NULL);

		ck_assert(g_file_set_contents(file, text, -1, NULL));
		ck_assert_ptr_null(ccid_piv_store_load(dir, &e));
		ck_assert_msg(strstr(e->message, "[slot 9a] private-key") != NULL,
			      "%s", e->message);
	}
}
END_TEST

START_TEST(test_missing_and_lock)
{
	g_autofree char *dir = card_dir();
	g_autoptr(GError) error = NULL;
	int fd, fd2;

	ck_assert_ptr_null(ccid_piv_store_load(tmp, &error));
	ck_assert(g_error_matches(error, CCID_PIV_STORE_ERROR,
				  CCID_PIV_STORE_ERROR_MISSING));
	ck_assert_ptr_nonnull(strstr(error->message, "piv init"));
	g_clear_error(&error);
	ck_assert(ccid_piv_store_ensure(dir, NULL, &error));
	fd = ccid_piv_store_lock(dir, &error);
	ck_assert_int_ge(fd, 0);
	/* flock locks belong to the open file: a second open conflicts even
	 * in the same process. */
	fd2 = ccid_piv_store_lock(dir, &error);
	ck_assert_int_lt(fd2, 0);
	ck_assert(g_error_matches(error, CCID_PIV_STORE_ERROR,
				  CCID_PIV_STORE_ERROR_LOCKED));
	g_clear_error(&error);
	close(fd);
	fd2 = ccid_piv_store_lock(dir, &error);
	ck_assert_int_ge(fd2, 0);
	close(fd2);
}
END_TEST

/* A store whose directory became read-only: the applet answers 65 81 and
 * keeps the message. */
START_TEST(test_unwritable)
{
	g_autofree char *dir = card_dir();
	g_autoptr(GError) error = NULL;
	g_autoptr(piv_applet) a = NULL;
	guint8 resp[PIV_APPLET_RESP_CAP];
	size_t n;

	if (geteuid() == 0) {
		/* root writes anyway: make the file name a directory. */
		g_autofree char *file = g_build_filename(dir, "card.ini", NULL);

		ck_assert(ccid_piv_store_ensure(dir, NULL, &error));
		a = piv_applet_new(ccid_piv_store_load(dir, &error), save_cb,
				   dir);
		g_unlink(file);
		ck_assert_int_eq(g_mkdir(file, 0700), 0);
		{
			g_autofree char *inner = g_build_filename(file, "x", NULL);

			ck_assert(g_file_set_contents(inner, "x", 1, NULL));
		}
	} else {
		ck_assert(ccid_piv_store_ensure(dir, NULL, &error));
		a = piv_applet_new(ccid_piv_store_load(dir, &error), save_cb,
				   dir);
		ck_assert_int_eq(g_chmod(dir, 0500), 0);
	}
	n = run(a, "00 20 00 80 08 313233343537FFFF", resp);
	ck_assert_uint_eq(sw(resp, n), 0x6581);
	ck_assert_ptr_nonnull(piv_applet_last_save_error(a));
	ck_assert_ptr_nonnull(strstr(piv_applet_last_save_error(a), dir));
	g_chmod(dir, 0700);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("piv-store");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_create_defaults);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_counter_on_disk);
	tcase_add_test(tc, test_killed_during_try);
	tcase_add_test(tc, test_corrupt);
	tcase_add_test(tc, test_missing_and_lock);
	tcase_add_test(tc, test_unwritable);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
