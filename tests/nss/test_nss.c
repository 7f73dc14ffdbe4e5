/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The nss card (libcacard re-emulating a PKCS#11 token) through the real
 * device model, in process, with a real softhsm2 token.
 *
 * main() builds the fixture once: a private SOFTHSM2_CONF (removable
 * slots) with a token holding an RSA-2048 key and its certificate (made by
 * openssl, imported with softhsm2-util and pkcs11-tool), and an NSS
 * database that loads libsofthsm2 (modutil -add).  Check forks every test,
 * so each has its own libcacard.  Missing tools make the suite skip (exit
 * 77), never pass.
 */
#include "itest_common.h"
#include "nss_fixture.h"

#include <agent_cac.h>
#include <ccid_cacard_service.h>
#include <ccid_card_nss.h>
#include <ccid_card_virtual.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#define NO_NSPR_10_SUPPORT
#include <cert.h>
#include <cryptohi.h>
#include <keyhi.h>
#include <secoid.h>


struct nfix {
	struct itest it;
	ccid_card_nss *card;
};

static void free_nss(gpointer p)
{
	ccid_card_nss_free(p);
}

static gboolean nfix_init_db(struct nfix *f, const char *db,
			     guint timeout_ms, GError **error)
{
	struct ccid_card_nss_config cfg = { 0 };
	ccid_slot *slot;

	itest_init(&f->it, 1);
	slot = ccid_dev_get_slot(f->it.dev, 0);
	cfg.nssdb_dir = db;
	cfg.token = TOKEN;
	cfg.apdu_timeout_ms = timeout_ms;
	f->card = ccid_card_nss_new(slot, &cfg, error);
	if (f->card == NULL)
		return FALSE;
	agent_transport_own_card(f->it.t, f->card, free_nss);
	ccid_slot_set_card(slot, ccid_card_nss_ops(), f->card,
			   ccid_card_nss_is_present(f->card));
	ck_assert_uint_eq(itest_configure(&f->it) & 0x03, 0x03);
	return TRUE;
}

static gboolean nfix_init(struct nfix *f, guint timeout_ms, GError **error)
{
	return nfix_init_db(f, hw_db, timeout_ms, error);
}

struct xfer_ctx {
	struct itest *it;
	guint8 slot;
};

static gboolean cac_xfer(void *user, const guint8 *apdu, gsize len,
			 GByteArray *resp, GError **error)
{
	struct xfer_ctx *x = user;

	return agent_host_xfr_apdu(x->it->h, x->slot, apdu, len, resp, NULL,
				   error);
}

static void power_on(struct itest *it, guint8 slot)
{
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GError) error = NULL;

	ck_assert_msg(agent_host_power_on(it->h, slot, atr, &error),
		      "IccPowerOn: %s", error ? error->message : "?");
	ck_assert_uint_eq(atr->len, sizeof(cacard_atr));
	ck_assert_mem_eq(atr->data, cacard_atr, sizeof(cacard_atr));
}

/* CAC VERIFY: the PIN padded with FF to 8 bytes.  Returns the SW, or 0
 * when the XfrBlock itself failed (error set). */
static guint16 verify_pin(struct itest *it, const char *pin, GError **error)
{
	g_autoptr(GByteArray) resp = g_byte_array_new();
	guint8 apdu[13] = { 0x00, 0x20, 0x00, 0x00, 0x08 };
	size_t n = strlen(pin);

	memset(apdu + 5, 0xFF, 8);
	memcpy(apdu + 5, pin, MIN(n, 8));
	if (!agent_host_xfr_apdu(it->h, 0, apdu, sizeof(apdu), resp, NULL,
				 error))
		return 0;
	ck_assert_uint_eq(resp->len, 2);
	return (guint16)(resp->data[0] << 8 | resp->data[1]);
}

static void assert_signature(GBytes *der, const char *msg, GBytes *sig)
{
	SECItem der_item, sig_item;
	CERTCertificate *cert;
	SECKEYPublicKey *pub;

	der_item.type = siDERCertBuffer;
	der_item.data = (unsigned char *)g_bytes_get_data(der, NULL);
	der_item.len = (unsigned)g_bytes_get_size(der);
	cert = CERT_NewTempCertificate(CERT_GetDefaultCertDB(), &der_item,
				       NULL, PR_FALSE, PR_TRUE);
	ck_assert_ptr_nonnull(cert);
	pub = CERT_ExtractPublicKey(cert);
	ck_assert_ptr_nonnull(pub);
	sig_item.type = siBuffer;
	sig_item.data = (unsigned char *)g_bytes_get_data(sig, NULL);
	sig_item.len = (unsigned)g_bytes_get_size(sig);
	ck_assert_int_eq(VFY_VerifyData((const unsigned char *)msg,
					(int)strlen(msg), pub, &sig_item,
					SEC_OID_PKCS1_SHA256_WITH_RSA_ENCRYPTION,
					NULL), SECSuccess);
	ck_assert_int_ne(VFY_VerifyData((const unsigned char *)"x", 1, pub,
					&sig_item,
					SEC_OID_PKCS1_SHA256_WITH_RSA_ENCRYPTION,
					NULL), SECSuccess);
	SECKEY_DestroyPublicKey(pub);
	CERT_DestroyCertificate(cert);
}

/* --- tests ---------------------------------------------------------------- */

START_TEST(test_token_as_cac)
{
	static const char msg[] = "ccid-emu: signed on a softhsm2 token\n";
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) der = NULL;
	g_autoptr(GBytes) sig = NULL;
	struct nfix f;
	struct xfer_ctx x = { &f.it, 0 };
	struct agent_cac cac = { cac_xfer, &x, 0 };
	guint8 block[256];

	ck_assert_msg(nfix_init(&f, 0, &error), "%s",
		      error ? error->message : "?");
	ck_assert(ccid_card_nss_is_present(f.card));
	ck_assert(g_str_has_prefix(ccid_card_nss_get_reader(f.card),
				   "SoftHSM slot ID 0x"));
	power_on(&f.it, 0);
	ck_assert_msg(agent_cac_select(&cac, agent_cac_ccc_aid,
				       sizeof(agent_cac_ccc_aid), &error),
		      "SELECT CCC: %s", error ? error->message : "?");

	/* The guest reads exactly the token's certificate. */
	der = agent_cac_read_cert(&cac, 0, &error);
	ck_assert_msg(der != NULL, "%s", error ? error->message : "?");
	ck_assert(g_bytes_equal(der, token_cert));
	/* One certificate on the token: one PKI applet. */
	{
		g_autoptr(GBytes) none = agent_cac_read_cert(&cac, 1, &error);

		ck_assert_ptr_null(none);
		ck_assert_ptr_nonnull(strstr(error->message, "6A82"));
		g_clear_error(&error);
	}

	/* Before VERIFY the token's key is out of reach. */
	itest_pkcs1_sha256_block(msg, block, sizeof(block));
	sig = agent_cac_sign(&cac, 0, block, sizeof(block), &error);
	ck_assert_ptr_null(sig);
	ck_assert_ptr_nonnull(strstr(error->message, "6985"));
	g_clear_error(&error);

	ck_assert_uint_ne(verify_pin(&f.it, "999999", &error), 0x9000);
	ck_assert_ptr_null(error);
	ck_assert_uint_eq(verify_pin(&f.it, PIN, &error), 0x9000);

	sig = agent_cac_sign(&cac, 0, block, sizeof(block), &error);
	ck_assert_msg(sig != NULL, "sign: %s", error ? error->message : "?");
	ck_assert_uint_eq(g_bytes_get_size(sig), 256);
	assert_signature(der, msg, sig);
	ck_assert(!ccid_card_nss_is_unusable(f.card));
	itest_clear(&f.it);
}
END_TEST

/*
 * Correct-PIN VERIFYs racing libcacard's NSS polling thread (softhsm2 has
 * no C_WaitForSlotEvent, so NSS polls its slots every second).  NSS 3.87
 * can deadlock there: measured with VERIFYs every ~30 ms starting 0.5 s
 * after init, about one process in five hangs for good within 2 s.
 *
 * Each round runs in a forked child (a fresh libcacard) and ends one of two
 * ways: every VERIFY succeeds, or the deadline catches the deadlock -- that
 * VERIFY fails with a hardware error after the deadline, the guest gets
 * NotifySlotChange "card removed", later commands fail at once, and the
 * child exits normally although one of its threads is stuck for good.
 * Anything else (a wrong SW, an early failure, a hang past the bound)
 * fails the test.
 */
#define ROUND_OK        0
#define ROUND_DEADLOCK  3
#define ROUND_FAIL      1
#define REQUIRE(c) do { if (!(c)) { fprintf(stderr, "round: %s:%d: %s\n", \
	__FILE__, __LINE__, #c); _exit(ROUND_FAIL); } } while (0)

static int deadlock_round(guint timeout_ms, guint seconds)
{
	g_autoptr(GError) error = NULL;
	struct nfix f;
	gint64 end;
	guint ok = 0;

	if (!nfix_init(&f, timeout_ms, &error))
		return ROUND_FAIL;
	power_on(&f.it, 0);
	g_usleep(500 * 1000);
	end = g_get_monotonic_time() + (gint64)seconds * G_TIME_SPAN_SECOND;
	while (g_get_monotonic_time() < end) {
		gint64 t0 = g_get_monotonic_time();
		guint16 sw = verify_pin(&f.it, PIN, &error);
		gint64 took = g_get_monotonic_time() - t0;
		g_autoptr(GByteArray) intr = g_byte_array_new();
		g_autoptr(GByteArray) atr = g_byte_array_new();

		if (sw == 0x9000) {
			ok++;
			g_usleep(30 * 1000);
			continue;
		}
		/* The clean failure: a failed XfrBlock at the deadline,
		 * never an early, late or silent one. */
		REQUIRE(error != NULL);
		REQUIRE(took >= (gint64)timeout_ms * 1000 - 50000);
		REQUIRE(took < (gint64)timeout_ms * 1000 + 2000000);
		REQUIRE(ccid_card_nss_is_unusable(f.card));
		REQUIRE(!ccid_card_nss_is_present(f.card));
		fprintf(stderr, "deadlock caught after %u good VERIFYs: "
			"XfrBlock failed after %.2f s (%s)\n", ok,
			(double)took / 1e6, error->message);
		g_clear_error(&error);
		/* NotifySlotChange: slot 0 absent, changed. */
		REQUIRE(agent_host_read_intr(f.it.h, intr, &error));
		REQUIRE(intr->len == 2 && intr->data[0] == 0x50 &&
			intr->data[1] == 0x02);
		/* Later commands fail at once, they do not wait again. */
		t0 = g_get_monotonic_time();
		REQUIRE(!agent_host_power_on(f.it.h, 0, atr, NULL));
		REQUIRE(g_get_monotonic_time() - t0 < 500000);
		/* Freeing must not wait for the stuck thread either. */
		t0 = g_get_monotonic_time();
		itest_clear(&f.it);
		REQUIRE(g_get_monotonic_time() - t0 < 500000);
		return ROUND_DEADLOCK;
	}
	REQUIRE(ok > (guint)seconds * 10);
	REQUIRE(!ccid_card_nss_is_unusable(f.card));
	itest_clear(&f.it);
	return ROUND_OK;
}

START_TEST(test_verify_deadlock_bounded)
{
	const guint rounds = 8, timeout_ms = 1500, seconds = 2;
	guint clean = 0, caught = 0;

	for (guint r = 0; r < rounds && caught == 0; r++) {
		pid_t pid = fork();
		gint64 deadline = g_get_monotonic_time() +
			(seconds + 10) * G_TIME_SPAN_SECOND;
		int status = 0;
		pid_t w;

		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			_exit(deadlock_round(timeout_ms, seconds));
		/* Bounded: a child that outlives its bound has hung.  Its
		 * exit wakes the poll (pidfd), no polling with sleeps. */
		{
			int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			gint64 left = (deadline - g_get_monotonic_time()) / 1000;

			ck_assert_int_ge(pfd, 0);
			if (left > 0)
				(void)poll(&p, 1, (int)left);
			close(pfd);
			w = waitpid(pid, &status, WNOHANG);
		}
		if (w == 0) {
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			ck_abort_msg("round %u hung past %u s", r, seconds + 10);
		}
		ck_assert_msg(WIFEXITED(status), "round %u crashed", r);
		ck_assert_msg(WEXITSTATUS(status) == ROUND_OK ||
			      WEXITSTATUS(status) == ROUND_DEADLOCK,
			      "round %u failed", r);
		if (WEXITSTATUS(status) == ROUND_DEADLOCK)
			caught++;
		else
			clean++;
	}
	fprintf(stderr, "VERIFY race: %u clean round%s, %u deadlock%s caught "
		"cleanly\n", clean, clean == 1 ? "" : "s", caught,
		caught == 1 ? "" : "s");
}
END_TEST

/* Waits up to @ms for NotifySlotChange of slot 0 with bits @want (0x02
 * removed, 0x03 inserted); other interrupt messages fail the test. */
static void wait_slot_change(struct itest *it, guint8 want, guint ms)
{
	gint64 t0 = g_get_monotonic_time();
	gint64 end = t0 + (gint64)ms * 1000;

	agent_host_set_timeout_ms(it->h, 200);
	while (g_get_monotonic_time() < end) {
		g_autoptr(GByteArray) m = g_byte_array_new();

		if (!agent_host_read_intr(it->h, m, NULL))
			continue;
		ck_assert_msg(m->len == 2 && m->data[0] == 0x50 &&
			      m->data[1] == want, "interrupt %u bytes %02X %02X, "
			      "want 50 %02X", m->len, m->data[0],
			      m->len > 1 ? m->data[1] : 0, want);
		fprintf(stderr, "token unplug: NotifySlotChange 50 %02X after "
			"%.2f s\n", want,
			(double)(g_get_monotonic_time() - t0) / 1e6);
		agent_host_set_timeout_ms(it->h, 5000);
		return;
	}
	ck_abort_msg("no NotifySlotChange 50 %02X within %u ms", want, ms);
}

static void set_unplugged(gboolean out)
{
	if (out)
		ck_assert(g_file_set_contents(unplug_file, "", 0, NULL));
	else
		ck_assert_int_eq(g_unlink(unplug_file), 0);
}

/* VERIFY with the right PIN; an NSS deadlock caught by the deadline is
 * named as such. */
static void verify_ok(struct nfix *f)
{
	g_autoptr(GError) error = NULL;
	guint16 sw = verify_pin(&f->it, PIN, &error);

	ck_assert_msg(sw == 0x9000 || !ccid_card_nss_is_unusable(f->card),
		      "VERIFY hit the known NSS deadlock (login vs event "
		      "polling), caught by the deadline: %s",
		      error ? error->message : "?");
	ck_assert_msg(sw == 0x9000, "VERIFY: SW %04X %s", sw,
		      error ? error->message : "");
}

/*
 * Token removal and insertion, through the p11_unplug.c wrapper of
 * softhsm2 (a real softhsm2 token cannot be pulled out): the guest gets
 * NotifySlotChange "removed", cannot power the slot on, then "inserted",
 * and the re-inserted token is a fresh card (logged out: SIGN needs a new
 * VERIFY) that reads and signs as before.  Twice.
 */
START_TEST(test_token_unplug)
{
	static const char msg[] = "ccid-emu: signed after re-insertion\n";
	g_autoptr(GError) error = NULL;
	struct nfix f;
	struct xfer_ctx x = { &f.it, 0 };
	struct agent_cac cac = { cac_xfer, &x, 0 };
	guint8 block[256];

	ck_assert_msg(unplug_db != NULL, "CCID_P11_UNPLUG_LIB is not set "
		      "(meson sets it to the p11-unplug module)");
	ck_assert_msg(nfix_init_db(&f, unplug_db, 0, &error), "%s",
		      error ? error->message : "?");
	ck_assert(ccid_card_nss_is_present(f.card));
	power_on(&f.it, 0);
	verify_ok(&f);
	itest_pkcs1_sha256_block(msg, block, sizeof(block));

	for (guint round = 0; round < 2; round++) {
		g_autoptr(GByteArray) atr = g_byte_array_new();
		g_autoptr(GBytes) der = NULL;
		g_autoptr(GBytes) sig = NULL;
		guint8 icc = 0xFF;

		set_unplugged(TRUE);
		wait_slot_change(&f.it, 0x02, 10000);
		ck_assert(!ccid_card_nss_is_present(f.card));
		ck_assert(!agent_host_power_on(f.it.h, 0, atr, NULL));
		ck_assert(agent_host_get_slot_status(f.it.h, 0, &icc, &error));
		ck_assert_uint_eq(icc & 0x03, 2);   /* no ICC present */

		set_unplugged(FALSE);
		wait_slot_change(&f.it, 0x03, 10000);
		ck_assert(ccid_card_nss_is_present(f.card));
		power_on(&f.it, 0);
		ck_assert_msg(agent_cac_select(&cac, agent_cac_ccc_aid,
					       sizeof(agent_cac_ccc_aid),
					       &error),
			      "SELECT CCC: %s", error ? error->message : "?");
		der = agent_cac_read_cert(&cac, 0, &error);
		ck_assert_msg(der != NULL, "%s", error ? error->message : "?");
		ck_assert(g_bytes_equal(der, token_cert));
		/* A new token: the old login went with the old one. */
		sig = agent_cac_sign(&cac, 0, block, sizeof(block), &error);
		ck_assert_ptr_null(sig);
		ck_assert_ptr_nonnull(strstr(error->message, "6985"));
		g_clear_error(&error);
		verify_ok(&f);
		sig = agent_cac_sign(&cac, 0, block, sizeof(block), &error);
		ck_assert_msg(sig != NULL, "sign: %s",
			      error ? error->message : "?");
		assert_signature(der, msg, sig);
	}
	ck_assert(!ccid_card_nss_is_unusable(f.card));
	itest_clear(&f.it);
}
END_TEST

/* The embedded soft card and a token in one process: one libcacard init
 * with soft= readers and use_hw=removable. */
START_TEST(test_virtual_and_nss_coexist)
{
	static const char *const nicks[] = { "c0", "c1", "c2", NULL };
	struct ccid_cacard_config scfg = { 0 };
	struct ccid_card_virtual_config vcfg = { 0 };
	struct ccid_card_nss_config ncfg = { 0 };
	g_autoptr(GError) error = NULL;
	struct itest it;
	ccid_card_virtual *vcard;
	ccid_card_nss *ncard;
	struct xfer_ctx x0 = { &it, 0 }, x1 = { &it, 1 };
	struct agent_cac cac0 = { cac_xfer, &x0, 0 };
	struct agent_cac cac1 = { cac_xfer, &x1, 0 };
	g_autoptr(GBytes) soft_der = NULL;
	g_autoptr(GBytes) hw_der = NULL;

	scfg.nssdb_dir = soft_db;
	scfg.soft_nicknames = nicks;
	scfg.hw_nssdb_dir = hw_db;
	ck_assert_msg(ccid_cacard_service_prepare(&scfg, &error), "%s",
		      error ? error->message : "?");

	itest_init(&it, 2);
	vcfg.nssdb_dir = soft_db;
	vcfg.cert_nicknames = nicks;
	vcard = ccid_card_virtual_new(ccid_dev_get_slot(it.dev, 0), &vcfg,
				      &error);
	ck_assert_msg(vcard != NULL, "%s", error ? error->message : "?");
	agent_transport_own_card(it.t, vcard,
				 (GDestroyNotify)ccid_card_virtual_free);
	ccid_slot_set_card(ccid_dev_get_slot(it.dev, 0),
			   ccid_card_virtual_ops(), vcard, TRUE);
	ncfg.nssdb_dir = hw_db;
	ncard = ccid_card_nss_new(ccid_dev_get_slot(it.dev, 1), &ncfg, &error);
	ck_assert_msg(ncard != NULL, "%s", error ? error->message : "?");
	agent_transport_own_card(it.t, ncard, free_nss);
	ccid_slot_set_card(ccid_dev_get_slot(it.dev, 1), ccid_card_nss_ops(),
			   ncard, ccid_card_nss_is_present(ncard));
	ck_assert(ccid_card_nss_is_present(ncard));
	ck_assert_uint_eq(itest_configure(&it) & 0x0F, 0x0F);

	power_on(&it, 0);
	power_on(&it, 1);
	soft_der = agent_cac_read_cert(&cac0, 0, &error);
	ck_assert_msg(soft_der != NULL, "%s", error ? error->message : "?");
	hw_der = agent_cac_read_cert(&cac1, 0, &error);
	ck_assert_msg(hw_der != NULL, "%s", error ? error->message : "?");
	ck_assert(g_bytes_equal(hw_der, token_cert));
	ck_assert(!g_bytes_equal(soft_der, token_cert));
	/* The soft card still has its three applets. */
	{
		g_autoptr(GBytes) c2 = agent_cac_read_cert(&cac0, 2, &error);

		ck_assert_msg(c2 != NULL, "%s", error ? error->message : "?");
	}
	itest_clear(&it);
}
END_TEST

/* A process set up for soft cards only cannot add tokens later: a clear
 * error, not a silent card without tokens. */
START_TEST(test_soft_only_refuses_nss)
{
	static const char *const nicks[] = { "c0", "c1", "c2", NULL };
	struct ccid_cacard_config scfg = { 0 };
	struct ccid_card_nss_config ncfg = { 0 };
	g_autoptr(GError) error = NULL;
	struct itest it;

	scfg.nssdb_dir = soft_db;
	scfg.soft_nicknames = nicks;
	ck_assert(ccid_cacard_service_prepare(&scfg, &error));
	itest_init(&it, 1);
	ncfg.nssdb_dir = hw_db;
	ck_assert_ptr_null(ccid_card_nss_new(ccid_dev_get_slot(it.dev, 0),
					     &ncfg, &error));
	ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
				  CCID_CARD_VIRTUAL_ERROR_CONFLICT));
	ck_assert_ptr_nonnull(strstr(error->message, "without hardware "
				     "tokens"));
	itest_clear(&it);
}
END_TEST

START_TEST(test_bad_db_and_token)
{
	g_autofree char *missing = g_build_filename(tmp_root, "nope", NULL);
	struct ccid_card_nss_config ncfg = { 0 };
	g_autoptr(GError) error = NULL;
	struct itest it;

	itest_init(&it, 1);
	/* A missing DB fails before libcacard is initialised ... */
	ncfg.nssdb_dir = missing;
	ck_assert_ptr_null(ccid_card_nss_new(ccid_dev_get_slot(it.dev, 0),
					     &ncfg, &error));
	ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
				  CCID_CARD_VIRTUAL_ERROR_NO_DB));
	ck_assert_ptr_nonnull(strstr(error->message, missing));
	g_clear_error(&error);
	/* ... so the right one still works afterwards; a token that does
	 * not exist is named in the error. */
	ncfg.nssdb_dir = hw_db;
	ncfg.token = "no-such-token";
	ck_assert_ptr_null(ccid_card_nss_new(ccid_dev_get_slot(it.dev, 0),
					     &ncfg, &error));
	ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
				  CCID_CARD_VIRTUAL_ERROR_NO_CERT));
	ck_assert_ptr_nonnull(strstr(error->message, "no-such-token"));
	g_clear_error(&error);
	/* One token reader per card. */
	{
		ccid_card_nss *a, *b;

		ncfg.token = TOKEN;
		a = ccid_card_nss_new(ccid_dev_get_slot(it.dev, 0), &ncfg,
				      &error);
		ck_assert_ptr_nonnull(a);
		b = ccid_card_nss_new(ccid_dev_get_slot(it.dev, 0), &ncfg,
				      &error);
		ck_assert_ptr_null(b);
		ck_assert(g_error_matches(error, CCID_CARD_VIRTUAL_ERROR,
					  CCID_CARD_VIRTUAL_ERROR_BUSY));
		g_clear_error(&error);
		ccid_card_nss_free(a);
		/* Given back: usable again. */
		a = ccid_card_nss_new(ccid_dev_get_slot(it.dev, 0), &ncfg,
				      &error);
		ck_assert_msg(a != NULL, "%s", error ? error->message : "?");
		ccid_card_nss_free(a);
	}
	itest_clear(&it);
}
END_TEST

START_TEST(test_spec_parse)
{
	g_autofree char *db = NULL, *tok = NULL;
	g_autoptr(GError) error = NULL;
	guint ms = 1;

	ck_assert(ccid_card_nss_spec_parse("/x/db", &db, &tok, &ms, &error));
	ck_assert_str_eq(db, "/x/db");
	ck_assert_ptr_null(tok);
	ck_assert_uint_eq(ms, 0);
	g_clear_pointer(&db, g_free);
	ck_assert(ccid_card_nss_spec_parse("/x/db,token=My Token,timeout=2500",
					   &db, &tok, &ms, &error));
	ck_assert_str_eq(tok, "My Token");
	ck_assert_uint_eq(ms, 2500);
	g_clear_pointer(&db, g_free);
	g_clear_pointer(&tok, g_free);

	{
		static const char *const bad[] = {
			"", ",token=a", "/db,token=", "/db,timeout=0",
			"/db,timeout=12x", "/db,timeout=600001", "/db,pin=1",
			"/db,token=a,token=b",
		};

		for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
			ck_assert_msg(!ccid_card_nss_spec_parse(bad[i], &db,
								&tok, &ms,
								&error),
				      "accepted \"%s\"", bad[i]);
			ck_assert(g_error_matches(error, G_OPTION_ERROR,
						  G_OPTION_ERROR_BAD_VALUE));
			g_clear_error(&error);
		}
	}
}
END_TEST

static Suite *nss_suite(void)
{
	Suite *s = suite_create("nss card");
	TCase *tc = tcase_create("softhsm2");

	/* Bounded: up to 8 rounds of at most 12 s in the deadlock test. */
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_spec_parse);
	tcase_add_test(tc, test_token_as_cac);
	tcase_add_test(tc, test_bad_db_and_token);
	tcase_add_test(tc, test_virtual_and_nss_coexist);
	tcase_add_test(tc, test_soft_only_refuses_nss);
	tcase_add_test(tc, test_token_unplug);
	tcase_add_test(tc, test_verify_deadlock_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (!nss_fixture_build())
		return 77;
	sr = srunner_create(nss_suite());
	if (srunner_fork_status(sr) == CK_NOFORK) {
		fprintf(stderr, "these tests need CK_FORK (one libcacard per "
			"test)\n");
		srunner_free(sr);
		return 1;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed == 0)
		nss_fixture_remove();
	return failed == 0 ? 0 : 1;
}
