/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The softhsm2 token and NSS databases of the nss card tests (see
 * nss_fixture.h).
 */
#include "nss_fixture.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

char *tmp_root;
char *hw_db;
char *soft_db;
GBytes *token_cert;
char *unplug_db;
char *unplug_file;

const guint8 cacard_atr[CACARD_ATR_LEN] = {
	0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74, 0x65, 0x20,
	0x63, 0x64, 0x31, 0x34, 0x34
};

/* Fixture commands run outside any test, so no ck_assert here. */
static gboolean run_ok(const char *const *argv)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *out = NULL, *err = NULL;
	int st = -1;

	if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
			  NULL, NULL, &out, &err, &st, &error)) {
		fprintf(stderr, "cannot run %s: %s\n", argv[0], error->message);
		return FALSE;
	}
	if (!g_spawn_check_wait_status(st, &error)) {
		fprintf(stderr, "%s failed (%s): %s%s\n", argv[0],
			error->message, out, err);
		return FALSE;
	}
	return TRUE;
}

static const char *softhsm_module(void)
{
	static const char *const paths[] = {
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(paths); i++)
		if (g_file_test(paths[i], G_FILE_TEST_EXISTS))
			return paths[i];
	return NULL;
}

/* The same token behind the p11_unplug.c wrapper, which reads its
 * settings from the environment when NSS loads it. */
static gboolean build_unplug_db(const char *softhsm)
{
	const char *lib = g_getenv("CCID_P11_UNPLUG_LIB");
	g_autofree char *arg = NULL;

	if (lib == NULL || lib[0] == '\0')
		return TRUE;
	if (!g_file_test(lib, G_FILE_TEST_EXISTS)) {
		fprintf(stderr, "CCID_P11_UNPLUG_LIB: no file %s\n", lib);
		return FALSE;
	}
	unplug_db = g_build_filename(tmp_root, "unplugdb", NULL);
	unplug_file = g_build_filename(tmp_root, "token-unplugged", NULL);
	arg = g_strconcat("sql:", unplug_db, NULL);
	g_mkdir_with_parents(unplug_db, 0700);
	g_setenv("CCID_P11_UNPLUG_MODULE", softhsm, TRUE);
	g_setenv("CCID_P11_UNPLUG_FILE", unplug_file, TRUE);
	{
		const char *mk[] = { "certutil", "-N", "-d", arg,
				     "--empty-password", NULL };
		const char *add[] = { "modutil", "-dbdir", arg, "-add",
				      "softhsm-unplug", "-libfile", lib,
				      "-force", NULL };

		return run_ok(mk) && run_ok(add);
	}
}

static gboolean build_in_tmp_root(void)
{
	const char *mod = softhsm_module();
	g_autofree char *conf = NULL;
	g_autofree char *tokdir = g_build_filename(tmp_root, "tokens", NULL);
	g_autofree char *key = g_build_filename(tmp_root, "key.pem", NULL);
	g_autofree char *key8 = g_build_filename(tmp_root, "key8.pem", NULL);
	g_autofree char *cert = g_build_filename(tmp_root, "cert.pem", NULL);
	g_autofree char *der = g_build_filename(tmp_root, "cert.der", NULL);
	g_autofree char *conftext = NULL;
	g_autofree char *hwarg = NULL, *softarg = NULL, *noise = NULL;
	char *data = NULL;
	gsize len = 0;

	conf = g_build_filename(tmp_root, "softhsm2.conf", NULL);
	if (mod == NULL || g_find_program_in_path("softhsm2-util") == NULL ||
	    g_find_program_in_path("pkcs11-tool") == NULL ||
	    g_find_program_in_path("modutil") == NULL ||
	    g_find_program_in_path("certutil") == NULL ||
	    g_find_program_in_path("openssl") == NULL) {
		fprintf(stderr, "needs softhsm2, opensc (pkcs11-tool), "
			"libnss3-tools and openssl: skipped\n");
		return FALSE;
	}
	g_mkdir_with_parents(tokdir, 0700);
	conftext = g_strdup_printf("directories.tokendir = %s\n"
				   "objectstore.backend = file\n"
				   "log.level = ERROR\n"
				   /* libcacard mirrors removable slots only */
				   "slots.removable = true\n", tokdir);
	if (!g_file_set_contents(conf, conftext, -1, NULL))
		return FALSE;
	g_setenv("SOFTHSM2_CONF", conf, TRUE);

	hw_db = g_build_filename(tmp_root, "hwdb", NULL);
	soft_db = g_build_filename(tmp_root, "softdb", NULL);
	hwarg = g_strconcat("sql:", hw_db, NULL);
	softarg = g_strconcat("sql:", soft_db, NULL);
	noise = g_build_filename(tmp_root, "noise", NULL);
	g_mkdir_with_parents(hw_db, 0700);
	g_mkdir_with_parents(soft_db, 0700);
	g_file_set_contents(noise, "0123456789abcdef0123456789abcdef", -1,
			    NULL);
	{
		const char *init[] = { "softhsm2-util", "--init-token", "--free",
				       "--label", TOKEN, "--pin", PIN,
				       "--so-pin", "12345678", NULL };
		const char *req[] = { "openssl", "req", "-x509", "-newkey",
				      "rsa:2048", "-nodes", "-keyout", key,
				      "-out", cert, "-subj",
				      "/CN=ccid-emu nss test/O=ccid-emu",
				      "-days", "30", NULL };
		const char *p8[] = { "openssl", "pkcs8", "-topk8", "-nocrypt",
				     "-in", key, "-out", key8, NULL };
		const char *x2d[] = { "openssl", "x509", "-in", cert,
				      "-outform", "der", "-out", der, NULL };
		const char *imp[] = { "softhsm2-util", "--import", key8,
				      "--token", TOKEN, "--label", "key",
				      "--id", "01", "--pin", PIN, NULL };
		const char *wcert[] = { "pkcs11-tool", "--module", mod,
					"--token-label", TOKEN, "--login",
					"--pin", PIN, "--write-object", der,
					"--type", "cert", "--id", "01",
					"--label", "cert", NULL };
		const char *hwn[] = { "certutil", "-N", "-d", hwarg,
				      "--empty-password", NULL };
		const char *add[] = { "modutil", "-dbdir", hwarg, "-add",
				      "softhsm", "-libfile", mod, "-force",
				      NULL };
		const char *swn[] = { "certutil", "-N", "-d", softarg,
				      "--empty-password", NULL };

		if (!run_ok(init) || !run_ok(req) || !run_ok(p8) ||
		    !run_ok(x2d) || !run_ok(imp) || !run_ok(wcert) ||
		    !run_ok(hwn) || !run_ok(add) || !run_ok(swn))
			return FALSE;
	}
	for (guint i = 0; i < 3; i++) {
		g_autofree char *nick = g_strdup_printf("c%u", i);
		g_autofree char *subj = g_strdup_printf("CN=soft %u", i);
		g_autofree char *serial = g_strdup_printf("%u", 200 + i);
		const char *mk[] = { "certutil", "-S", "-d", softarg, "-n", nick,
				     "-s", subj, "-x", "-t", "u,u,u", "-g",
				     "2048", "-m", serial, "-z", noise, NULL };

		if (!run_ok(mk))
			return FALSE;
	}
	if (!build_unplug_db(mod))
		return FALSE;
	if (!g_file_get_contents(der, &data, &len, NULL))
		return FALSE;
	token_cert = g_bytes_new_take(data, len);
	return TRUE;
}

gboolean nss_fixture_build(void)
{
	tmp_root = g_dir_make_tmp("ccid-nss-XXXXXX", NULL);
	return tmp_root != NULL && build_in_tmp_root();
}

void nss_fixture_remove(void)
{
	const char *rm[] = { "rm", "-rf", tmp_root, NULL };

	(void)run_ok(rm);
}
