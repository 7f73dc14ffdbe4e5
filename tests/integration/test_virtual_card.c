/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The virtual CAC card through the real device model, in process.
 *
 * Check runs every test in a forked child, which is what these tests need:
 * libcacard can be initialised once per process, so each test starts with
 * a fresh one.  XDG_DATA_HOME points at a temporary directory set up in
 * main(), so the embedded default database is created there.
 */
#include "itest_common.h"

#include <agent_cac.h>
#include <ccid_card_virtual.h>
#include <ccid_virtual_nssdb.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NO_NSPR_10_SUPPORT
#include <cert.h>
#include <cryptohi.h>
#include <keyhi.h>
#include <pk11pub.h>
#include <secoid.h>

static char *tmp_root;     /* removed by hand, never by the test */

/* libcacard's soft-card ATR (vcard_emul_nss.c via vcard_alloc_atr). */
static const guint8 cacard_atr[] = {
	0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74, 0x65, 0x20,
	0x63, 0x64, 0x31, 0x34, 0x34
};

static const char *const want_subjects[] = {
	"CN=ccid-emu virtual card ID,O=ccid-emu",
	"CN=ccid-emu virtual card signature,O=ccid-emu",
	"CN=ccid-emu virtual card encryption,O=ccid-emu",
};

struct vfix {
	struct itest it;
	ccid_card_virtual *card;     /* owned by the transport */
};

static void free_virtual(gpointer p)
{
	ccid_card_virtual_free(p);
}

/* Device + virtual card on slot 0; returns FALSE with @error if the card
 * could not be created. */
static gboolean vfix_init(struct vfix *f, const struct ccid_card_virtual_config *cfg,
			  GError **error)
{
	ccid_slot *slot;

	itest_init(&f->it, 1);
	slot = ccid_dev_get_slot(f->it.dev, 0);
	f->card = ccid_card_virtual_new(slot, cfg, error);
	if (f->card == NULL)
		return FALSE;
	agent_transport_own_card(f->it.t, f->card, free_virtual);
	ccid_slot_set_card(slot, ccid_card_virtual_ops(), f->card,
			   ccid_card_virtual_is_present(f->card));
	ck_assert_uint_eq(itest_configure(&f->it) & 0x03, 0x03);
	return TRUE;
}

static gboolean cac_xfer(void *user, const guint8 *apdu, gsize len,
			 GByteArray *resp, GError **error)
{
	struct vfix *f = user;

	return agent_host_xfr_apdu(f->it.h, 0, apdu, len, resp, NULL, error);
}

static void power_on(struct vfix *f)
{
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GError) error = NULL;

	ck_assert_msg(agent_host_power_on(f->it.h, 0, atr, &error),
		      "IccPowerOn: %s", error ? error->message : "?");
	ck_assert_uint_eq(atr->len, sizeof(cacard_atr));
	ck_assert_mem_eq(atr->data, cacard_atr, sizeof(cacard_atr));
}

static char *default_db(void)
{
	return ccid_nssdb_default_dir();
}

/* Creates an NSS DB in @dir with @n self-signed certs named cN. */
static void make_db(const char *dir, guint n)
{
	g_autofree char *arg = g_strconcat("sql:", dir, NULL);
	g_autofree char *noise = g_build_filename(dir, "noise", NULL);
	const char *create[] = { "certutil", "-N", "-d", arg,
				 "--empty-password", NULL };

	ck_assert_int_eq(g_mkdir_with_parents(dir, 0700), 0);
	ck_assert_int_eq(itest_run(create, NULL, NULL), 0);
	ck_assert(g_file_set_contents(noise, "0123456789abcdef0123456789", -1,
				      NULL));
	for (guint i = 0; i < n; i++) {
		g_autofree char *nick = g_strdup_printf("c%u", i);
		g_autofree char *subj = g_strdup_printf("CN=test %u", i);
		g_autofree char *serial = g_strdup_printf("%u", 100 + i);
		const char *mk[] = { "certutil", "-S", "-d", arg, "-n", nick,
				     "-s", subj, "-x", "-t", "u,u,u", "-g",
				     "2048", "-m", serial, "-z", noise, NULL };

		ck_assert_int_eq(itest_run(mk, NULL, NULL), 0);
	}
}

/* --- tests --------------------------------------------------------------- */

START_TEST(test_db_created_then_reused)
{
	g_autofree char *xdg = g_build_filename(tmp_root, "xdg-create", NULL);
	g_autofree char *dir = NULL;
	g_autofree char *cert9 = NULL;
	g_autoptr(GError) error = NULL;
	struct vfix f;
	struct stat before, after;
	pid_t pid;
	int status = 0;

	/* A data dir of our own, so this test sees the very first start. */
	g_setenv("XDG_DATA_HOME", xdg, TRUE);
	dir = default_db();
	cert9 = g_build_filename(dir, "cert9.db", NULL);
	ck_assert(!g_file_test(dir, G_FILE_TEST_EXISTS));

	/* First start in a child process of its own (one libcacard each). */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct vfix c;
		gboolean ok = vfix_init(&c, NULL, NULL) &&
			      ccid_card_virtual_created_db(c.card);

		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	ck_assert(g_file_test(cert9, G_FILE_TEST_IS_REGULAR));
	ck_assert_int_eq(stat(dir, &before), 0);
	ck_assert_uint_eq(before.st_mode & 0777, 0700);
	/* No temporary directory or noise file left behind. */
	{
		g_autofree char *parent = g_path_get_dirname(dir);
		g_autoptr(GDir) d = g_dir_open(parent, 0, NULL);
		const char *name;
		guint entries = 0;

		ck_assert_ptr_nonnull(d);
		while ((name = g_dir_read_name(d)) != NULL) {
			ck_assert_str_eq(name, "nssdb");
			entries++;
		}
		ck_assert_uint_eq(entries, 1);
	}
	{
		g_autofree char *noise = g_build_filename(dir, "noise.bin",
							  NULL);

		ck_assert(!g_file_test(noise, G_FILE_TEST_EXISTS));
	}

	ck_assert_int_eq(stat(cert9, &before), 0);
	ck_assert_msg(vfix_init(&f, NULL, &error), "second start: %s",
		      error ? error->message : "?");
	ck_assert(!ccid_card_virtual_created_db(f.card));
	ck_assert_int_eq(stat(cert9, &after), 0);
	ck_assert_uint_eq(before.st_ino, after.st_ino);
	ck_assert_int_eq(before.st_mtime, after.st_mtime);
	power_on(&f);
	itest_clear(&f.it);
}
END_TEST

START_TEST(test_certificates)
{
	g_autoptr(GError) error = NULL;
	struct vfix f;
	struct agent_cac cac = { cac_xfer, &f, 0 };
	const char *const *nicks;

	ck_assert_msg(vfix_init(&f, NULL, &error), "%s",
		      error ? error->message : "?");
	nicks = ccid_card_virtual_get_nicknames(f.card);
	ck_assert_str_eq(nicks[0], CCID_NSSDB_NICK_ID);
	ck_assert_str_eq(nicks[1], CCID_NSSDB_NICK_SIGN);
	ck_assert_str_eq(nicks[2], CCID_NSSDB_NICK_ENC);
	power_on(&f);

	ck_assert_msg(agent_cac_select(&cac, agent_cac_ccc_aid,
				       sizeof(agent_cac_ccc_aid), &error),
		      "SELECT CCC: %s", error ? error->message : "?");
	for (guint i = 0; i < AGENT_CAC_N_PKI; i++) {
		g_autoptr(GBytes) der = agent_cac_read_cert(&cac, i, &error);
		g_autofree char *subject = NULL;
		CERTCertificate *db_cert;

		ck_assert_msg(der != NULL, "cert %u: %s", i,
			      error ? error->message : "?");
		/* The bytes the guest reads are exactly the DB's cert. */
		db_cert = PK11_FindCertFromNickname(nicks[i], NULL);
		ck_assert_ptr_nonnull(db_cert);
		ck_assert_uint_eq(g_bytes_get_size(der), db_cert->derCert.len);
		ck_assert_mem_eq(g_bytes_get_data(der, NULL),
				 db_cert->derCert.data, db_cert->derCert.len);
		CERT_DestroyCertificate(db_cert);
		subject = agent_cert_subject(der, &error);
		ck_assert_ptr_nonnull(subject);
		ck_assert_str_eq(subject, want_subjects[i]);
	}
	/* An applet that does not exist. */
	{
		const guint8 none[7] = { 0xA0, 0, 0, 0, 0x79, 0x01, 0x07 };

		ck_assert(!agent_cac_select(&cac, none, sizeof(none), &error));
		ck_assert(g_error_matches(error, AGENT_CAC_ERROR,
					  AGENT_CAC_ERROR_SW));
		ck_assert_ptr_nonnull(strstr(error->message, "6A82"));
		g_clear_error(&error);
	}
	itest_clear(&f.it);
}
END_TEST

static void openssl_verify(GBytes *der, const char *msg, GBytes *sig)
{
	g_autofree char *ossl = g_find_program_in_path("openssl");
	g_autofree char *d = NULL;
	g_autofree char *certp = NULL, *pubp = NULL, *msgp = NULL, *sigp = NULL;
	g_autofree char *out = NULL, *err = NULL;

	/* openssl is in scripts/deps.txt: without it the cross-check would
	 * prove nothing, so its absence fails the test. */
	ck_assert_msg(ossl != NULL, "openssl not in PATH: install it "
		      "(./bootstrap deps) for the signature cross-check");
	d = g_dir_make_tmp("ccid-sig-XXXXXX", NULL);
	ck_assert_ptr_nonnull(d);
	certp = g_build_filename(d, "cert.der", NULL);
	pubp = g_build_filename(d, "pub.pem", NULL);
	msgp = g_build_filename(d, "msg", NULL);
	sigp = g_build_filename(d, "sig", NULL);
	ck_assert(g_file_set_contents(certp, g_bytes_get_data(der, NULL),
				      (gssize)g_bytes_get_size(der), NULL));
	ck_assert(g_file_set_contents(msgp, msg, -1, NULL));
	ck_assert(g_file_set_contents(sigp, g_bytes_get_data(sig, NULL),
				      (gssize)g_bytes_get_size(sig), NULL));
	{
		const char *x509[] = { ossl, "x509", "-inform", "DER", "-in",
				       certp, "-pubkey", "-noout", "-out", pubp,
				       NULL };
		const char *vfy[] = { ossl, "dgst", "-sha256", "-verify", pubp,
				      "-signature", sigp, msgp, NULL };

		ck_assert_int_eq(itest_run(x509, NULL, NULL), 0);
		ck_assert_int_eq(itest_run(vfy, &out, &err), 0);
		ck_assert_ptr_nonnull(strstr(out, "Verified OK"));
	}
	g_unlink(certp);
	g_unlink(pubp);
	g_unlink(msgp);
	g_unlink(sigp);
	g_rmdir(d);
}

START_TEST(test_signature_verifies)
{
	static const char msg[] = "ccid-emu: signed by the virtual CAC card\n";
	g_autoptr(GError) error = NULL;
	struct vfix f;
	struct agent_cac cac = { cac_xfer, &f, 0 };
	guint8 block[256];

	ck_assert_msg(vfix_init(&f, NULL, &error), "%s",
		      error ? error->message : "?");
	power_on(&f);
	itest_pkcs1_sha256_block(msg, block, sizeof(block));

	for (guint i = 0; i < 2; i++) {     /* ID and signature keys */
		g_autoptr(GBytes) der = agent_cac_read_cert(&cac, i, &error);
		g_autoptr(GBytes) sig = NULL;
		SECItem der_item, sig_item;
		CERTCertificate *cert;
		SECKEYPublicKey *pub;

		ck_assert_msg(der != NULL, "%s", error ? error->message : "?");
		sig = agent_cac_sign(&cac, i, block, sizeof(block), &error);
		ck_assert_msg(sig != NULL, "sign %u: %s", i,
			      error ? error->message : "?");
		ck_assert_uint_eq(g_bytes_get_size(sig), 256);

		der_item.type = siDERCertBuffer;
		der_item.data = (unsigned char *)g_bytes_get_data(der, NULL);
		der_item.len = (unsigned)g_bytes_get_size(der);
		cert = CERT_NewTempCertificate(CERT_GetDefaultCertDB(),
					       &der_item, NULL, PR_FALSE,
					       PR_TRUE);
		ck_assert_ptr_nonnull(cert);
		pub = CERT_ExtractPublicKey(cert);
		ck_assert_ptr_nonnull(pub);
		sig_item.type = siBuffer;
		sig_item.data = (unsigned char *)g_bytes_get_data(sig, NULL);
		sig_item.len = (unsigned)g_bytes_get_size(sig);
		ck_assert_int_eq(VFY_VerifyData((const unsigned char *)msg,
						(int)strlen(msg), pub,
						&sig_item,
						SEC_OID_PKCS1_SHA256_WITH_RSA_ENCRYPTION,
						NULL), SECSuccess);
		/* A different message must not verify. */
		ck_assert_int_ne(VFY_VerifyData((const unsigned char *)"x", 1,
						pub, &sig_item,
						SEC_OID_PKCS1_SHA256_WITH_RSA_ENCRYPTION,
						NULL), SECSuccess);
		SECKEY_DestroyPublicKey(pub);
		CERT_DestroyCertificate(cert);
		openssl_verify(der, msg, sig);
	}
	itest_clear(&f.it);
}
END_TEST

START_TEST(test_bad_db_path)
{
	g_autofree char *missing = g_build_filename(tmp_root, "no-such-db", NULL);
	g_autofree char *empty = g_build_filename(tmp_root, "empty-db", NULL);
	struct ccid_card_virtual_config cfg = { 0 };
	g_autoptr(GError) error = NULL;
	struct itest it;
	struct vfix f;

	itest_init(&it, 1);
	cfg.nssdb_dir = missing;
	ck_assert_ptr_null(ccid_card_virtual_new(ccid_dev_get_slot(it.dev, 0),
						 &cfg, &error));
	ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
				  CCID_CARD_VIRTUAL_ERROR_NO_DB));
	ck_assert_ptr_nonnull(strstr(error->message, missing));
	ck_assert_ptr_nonnull(strstr(error->message, "does not exist"));
	g_clear_error(&error);

	ck_assert_int_eq(g_mkdir_with_parents(empty, 0700), 0);
	cfg.nssdb_dir = empty;
	ck_assert_ptr_null(ccid_card_virtual_new(ccid_dev_get_slot(it.dev, 0),
						 &cfg, &error));
	ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
				  CCID_CARD_VIRTUAL_ERROR_NO_DB));
	ck_assert_ptr_nonnull(strstr(error->message, "cert9.db"));
	g_clear_error(&error);
	itest_clear(&it);

	/* The failures did not use up libcacard's one initialisation. */
	ck_assert_msg(vfix_init(&f, NULL, &error), "%s",
		      error ? error->message : "?");
	power_on(&f);
	itest_clear(&f.it);
}
END_TEST

START_TEST(test_db_contents_errors)
{
	g_autofree char *two = g_build_filename(tmp_root, "two-certs", NULL);
	g_autofree char *three = g_build_filename(tmp_root, "three-certs", NULL);
	struct ccid_card_virtual_config cfg = { 0 };
	const char *missing_nick[] = { "c0", "c1", "nope", NULL };
	const char *comma_nick[] = { "c0", "c1", "a,b", NULL };
	g_autoptr(GError) error = NULL;
	struct itest it;
	ccid_slot *slot;

	if (!g_file_test(two, G_FILE_TEST_EXISTS))
		make_db(two, 2);
	if (!g_file_test(three, G_FILE_TEST_EXISTS))
		make_db(three, 3);
	itest_init(&it, 1);
	slot = ccid_dev_get_slot(it.dev, 0);

	cfg.nssdb_dir = two;
	ck_assert_ptr_null(ccid_card_virtual_new(slot, &cfg, &error));
	ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
				  CCID_CARD_VIRTUAL_ERROR_TOO_FEW_CERTS));
	ck_assert_ptr_nonnull(strstr(error->message, "has 2 certificates"));
	g_clear_error(&error);

	cfg.nssdb_dir = three;
	cfg.cert_nicknames = missing_nick;
	ck_assert_ptr_null(ccid_card_virtual_new(slot, &cfg, &error));
	ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
				  CCID_CARD_VIRTUAL_ERROR_NO_CERT));
	ck_assert_ptr_nonnull(strstr(error->message, "\"nope\""));
	g_clear_error(&error);

	cfg.cert_nicknames = comma_nick;
	ck_assert_ptr_null(ccid_card_virtual_new(slot, &cfg, &error));
	ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
				  CCID_CARD_VIRTUAL_ERROR_BAD_NICKNAME));
	g_clear_error(&error);
	itest_clear(&it);

	/* virtual:DIR without nicknames: the keyed certs in name order. */
	{
		struct vfix f;
		const char *const *nicks;

		cfg.cert_nicknames = NULL;
		ck_assert_msg(vfix_init(&f, &cfg, &error), "%s",
			      error ? error->message : "?");
		nicks = ccid_card_virtual_get_nicknames(f.card);
		ck_assert_str_eq(nicks[0], "c0");
		ck_assert_str_eq(nicks[1], "c1");
		ck_assert_str_eq(nicks[2], "c2");
		power_on(&f);
		itest_clear(&f.it);
	}

	/* libcacard is now bound to that DB: another one is a conflict. */
	{
		struct itest it2;

		itest_init(&it2, 1);
		ck_assert_ptr_null(ccid_card_virtual_new(
			ccid_dev_get_slot(it2.dev, 0), NULL, &error));
		ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
					  CCID_CARD_VIRTUAL_ERROR_CONFLICT));
		ck_assert_ptr_nonnull(strstr(error->message, three));
		g_clear_error(&error);
		itest_clear(&it2);
	}
}
END_TEST

START_TEST(test_certutil_missing)
{
	g_autofree char *xdg = g_build_filename(tmp_root, "xdg-nocertutil", NULL);
	g_autofree char *dir = NULL;
	g_autoptr(GError) error = NULL;
	struct itest it;

	g_setenv("XDG_DATA_HOME", xdg, TRUE);
	g_setenv("PATH", "/nonexistent", TRUE);
	dir = default_db();
	itest_init(&it, 1);
	ck_assert_ptr_null(ccid_card_virtual_new(ccid_dev_get_slot(it.dev, 0),
						 NULL, &error));
	ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
				  CCID_CARD_VIRTUAL_ERROR_NO_CERTUTIL));
	ck_assert_ptr_nonnull(strstr(error->message, "certutil not found"));
	ck_assert(!g_file_test(dir, G_FILE_TEST_EXISTS));
	itest_clear(&it);
}
END_TEST

START_TEST(test_removal_and_insertion)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GByteArray) m = g_byte_array_new();
	g_autoptr(GByteArray) atr = g_byte_array_new();
	struct vfix f;
	guint8 icc = 0xFF;

	ck_assert_msg(vfix_init(&f, NULL, &error), "%s",
		      error ? error->message : "?");
	power_on(&f);

	/* libcacard's event reaches the slot through the main context. */
	ck_assert(ccid_card_virtual_set_inserted(f.card, FALSE, &error));
	ck_assert(agent_host_read_intr(f.it.h, m, &error));
	ck_assert_uint_eq(m->len, 2);
	ck_assert_uint_eq(m->data[0], 0x50);
	ck_assert_uint_eq(m->data[1] & 0x03, CCID_SLOT_BIT_CHANGED);
	ck_assert(!ccid_card_virtual_is_present(f.card));
	ck_assert(agent_host_get_slot_status(f.it.h, 0, &icc, &error));
	ck_assert_uint_eq(icc, CCID_ICC_ABSENT);
	ck_assert(!agent_host_power_on(f.it.h, 0, atr, &error));
	g_clear_error(&error);

	ck_assert(ccid_card_virtual_set_inserted(f.card, TRUE, &error));
	ck_assert(agent_host_read_intr(f.it.h, m, &error));
	ck_assert_uint_eq(m->data[1] & 0x03,
			  CCID_SLOT_BIT_PRESENT | CCID_SLOT_BIT_CHANGED);
	ck_assert(agent_host_get_slot_status(f.it.h, 0, &icc, &error));
	ck_assert_uint_eq(icc, CCID_ICC_PRESENT_INACTIVE);
	power_on(&f);
	itest_clear(&f.it);
}
END_TEST

START_TEST(test_two_slots_independent)
{
	g_autoptr(GError) error = NULL;
	struct itest it;
	g_autoptr(GByteArray) atr = g_byte_array_new();
	const guint8 get_resp[] = { 0x00, 0xC0, 0x00, 0x00, 0x0D };
	const guint8 sel_nole[] = { 0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00,
				    0x00, 0x00, 0x79, 0x01, 0x00 };
	g_autoptr(GByteArray) r1 = NULL;
	g_autoptr(GByteArray) r2 = NULL;
	g_autoptr(GByteArray) r3 = NULL;

	itest_init(&it, 2);
	for (guint i = 0; i < 2; i++) {
		ccid_slot *slot = ccid_dev_get_slot(it.dev, i);
		ccid_card_virtual *c = ccid_card_virtual_new(slot, NULL, &error);

		ck_assert_msg(c != NULL, "%s", error ? error->message : "?");
		agent_transport_own_card(it.t, c, free_virtual);
		ccid_slot_set_card(slot, ccid_card_virtual_ops(), c, TRUE);
	}
	ck_assert_uint_eq(itest_configure(&it) & 0x0F, 0x0F);
	ck_assert(agent_host_power_on(it.h, 0, atr, &error));
	ck_assert(agent_host_power_on(it.h, 1, atr, &error));

	/* A pending GET RESPONSE buffer on slot 0 ... */
	r1 = itest_xfr(&it, 0, sel_nole, sizeof(sel_nole), NULL);
	itest_assert_resp(r1, NULL, 0, 0x610D);
	/* ... is not visible from slot 1's card (own libcacard reader) ... */
	r2 = itest_xfr(&it, 1, get_resp, sizeof(get_resp), NULL);
	itest_assert_resp(r2, NULL, 0, 0x6A88);
	/* ... and still there on slot 0. */
	r3 = itest_xfr(&it, 0, get_resp, sizeof(get_resp), NULL);
	ck_assert_uint_eq(r3->len, 13 + 2);
	ck_assert_uint_eq(r3->data[0], 0x6F);
	ck_assert_uint_eq(r3->data[13], 0x90);
	itest_clear(&it);
}
END_TEST

static Suite *virtual_suite(void)
{
	Suite *s = suite_create("virtual card");
	TCase *tc = tcase_create("libcacard + device model");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_db_created_then_reused);
	tcase_add_test(tc, test_certificates);
	tcase_add_test(tc, test_signature_verifies);
	tcase_add_test(tc, test_bad_db_path);
	tcase_add_test(tc, test_db_contents_errors);
	tcase_add_test(tc, test_certutil_missing);
	tcase_add_test(tc, test_removal_and_insertion);
	tcase_add_test(tc, test_two_slots_independent);
	suite_add_tcase(s, tc);
	return s;
}

static void remove_tree(const char *path)
{
	g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
	const char *name;

	if (d != NULL) {
		while ((name = g_dir_read_name(d)) != NULL) {
			g_autofree char *p = g_build_filename(path, name, NULL);

			if (g_file_test(p, G_FILE_TEST_IS_DIR) &&
			    !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
				remove_tree(p);
			else
				g_unlink(p);
		}
	}
	g_rmdir(path);
}

int main(void)
{
	g_autofree char *xdg = NULL;
	SRunner *sr;
	int failed;

	tmp_root = g_dir_make_tmp("ccid-itest-XXXXXX", NULL);
	if (tmp_root == NULL)
		return 1;
	/* Every test's default database lives under here; the parent never
	 * asks GLib for the data dir, so each forked test reads this. */
	xdg = g_build_filename(tmp_root, "xdg", NULL);
	g_setenv("XDG_DATA_HOME", xdg, TRUE);

	sr = srunner_create(virtual_suite());
	if (srunner_fork_status(sr) == CK_NOFORK) {
		fprintf(stderr, "these tests need CK_FORK (one libcacard per "
			"test)\n");
		srunner_free(sr);
		remove_tree(tmp_root);
		return 77;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tree(tmp_root);
	g_free(tmp_root);
	return failed == 0 ? 0 : 1;
}
