/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pcsc card backend against real peers: a private pcscd with the vpcd
 * driver and the vicc test card (pcsc_fixture.h), the device model in
 * process driven by the agent's miniature host driver (the "guest"), and
 * direct PC/SC calls standing for the host's own applications.
 *
 * Everything runs in one process (CK_NOFORK): libpcsclite reads its socket
 * path once per process, and the peers are started once.  Run one case
 * with CK_RUN_CASE=NAME (e.g. CK_RUN_CASE=latency for the benchmark).
 */
#include "pcsc_fixture.h"

#include <agent_host.h>
#include <agent_transport.h>
#include <ccid_card_pcsc.h>
#include <check.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- one guest: device + pcsc card + host driver on a context ---------------- */

struct guest {
	GMainContext *ctx;
	agent_transport *t;
	agent_host *h;
	ccid_dev *dev;
	ccid_card_pcsc *card;    /* owned by the transport's card set */
};

static void free_pcsc(gpointer p)
{
	ccid_card_pcsc_free(p);
}

/* Builds the guest; FALSE with @error on failure (no assertions: also
 * used from threads, where Check must not be called). */
static gboolean guest_try_init(struct guest *g, GMainContext *ctx,
			       const struct ccid_card_pcsc_config *pcfg_in,
			       GError **error)
{
	struct ccid_card_pcsc_config pcfg;
	struct ccid_config cfg;
	g_autoptr(GByteArray) m = g_byte_array_new();
	ccid_slot *slot;

	memset(g, 0, sizeof(*g));
	g->ctx = ctx;
	ccid_config_init(&cfg);
	g->t = agent_transport_new(ctx, FALSE);
	g->dev = agent_transport_create_dev(g->t, &cfg, error);
	if (g->dev == NULL)
		return FALSE;
	g->h = agent_host_new(g->t);
	agent_host_set_timeout_ms(g->h, 15000);
	if (pcfg_in != NULL) {
		pcfg = *pcfg_in;
	} else {
		ccid_card_pcsc_config_init(&pcfg);
		pcfg.reader = VICC_READER;
	}
	pcfg.context = ctx;
	slot = ccid_dev_get_slot(g->dev, 0);
	g->card = ccid_card_pcsc_new(slot, &pcfg, error);
	if (g->card == NULL)
		return FALSE;
	agent_transport_own_card(g->t, g->card, free_pcsc);
	ccid_slot_set_card(slot, ccid_card_pcsc_ops(), g->card,
			   ccid_card_pcsc_is_present(g->card));
	if (!agent_host_set_configuration(g->h, 1, error) ||
	    !agent_host_read_intr(g->h, m, error))
		return FALSE;
	if (m->len < 2 || m->data[0] != CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE ||
	    m->data[1] != (CCID_SLOT_BIT_PRESENT | CCID_SLOT_BIT_CHANGED)) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
			    "first NotifySlotChange is not 'present, changed'");
		return FALSE;
	}
	return TRUE;
}

static void guest_clear(struct guest *g)
{
	agent_host_free(g->h);
	agent_transport_free(g->t);
	memset(g, 0, sizeof(*g));
}

static void guest_init(struct guest *g, const struct ccid_card_pcsc_config *c)
{
	g_autoptr(GError) error = NULL;

	ck_assert_msg(guest_try_init(g, NULL, c, &error), "guest: %s",
		      error ? error->message : "?");
}

static GByteArray *guest_power_on(struct guest *g)
{
	GByteArray *atr = g_byte_array_new();
	g_autoptr(GError) error = NULL;

	ck_assert_msg(agent_host_power_on(g->h, 0, atr, &error),
		      "IccPowerOn: %s", error ? error->message : "?");
	return atr;
}

static GByteArray *guest_xfr(struct guest *g, const guint8 *apdu, gsize len)
{
	GByteArray *r = g_byte_array_new();
	g_autoptr(GError) error = NULL;

	ck_assert_msg(agent_host_xfr_apdu(g->h, 0, apdu, len, r, NULL, &error),
		      "XfrBlock: %s", error ? error->message : "?");
	return r;
}

/* One XfrBlock whose answer may be a failure; returns the final reply. */
static void guest_xfr_raw(struct guest *g, const guint8 *apdu, gsize len,
			  struct agent_reply *reply, guint *n_te, gint64 *us)
{
	static const guint8 spec[3] = { 0, 0, 0 };
	g_autoptr(GError) error = NULL;
	gint64 t0 = g_get_monotonic_time();

	ck_assert_msg(agent_host_command(g->h, CCID_PC_TO_RDR_XFR_BLOCK, 0, spec,
					 apdu, (guint32)len, reply, n_te,
					 &error),
		      "XfrBlock: %s", error ? error->message : "?");
	if (us != NULL)
		*us = g_get_monotonic_time() - t0;
}

static guint8 guest_slot_status(struct guest *g)
{
	g_autoptr(GError) error = NULL;
	guint8 icc = 0xFF;

	ck_assert_msg(agent_host_get_slot_status(g->h, 0, &icc, &error),
		      "GetSlotStatus: %s", error ? error->message : "?");
	return icc;
}

/* The slot bits of the next NotifySlotChange. */
static guint8 guest_notify(struct guest *g)
{
	g_autoptr(GByteArray) m = g_byte_array_new();
	g_autoptr(GError) error = NULL;

	ck_assert_msg(agent_host_read_intr(g->h, m, &error),
		      "NotifySlotChange: %s", error ? error->message : "?");
	ck_assert_uint_ge(m->len, 2);
	ck_assert_uint_eq(m->data[0], CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE);
	return m->data[1] & 0x03;
}

static void expect_small_file(const GByteArray *r, guint16 fid)
{
	ck_assert_uint_eq(r->len, VICC_SMALL_LEN + 2);
	for (guint i = 0; i < VICC_SMALL_LEN; i++)
		ck_assert_uint_eq(r->data[i], vicc_small_byte(fid, i));
	ck_assert_uint_eq(r->data[VICC_SMALL_LEN], 0x90);
	ck_assert_uint_eq(r->data[VICC_SMALL_LEN + 1], 0x00);
}

static void expect_sw(const GByteArray *r, guint16 sw)
{
	ck_assert_uint_ge(r->len, 2);
	ck_assert_uint_eq(r->data[r->len - 2], sw >> 8);
	ck_assert_uint_eq(r->data[r->len - 1], sw & 0xFF);
}

static void host_ready(pcsc_host *h)
{
	pcsc_host_init(h);
	if (!pcsc_vicc_running())
		ck_assert(pcsc_vicc_start());
	ck_assert_msg(pcsc_host_wait_card(h, TRUE, 10000),
		      "the vicc card did not show up in " VICC_READER);
}

/* Lets pending sources (stale messages of freed cards) run. */
static void drain(void)
{
	while (g_main_context_iteration(NULL, FALSE))
		;
}

/* --- configuration ----------------------------------------------------------- */

START_TEST(test_spec_parse)
{
	struct ccid_card_pcsc_config cfg;
	g_autoptr(GError) error = NULL;
	char *reader = NULL;

	ccid_card_pcsc_config_init(&cfg);
	ck_assert(ccid_card_pcsc_spec_parse("Virtual PCD 00 00", &reader, &cfg,
					    &error));
	ck_assert_str_eq(reader, "Virtual PCD 00 00");
	ck_assert_uint_eq(cfg.idle_ms, CCID_CARD_PCSC_DEFAULT_IDLE_MS);
	ck_assert_uint_eq(cfg.lock_timeout_ms,
			  CCID_CARD_PCSC_DEFAULT_LOCK_TIMEOUT_MS);
	g_free(reader);

	ck_assert(ccid_card_pcsc_spec_parse("Foo, Inc. Reader,idle=50,"
					    "lock_timeout=3s", &reader, &cfg,
					    &error));
	ck_assert_str_eq(reader, "Foo, Inc. Reader");
	ck_assert_uint_eq(cfg.idle_ms, 50);
	ck_assert_uint_eq(cfg.lock_timeout_ms, 3000);
	g_free(reader);

	ck_assert(ccid_card_pcsc_spec_parse("idle=0ms", &reader, &cfg, &error));
	ck_assert_str_eq(reader, "");
	ck_assert_uint_eq(cfg.idle_ms, 0);
	g_free(reader);

	ck_assert(ccid_card_pcsc_spec_parse("", &reader, &cfg, &error));
	ck_assert_str_eq(reader, "");
	g_free(reader);

	ck_assert(!ccid_card_pcsc_spec_parse("R,idle=fast", &reader, &cfg,
					     &error));
	ck_assert_ptr_null(reader);
	ck_assert(g_error_matches(error, CCID_CARD_PCSC_ERROR,
				  CCID_CARD_PCSC_ERROR_SPEC));
	ck_assert_msg(strstr(error->message, "idle=fast") != NULL, "%s",
		      error->message);
	g_clear_error(&error);
	ck_assert(!ccid_card_pcsc_spec_parse("R,idel=5", &reader, &cfg,
					     &error));
	ck_assert_msg(strstr(error->message, "unknown pcsc option 'idel'"),
		      "%s", error->message);
	g_clear_error(&error);
	ck_assert(!ccid_card_pcsc_spec_parse("R,lock_timeout=0", &reader,
					     &cfg, &error));
	g_clear_error(&error);
	ck_assert(!ccid_card_pcsc_spec_parse("R,idle=1,idle=2", &reader, &cfg,
					     &error));
	g_clear_error(&error);
	ck_assert(!ccid_card_pcsc_spec_parse("R,idle=3601s", &reader, &cfg,
					     &error));
	g_clear_error(&error);
}
END_TEST

START_TEST(test_reader_choice)
{
	struct ccid_card_pcsc_config cfg;
	struct ccid_config dcfg;
	g_autoptr(GError) error = NULL;
	agent_transport *t = agent_transport_new(NULL, FALSE);
	ccid_slot *slot;
	ccid_card_pcsc *card;

	ccid_config_init(&dcfg);
	ck_assert_ptr_nonnull(agent_transport_create_dev(t, &dcfg, &error));
	slot = ccid_dev_get_slot(agent_transport_get_dev(t), 0);
	ccid_card_pcsc_config_init(&cfg);

	cfg.reader = "Virtual";
	card = ccid_card_pcsc_new(slot, &cfg, &error);
	ck_assert_ptr_null(card);
	ck_assert(g_error_matches(error, CCID_CARD_PCSC_ERROR,
				  CCID_CARD_PCSC_ERROR_AMBIGUOUS));
	ck_assert_str_eq(error->message, "'Virtual' matches several PC/SC "
			 "readers: 'Virtual PCD 00 00', 'Virtual PCD 00 01'; "
			 "give the full name or a longer part of it");
	g_clear_error(&error);

	/* No name: fine with one reader, not with two. */
	cfg.reader = "";
	card = ccid_card_pcsc_new(slot, &cfg, &error);
	ck_assert_ptr_null(card);
	ck_assert(g_error_matches(error, CCID_CARD_PCSC_ERROR,
				  CCID_CARD_PCSC_ERROR_AMBIGUOUS));
	ck_assert_str_eq(error->message, "pcscd has several readers, name one "
			 "with pcsc:READER (readers: 'Virtual PCD 00 00', "
			 "'Virtual PCD 00 01')");
	g_clear_error(&error);

	cfg.reader = "Nope";
	card = ccid_card_pcsc_new(slot, &cfg, &error);
	ck_assert_ptr_null(card);
	ck_assert(g_error_matches(error, CCID_CARD_PCSC_ERROR,
				  CCID_CARD_PCSC_ERROR_NO_READER));
	ck_assert_str_eq(error->message, "no PC/SC reader matches 'Nope' "
			 "(readers: 'Virtual PCD 00 00', 'Virtual PCD 00 01')");
	g_clear_error(&error);

	/* A unique substring; that reader has no card. */
	cfg.reader = "PCD 00 01";
	card = ccid_card_pcsc_new(slot, &cfg, &error);
	ck_assert_msg(card != NULL, "%s", error ? error->message : "?");
	ck_assert_str_eq(ccid_card_pcsc_get_reader(card), VICC_EMPTY_READER);
	ck_assert(!ccid_card_pcsc_is_present(card));
	ccid_card_pcsc_free(card);

	/* The exact name. */
	cfg.reader = VICC_READER;
	card = ccid_card_pcsc_new(slot, &cfg, &error);
	ck_assert_msg(card != NULL, "%s", error ? error->message : "?");
	ck_assert_str_eq(ccid_card_pcsc_get_reader(card), VICC_READER);
	ccid_card_pcsc_free(card);

	agent_transport_free(t);
	drain();
}
END_TEST

/* --- the card as the guest sees it ------------------------------------------- */

START_TEST(test_atr_and_files)
{
	g_autoptr(GByteArray) host_atr = NULL;
	g_autoptr(GByteArray) atr = NULL;
	g_autoptr(GByteArray) hr = g_byte_array_new();
	pcsc_host host;
	struct guest g;
	guint8 a[16];
	gsize n;

	host_ready(&host);
	host_atr = pcsc_host_atr(&host);
	guest_init(&g, NULL);
	ck_assert_uint_eq(guest_slot_status(&g), CCID_ICC_PRESENT_INACTIVE);
	atr = guest_power_on(&g);
	ck_assert_uint_eq(atr->len, host_atr->len);
	ck_assert_mem_eq(atr->data, host_atr->data, atr->len);
	/* vicc's ISO 7816 OS with extended length: T=1, TA1 13. */
	ck_assert_uint_eq(atr->data[0], 0x3B);

	ck_assert_int_eq(pcsc_host_connect(&host, SCARD_SHARE_SHARED),
			 SCARD_S_SUCCESS);
	for (guint i = 0; i < G_N_ELEMENTS(vicc_small_fids); i++) {
		guint16 fid = vicc_small_fids[i];
		g_autoptr(GByteArray) sel = NULL;
		g_autoptr(GByteArray) rd = NULL;

		/* The guest first, then the host application, each with
		 * its own SELECT: the answers must be byte-identical. */
		n = apdu_select(a, fid);
		sel = guest_xfr(&g, a, n);
		expect_sw(sel, 0x9000);
		ck_assert_uint_eq(sel->len, 2);
		n = apdu_read(a, 0, VICC_SMALL_LEN);
		rd = guest_xfr(&g, a, n);
		expect_small_file(rd, fid);

		n = apdu_select(a, fid);
		ck_assert_int_eq(pcsc_host_xfr(&host, a, n, hr),
				 SCARD_S_SUCCESS);
		ck_assert_uint_eq(hr->len, sel->len);
		ck_assert_mem_eq(hr->data, sel->data, sel->len);
		n = apdu_read(a, 0, VICC_SMALL_LEN);
		ck_assert_int_eq(pcsc_host_xfr(&host, a, n, hr),
				 SCARD_S_SUCCESS);
		ck_assert_uint_eq(hr->len, rd->len);
		ck_assert_mem_eq(hr->data, rd->data, rd->len);
	}
	/* An error status passes through as well: file not found. */
	{
		g_autoptr(GByteArray) r = NULL;

		n = apdu_select(a, 0x7777);
		r = guest_xfr(&g, a, n);
		ck_assert_int_eq(pcsc_host_xfr(&host, a, n, hr),
				 SCARD_S_SUCCESS);
		ck_assert_uint_eq(r->len, 2);
		ck_assert_uint_eq(hr->len, 2);
		ck_assert_mem_eq(r->data, hr->data, 2);
		ck_assert_uint_eq(r->data[0], 0x6A);
	}
	{
		guint8 icc = 0xFF;
		g_autoptr(GError) error = NULL;

		ck_assert(agent_host_power_off(g.h, 0, &icc, &error));
		ck_assert_uint_eq(icc, CCID_ICC_PRESENT_INACTIVE);
	}
	guest_clear(&g);
	pcsc_host_clear(&host);
	drain();
}
END_TEST

START_TEST(test_extended)
{
	g_autoptr(GByteArray) atr = NULL;
	g_autoptr(GByteArray) hr = g_byte_array_new();
	g_autofree guint8 *echo = g_malloc(7 + 60000);
	pcsc_host host;
	struct guest g;
	guint8 a[16];
	gsize n;

	host_ready(&host);
	guest_init(&g, NULL);
	atr = guest_power_on(&g);

	/* PATTERN: the largest response vpcd can carry. */
	{
		const guint8 pat[] = { 0x80, 0x12, 0x00, 0x00, 0x00,
				       VICC_BIG_LEN >> 8, VICC_BIG_LEN & 0xFF };
		g_autoptr(GByteArray) r = guest_xfr(&g, pat, sizeof(pat));

		ck_assert_uint_eq(r->len, VICC_BIG_LEN + 2);
		for (guint i = 0; i < VICC_BIG_LEN; i++)
			ck_assert_uint_eq(r->data[i], vicc_pattern_byte(i));
		expect_sw(r, 0x9000);
	}
	/* READ BINARY with an extended Le of the 65533-byte file, compared
	 * with what a host application reads. */
	{
		g_autoptr(GByteArray) r = NULL;

		n = apdu_select(a, VICC_BIG_FID);
		g_byte_array_unref(guest_xfr(&g, a, n));
		n = apdu_read(a, 0, VICC_BIG_LEN);
		r = guest_xfr(&g, a, n);
		ck_assert_uint_eq(r->len, VICC_BIG_LEN + 2);
		for (guint i = 0; i < VICC_BIG_LEN; i++)
			ck_assert_uint_eq(r->data[i], vicc_pattern_byte(i));
		expect_sw(r, 0x9000);

		ck_assert_int_eq(pcsc_host_connect(&host, SCARD_SHARE_SHARED),
				 SCARD_S_SUCCESS);
		n = apdu_select(a, VICC_BIG_FID);
		ck_assert_int_eq(pcsc_host_xfr(&host, a, n, hr),
				 SCARD_S_SUCCESS);
		n = apdu_read(a, 0, VICC_BIG_LEN);
		ck_assert_int_eq(pcsc_host_xfr(&host, a, n, hr),
				 SCARD_S_SUCCESS);
		ck_assert_uint_eq(hr->len, r->len);
		ck_assert_mem_eq(hr->data, r->data, r->len);
	}
	/* An extended command: ECHO of 60000 bytes. */
	{
		g_autoptr(GByteArray) r = NULL;

		echo[0] = 0x80;
		echo[1] = 0x14;
		echo[2] = echo[3] = 0;
		echo[4] = 0;
		echo[5] = 60000 >> 8;
		echo[6] = 60000 & 0xFF;
		for (guint i = 0; i < 60000; i++)
			echo[7 + i] = (guint8)(i * 13 + (i >> 9));
		r = guest_xfr(&g, echo, 7 + 60000);
		ck_assert_uint_eq(r->len, 60002);
		ck_assert_mem_eq(r->data, echo + 7, 60000);
		expect_sw(r, 0x9000);
	}
	guest_clear(&g);
	pcsc_host_clear(&host);
	drain();
}
END_TEST

/* --- other applications ------------------------------------------------------- */

START_TEST(test_exclusive_then_free)
{
	struct ccid_card_pcsc_config cfg;
	struct ccid_card_pcsc_stats stats;
	g_auto(agent_reply) reply = { 0 };
	g_autoptr(GByteArray) atr = NULL;
	pcsc_host host, other;
	struct guest g;
	guint32 c0, c1, c2;
	guint n_te = 0;
	gint64 us = 0;
	guint8 a[16];
	gsize n;

	host_ready(&host);
	pcsc_host_init(&other);
	ccid_card_pcsc_config_init(&cfg);
	cfg.reader = VICC_READER;
	cfg.lock_timeout_ms = 2000;
	guest_init(&g, &cfg);

	/* A host application takes the card exclusively.  The guest's
	 * power-on still works (ATR, no card access)... */
	ck_assert_int_eq(pcsc_host_connect(&host, SCARD_SHARE_EXCLUSIVE),
			 SCARD_S_SUCCESS);
	c0 = pcsc_host_count(&host);
	atr = guest_power_on(&g);
	ck_assert_uint_ge(atr->len, 2);

	/* ...but its APDU waits, kept alive by time extensions, and fails
	 * cleanly after lock_timeout. */
	n = apdu_select(a, 0x1001);
	guest_xfr_raw(&g, a, n, &reply, &n_te, &us);
	ck_assert_uint_eq(reply.type, CCID_RDR_TO_PC_DATA_BLOCK);
	ck_assert_uint_eq(reply.status >> CCID_CMD_STATUS_SHIFT,
			  CCID_CMD_FAILED);
	ck_assert_uint_eq(reply.status & CCID_ICC_STATUS_MASK,
			  CCID_ICC_PRESENT_ACTIVE);
	ck_assert_uint_eq(reply.error, CCID_ERR_HW_ERROR);
	ck_assert_msg(us >= 2000 * 1000 && us < 3500 * 1000,
		      "failed after %" G_GINT64_FORMAT " us, want ~2 s", us);
	ck_assert_msg(n_te >= 3, "%u time extensions, want >= 3", n_te);
	printf("exclusive: guest APDU failed after %.0f ms with %u time "
	       "extensions\n", us / 1000.0, n_te);

	/* The APDU never reached the card, even once the card is free. */
	c1 = pcsc_host_count(&host);
	ck_assert_uint_eq(c1, c0 + 1);
	pcsc_host_disconnect(&host, SCARD_LEAVE_CARD);

	/* Free again: the guest recovers with the next APDU. */
	{
		g_autoptr(GByteArray) r = NULL;

		n = apdu_select(a, 0x1002);
		r = guest_xfr(&g, a, n);
		expect_sw(r, 0x9000);
		n = apdu_read(a, 0, VICC_SMALL_LEN);
		g_byte_array_unref(r);
		r = guest_xfr(&g, a, n);
		expect_small_file(r, 0x1002);
	}
	ck_assert_int_eq(pcsc_host_connect(&other, SCARD_SHARE_SHARED),
			 SCARD_S_SUCCESS);
	c2 = pcsc_host_count(&other);
	ck_assert_uint_eq(c2, c1 + 1 + 2);    /* our COUNT, SELECT, READ */

	ccid_card_pcsc_get_stats(g.card, &stats);
	ck_assert_uint_eq(stats.lock_timeouts, 1);
	ck_assert_uint_ge(stats.lock_waits, 1);
	ck_assert_uint_eq(stats.apdus, 2);
	guest_clear(&g);
	pcsc_host_clear(&other);
	pcsc_host_clear(&host);
	drain();
}
END_TEST

/* Another application's long transaction, once before our first
 * connection (pcscd makes SCardConnect wait) and once while we are
 * connected (SCardBeginTransaction waits). */
START_TEST(test_foreign_transaction)
{
	struct ccid_card_pcsc_config cfg;
	struct ccid_card_pcsc_stats stats;
	g_autoptr(GByteArray) atr = NULL;
	pcsc_host host;
	struct guest g;
	guint32 c0, c1;
	guint8 a[16];
	gsize n;

	host_ready(&host);
	ck_assert_int_eq(pcsc_host_connect(&host, SCARD_SHARE_SHARED),
			 SCARD_S_SUCCESS);
	ccid_card_pcsc_config_init(&cfg);
	cfg.reader = VICC_READER;
	cfg.lock_timeout_ms = 1500;
	cfg.idle_ms = 50;
	guest_init(&g, &cfg);
	atr = guest_power_on(&g);

	for (guint round = 0; round < 2; round++) {
		g_auto(agent_reply) reply = { 0 };
		guint n_te = 0;
		gint64 us = 0;

		ck_assert_int_eq(SCardBeginTransaction(host.card),
				 SCARD_S_SUCCESS);
		c0 = pcsc_host_count(&host);
		n = apdu_select(a, 0x1003);
		guest_xfr_raw(&g, a, n, &reply, &n_te, &us);
		ck_assert_uint_eq(reply.status >> CCID_CMD_STATUS_SHIFT,
				  CCID_CMD_FAILED);
		ck_assert_uint_eq(reply.error, CCID_ERR_HW_ERROR);
		ck_assert_msg(us >= 1500 * 1000 && us < 3000 * 1000,
			      "round %u: failed after %" G_GINT64_FORMAT " us",
			      round, us);
		ck_assert_uint_ge(n_te, 2);
		/* Inside our transaction nobody else got in. */
		c1 = pcsc_host_count(&host);
		ck_assert_uint_eq(c1, c0 + 1);
		ck_assert_int_eq(SCardEndTransaction(host.card,
						     SCARD_LEAVE_CARD),
				 SCARD_S_SUCCESS);

		/* The card is free: the guest goes on. */
		{
			g_autoptr(GByteArray) r = NULL;

			n = apdu_select(a, 0x1004);
			r = guest_xfr(&g, a, n);
			expect_sw(r, 0x9000);
			g_byte_array_unref(r);
			n = apdu_read(a, 0, VICC_SMALL_LEN);
			r = guest_xfr(&g, a, n);
			expect_small_file(r, 0x1004);
		}
		/* The next round's SCardBeginTransaction waits until the
		 * guest's transaction ends (idle 50 ms): pcscd tells. */
	}
	ccid_card_pcsc_get_stats(g.card, &stats);
	ck_assert_uint_eq(stats.lock_timeouts, 2);
	ck_assert_uint_eq(stats.apdus, 4);
	guest_clear(&g);
	pcsc_host_clear(&host);
	drain();
}
END_TEST

/* How long a host application waits for the card after one guest APDU. */
static gint64 host_wait_after_guest_apdu(guint idle_ms)
{
	struct ccid_card_pcsc_config cfg;
	g_autoptr(GByteArray) atr = NULL;
	g_autoptr(GByteArray) r = NULL;
	pcsc_host host;
	struct guest g;
	guint8 a[16];
	gint64 t0, waited;
	gsize n;

	host_ready(&host);
	ck_assert_int_eq(pcsc_host_connect(&host, SCARD_SHARE_SHARED),
			 SCARD_S_SUCCESS);
	ccid_card_pcsc_config_init(&cfg);
	cfg.reader = VICC_READER;
	cfg.idle_ms = idle_ms;
	guest_init(&g, &cfg);
	atr = guest_power_on(&g);
	n = apdu_select(a, 0x1001);
	r = guest_xfr(&g, a, n);
	expect_sw(r, 0x9000);
	t0 = g_get_monotonic_time();
	ck_assert_int_eq(SCardBeginTransaction(host.card), SCARD_S_SUCCESS);
	waited = g_get_monotonic_time() - t0;
	ck_assert_int_eq(SCardEndTransaction(host.card, SCARD_LEAVE_CARD),
			 SCARD_S_SUCCESS);
	guest_clear(&g);
	pcsc_host_clear(&host);
	drain();
	return waited;
}

START_TEST(test_idle_release)
{
	gint64 held = host_wait_after_guest_apdu(400);
	gint64 free_now = 0;

	/* idle=0 must free the card before the guest has its answer; a
	 * release just after it only loses the race now and then, so give
	 * the race many chances.  The worst wait counts. */
	for (guint i = 0; i < 100; i++)
		free_now = MAX(free_now, host_wait_after_guest_apdu(0));
	printf("idle release: host waited %.0f ms with idle=400, at most "
	       "%.0f ms in 100 tries with idle=0\n", held / 1000.0,
	       free_now / 1000.0);
	/* pcsc-lite looks at a busy lock every 100 ms. */
	ck_assert_msg(held >= 300 * 1000 && held < 900 * 1000,
		      "idle=400: host waited %" G_GINT64_FORMAT " us", held);
	ck_assert_msg(free_now < 150 * 1000,
		      "idle=0: host waited %" G_GINT64_FORMAT " us", free_now);
}
END_TEST

START_TEST(test_reset_by_host)
{
	struct ccid_card_pcsc_stats stats;
	g_auto(agent_reply) reply = { 0 };
	g_autoptr(GByteArray) atr = NULL;
	g_autoptr(GByteArray) atr2 = NULL;
	pcsc_host host;
	struct guest g;
	guint8 a[16];
	gsize n;

	host_ready(&host);
	guest_init(&g, NULL);
	atr = guest_power_on(&g);
	n = apdu_select(a, 0x1002);
	g_byte_array_unref(guest_xfr(&g, a, n));

	/* Another application resets the card. */
	ck_assert_int_eq(pcsc_host_connect(&host, SCARD_SHARE_SHARED),
			 SCARD_S_SUCCESS);
	pcsc_host_disconnect(&host, SCARD_RESET_CARD);

	/* The guest's next APDU finds out, fails, and the guest sees its
	 * card leave and come back: NotifySlotChange "present, changed",
	 * the slot unpowered. */
	n = apdu_read(a, 0, VICC_SMALL_LEN);
	guest_xfr_raw(&g, a, n, &reply, NULL, NULL);
	ck_assert_uint_eq(reply.status >> CCID_CMD_STATUS_SHIFT,
			  CCID_CMD_FAILED);
	ck_assert_uint_eq(reply.error, CCID_ERR_ICC_MUTE);
	ck_assert_uint_eq(guest_notify(&g),
			  CCID_SLOT_BIT_PRESENT | CCID_SLOT_BIT_CHANGED);
	ck_assert_uint_eq(guest_slot_status(&g), CCID_ICC_PRESENT_INACTIVE);

	/* Power on again and carry on. */
	atr2 = guest_power_on(&g);
	ck_assert_uint_eq(atr2->len, atr->len);
	ck_assert_mem_eq(atr2->data, atr->data, atr->len);
	n = apdu_select(a, 0x1002);
	g_byte_array_unref(guest_xfr(&g, a, n));
	{
		g_autoptr(GByteArray) r = NULL;

		n = apdu_read(a, 0, VICC_SMALL_LEN);
		r = guest_xfr(&g, a, n);
		expect_small_file(r, 0x1002);
	}
	ccid_card_pcsc_get_stats(g.card, &stats);
	ck_assert_uint_eq(stats.resets, 1);
	guest_clear(&g);
	pcsc_host_clear(&host);
	drain();
}
END_TEST

/* --- the card going away ------------------------------------------------------- */

static gboolean kill_vicc(gpointer data)
{
	pcsc_vicc_kill();
	return G_SOURCE_REMOVE;
}

START_TEST(test_removal_mid_apdu)
{
	g_auto(agent_reply) reply = { 0 };
	g_autoptr(GByteArray) atr = NULL;
	g_autoptr(GByteArray) atr2 = NULL;
	pcsc_host host;
	struct guest g;
	guint8 a[16], bits;
	gint64 us = 0;
	gsize n;

	host_ready(&host);
	guest_init(&g, NULL);
	atr = guest_power_on(&g);

	/* The card dies 300 ms into a 3-second command. */
	g_timeout_add(300, kill_vicc, NULL);
	n = apdu_delay(a, 3000);
	guest_xfr_raw(&g, a, n, &reply, NULL, &us);
	ck_assert_uint_eq(reply.status >> CCID_CMD_STATUS_SHIFT,
			  CCID_CMD_FAILED);
	ck_assert_msg(reply.error == CCID_ERR_HW_ERROR ||
		      reply.error == CCID_ERR_ICC_MUTE, "bError %02X",
		      reply.error);
	ck_assert_msg(us < 2500 * 1000, "error came after %" G_GINT64_FORMAT
		      " us", us);
	printf("removal: card killed 300 ms into a 3 s APDU; the guest got "
	       "bError %02X after %.0f ms\n", reply.error, us / 1000.0);
	/* ...and the slot reports the card gone. */
	bits = guest_notify(&g);
	ck_assert_uint_eq(bits, CCID_SLOT_BIT_CHANGED);
	ck_assert_uint_eq(guest_slot_status(&g), CCID_ICC_ABSENT);
	{
		g_auto(agent_reply) r2 = { 0 };

		n = apdu_select(a, 0x1001);
		guest_xfr_raw(&g, a, n, &r2, NULL, NULL);
		ck_assert_uint_eq(r2.status >> CCID_CMD_STATUS_SHIFT,
				  CCID_CMD_FAILED);
		ck_assert_uint_eq(r2.status & CCID_ICC_STATUS_MASK,
				  CCID_ICC_ABSENT);
	}

	/* The card comes back; the same backend serves it. */
	ck_assert(pcsc_vicc_start());
	ck_assert(pcsc_host_wait_card(&host, TRUE, 10000));
	ck_assert_uint_eq(guest_notify(&g),
			  CCID_SLOT_BIT_PRESENT | CCID_SLOT_BIT_CHANGED);
	atr2 = guest_power_on(&g);
	ck_assert_uint_eq(atr2->len, atr->len);
	ck_assert_mem_eq(atr2->data, atr->data, atr->len);
	{
		g_autoptr(GByteArray) r = NULL;

		n = apdu_select(a, 0x1003);
		g_byte_array_unref(guest_xfr(&g, a, n));
		n = apdu_read(a, 0, VICC_SMALL_LEN);
		r = guest_xfr(&g, a, n);
		expect_small_file(r, 0x1003);
	}
	guest_clear(&g);
	pcsc_host_clear(&host);
	drain();
}
END_TEST

/* pcscd itself goes away and comes back: the card leaves and returns. */
START_TEST(test_service_restart)
{
	g_autoptr(GByteArray) atr = NULL;
	g_autoptr(GByteArray) atr2 = NULL;
	pcsc_host host;
	struct guest g;
	guint8 a[16];
	gsize n;

	host_ready(&host);
	pcsc_host_clear(&host);
	guest_init(&g, NULL);
	atr = guest_power_on(&g);
	n = apdu_select(a, 0x1001);
	g_byte_array_unref(guest_xfr(&g, a, n));

	ck_assert(pcsc_pcscd_stop());
	pcsc_vicc_kill();      /* it exits by itself when vpcd goes; reap */
	ck_assert_uint_eq(guest_notify(&g), CCID_SLOT_BIT_CHANGED);
	ck_assert_uint_eq(guest_slot_status(&g), CCID_ICC_ABSENT);

	ck_assert(pcsc_pcscd_start());
	ck_assert(pcsc_vicc_start());
	ck_assert_uint_eq(guest_notify(&g),
			  CCID_SLOT_BIT_PRESENT | CCID_SLOT_BIT_CHANGED);
	atr2 = guest_power_on(&g);
	ck_assert_uint_eq(atr2->len, atr->len);
	ck_assert_mem_eq(atr2->data, atr->data, atr->len);
	{
		g_autoptr(GByteArray) r = NULL;

		n = apdu_select(a, 0x1002);
		g_byte_array_unref(guest_xfr(&g, a, n));
		n = apdu_read(a, 0, VICC_SMALL_LEN);
		r = guest_xfr(&g, a, n);
		expect_small_file(r, 0x1002);
	}
	guest_clear(&g);
	drain();
}
END_TEST

/* --- cross-talk ------------------------------------------------------------------ */

struct actor {
	const char *name;
	guint32 seed;
	gint64 end;
	gboolean use_transactions;   /* host applications only */
	gint *stop;                  /* set by the first to see a mixup */
	guint seqs, mixed, errors;
	char *failure;
};

/* Which small file @data (64 bytes) is, or 0. */
static guint16 which_file(const guint8 *data, gsize len)
{
	if (len != VICC_SMALL_LEN)
		return 0;
	for (guint f = 0; f < G_N_ELEMENTS(vicc_small_fids); f++) {
		guint i;

		for (i = 0; i < VICC_SMALL_LEN; i++)
			if (data[i] != vicc_small_byte(vicc_small_fids[f], i))
				break;
		if (i == VICC_SMALL_LEN)
			return vicc_small_fids[f];
	}
	return 0;
}

static void judge(struct actor *a, guint16 fid, const guint8 *r, gsize len)
{
	guint16 got;

	a->seqs++;
	if (len != VICC_SMALL_LEN + 2 || r[len - 2] != 0x90 || r[len - 1]) {
		a->errors++;
		return;
	}
	got = which_file(r, VICC_SMALL_LEN);
	if (got != fid)
		a->mixed++;         /* another actor's SELECT got in between */
}

static gpointer guest_actor(gpointer data)
{
	struct actor *a = data;
	struct ccid_card_pcsc_config cfg;
	GMainContext *ctx = g_main_context_new();
	g_autoptr(GRand) rnd = g_rand_new_with_seed(a->seed);
	g_autoptr(GError) error = NULL;
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GByteArray) r = g_byte_array_new();
	struct guest g;
	guint8 apdu[16];

	g_main_context_push_thread_default(ctx);
	ccid_card_pcsc_config_init(&cfg);
	cfg.reader = VICC_READER;
	/* The SELECT and the READ must fall in one transaction: the gap
	 * between them is this thread's own, which a loaded machine (the
	 * other core busy) can stretch past 20 ms, rarely past 60 ms. */
	cfg.idle_ms = 60;
	if (!guest_try_init(&g, ctx, &cfg, &error) ||
	    !agent_host_power_on(g.h, 0, atr, &error)) {
		a->failure = g_strdup(error->message);
	} else {
		while (g_get_monotonic_time() < a->end) {
			guint16 fid = vicc_small_fids[g_rand_int_range(rnd, 0, 4)];
			gsize n = apdu_select(apdu, fid);

			if (!agent_host_xfr_apdu(g.h, 0, apdu, n, r, NULL,
						 &error)) {
				a->failure = g_strdup(error->message);
				break;
			}
			n = apdu_read(apdu, 0, VICC_SMALL_LEN);
			if (!agent_host_xfr_apdu(g.h, 0, apdu, n, r, NULL,
						 &error)) {
				a->failure = g_strdup(error->message);
				break;
			}
			judge(a, fid, r->data, r->len);
			/* Quiet for longer than idle: the others get in. */
			g_usleep((gulong)g_rand_int_range(rnd, 80, 160) * 1000);
			while (g_main_context_iteration(ctx, FALSE))
				;
		}
	}
	guest_clear(&g);
	while (g_main_context_iteration(ctx, FALSE))
		;
	g_main_context_pop_thread_default(ctx);
	g_main_context_unref(ctx);
	return NULL;
}

static gpointer host_actor(gpointer data)
{
	struct actor *a = data;
	g_autoptr(GRand) rnd = g_rand_new_with_seed(a->seed);
	SCARDCONTEXT ctx;
	SCARDHANDLE card;
	DWORD proto;
	guint8 apdu[16], r[300];
	LONG rv;

	rv = ccid_pcsc_context_establish(&ctx);
	if (rv == SCARD_S_SUCCESS)
		rv = SCardConnect(ctx, VICC_READER, SCARD_SHARE_SHARED,
				  SCARD_PROTOCOL_T1, &card, &proto);
	if (rv != SCARD_S_SUCCESS) {
		a->failure = g_strdup_printf("connect: 0x%lx",
					     (unsigned long)rv);
		return NULL;
	}
	while (g_get_monotonic_time() < a->end) {
		guint16 fid = vicc_small_fids[g_rand_int_range(rnd, 0, 4)];
		DWORD len = sizeof(r);
		gsize n;

		if (a->use_transactions &&
		    (rv = SCardBeginTransaction(card)) != SCARD_S_SUCCESS)
			break;
		n = apdu_select(apdu, fid);
		rv = SCardTransmit(card, SCARD_PCI_T1, apdu, (DWORD)n, NULL, r,
				   &len);
		if (rv == SCARD_S_SUCCESS) {
			len = sizeof(r);
			n = apdu_read(apdu, 0, VICC_SMALL_LEN);
			rv = SCardTransmit(card, SCARD_PCI_T1, apdu, (DWORD)n,
					   NULL, r, &len);
		}
		if (a->use_transactions)
			(void)SCardEndTransaction(card, SCARD_LEAVE_CARD);
		if (rv != SCARD_S_SUCCESS)
			break;
		judge(a, fid, r, len);
		if (a->stop != NULL) {
			if (a->mixed > 0)
				g_atomic_int_set(a->stop, 1);
			if (g_atomic_int_get(a->stop))
				break;
		}
		if (a->use_transactions)
			g_usleep((gulong)g_rand_int_range(rnd, 5, 30) * 1000);
	}
	if (rv != SCARD_S_SUCCESS)
		a->failure = g_strdup_printf("PC/SC: 0x%lx", (unsigned long)rv);
	(void)ccid_pcsc_card_disconnect(card, SCARD_LEAVE_CARD);
	(void)ccid_pcsc_context_release(ctx);
	return NULL;
}

/* One thread of the "lists" case: contexts and handles made and dropped
 * as fast as pcscd answers, as a card's worker and monitor and other
 * cards do at the same time in an agent. */
struct churner {
	gint64 end;
	guint cycles;
	char *failure;
};

static gpointer churn(gpointer data)
{
	struct churner *c = data;

	while (c->failure == NULL && g_get_monotonic_time() < c->end) {
		SCARDCONTEXT ctx;
		SCARDHANDLE card;
		DWORD proto;
		LONG rv = ccid_pcsc_context_establish(&ctx);

		if (rv != SCARD_S_SUCCESS) {
			c->failure = g_strdup_printf("establish: 0x%lx",
						     (unsigned long)rv);
			break;
		}
		rv = SCardConnect(ctx, VICC_READER, SCARD_SHARE_SHARED,
				  SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &card,
				  &proto);
		if (rv == SCARD_S_SUCCESS)
			rv = ccid_pcsc_card_disconnect(card, SCARD_LEAVE_CARD);
		if (rv != SCARD_S_SUCCESS)
			c->failure = g_strdup_printf("connect/disconnect: "
						     "0x%lx",
						     (unsigned long)rv);
		(void)ccid_pcsc_context_release(ctx);
		c->cycles++;
	}
	return NULL;
}

/* libpcsclite 1.9.9 drops a disconnected handle from its process-wide
 * lists without its own lock (pcsc_client.c): unserialised, a disconnect
 * racing another thread's context release crashed this case within a
 * second. */
START_TEST(test_client_lists)
{
	struct churner c[4] = { { 0 } };
	GThread *t[G_N_ELEMENTS(c)];
	guint total = 0;
	pcsc_host host;

	host_ready(&host);
	pcsc_host_clear(&host);
	for (guint i = 0; i < G_N_ELEMENTS(c); i++) {
		c[i].end = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
		t[i] = g_thread_new("churn", churn, &c[i]);
	}
	for (guint i = 0; i < G_N_ELEMENTS(c); i++) {
		g_thread_join(t[i]);
		ck_assert_msg(c[i].failure == NULL, "thread %u: %s", i,
			      c[i].failure);
		total += c[i].cycles;
	}
	printf("lists: %u connect/disconnect cycles in 4 threads, 2 s\n",
	       total);
	ck_assert_uint_ge(total, 100);
}
END_TEST

static void run_actors(struct actor *actors, guint n, GThreadFunc *fns)
{
	GThread *t[8];

	for (guint i = 0; i < n; i++)
		t[i] = g_thread_new(actors[i].name, fns[i], &actors[i]);
	for (guint i = 0; i < n; i++)
		g_thread_join(t[i]);
}

START_TEST(test_crosstalk)
{
	const char *env = g_getenv("PCSC_CROSSTALK_SECONDS");
	guint secs = env != NULL ? (guint)atoi(env) : 8;
	pcsc_host host;
	guint total_seqs = 0, total_mixed = 0;

	host_ready(&host);
	pcsc_host_clear(&host);
	if (secs == 0)
		secs = 8;

	/* Control: two host applications without transactions do mix up,
	 * so the detector below is able to see cross-talk. */
	{
		gint stop = 0;
		struct actor c[2] = {
			{ .name = "raw-a", .seed = 11, .stop = &stop },
			{ .name = "raw-b", .seed = 12, .stop = &stop },
		};
		GThreadFunc fns[2] = { host_actor, host_actor };
		gint64 end = g_get_monotonic_time() + 3 * G_USEC_PER_SEC;

		c[0].end = c[1].end = end;
		run_actors(c, 2, fns);
		ck_assert_msg(c[0].failure == NULL, "%s", c[0].failure);
		ck_assert_msg(c[1].failure == NULL, "%s", c[1].failure);
		printf("cross-talk control (no transactions): %u+%u sequences, "
		       "%u mixed up\n", c[0].seqs, c[1].seqs,
		       c[0].mixed + c[1].mixed);
		ck_assert_msg(c[0].mixed + c[1].mixed > 0,
			      "the control run saw no cross-talk: the test "
			      "could not detect any");
	}

	{
		struct actor act[3] = {
			{ .name = "guest-a", .seed = 1 },
			{ .name = "guest-b", .seed = 2 },
			{ .name = "host-app", .seed = 3,
			  .use_transactions = TRUE },
		};
		GThreadFunc fns[3] = { guest_actor, guest_actor, host_actor };
		gint64 end = g_get_monotonic_time() +
			     (gint64)secs * G_USEC_PER_SEC;

		for (guint i = 0; i < 3; i++)
			act[i].end = end;
		run_actors(act, 3, fns);
		for (guint i = 0; i < 3; i++) {
			ck_assert_msg(act[i].failure == NULL, "%s: %s",
				      act[i].name, act[i].failure);
			printf("cross-talk: %-8s %5u sequences, %u mixed up, "
			       "%u errors\n", act[i].name, act[i].seqs,
			       act[i].mixed, act[i].errors);
			total_seqs += act[i].seqs;
			total_mixed += act[i].mixed;
		}
		printf("cross-talk: %u sequences in %u s, %u mixed up\n",
		       total_seqs, secs, total_mixed);
		for (guint i = 0; i < 3; i++) {
			ck_assert_uint_eq(act[i].mixed, 0);
			ck_assert_uint_eq(act[i].errors, 0);
			ck_assert_uint_ge(act[i].seqs, 10);
		}
	}
	drain();
}
END_TEST

/* --- latency ----------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

	return x < y ? -1 : x > y;
}

static gint64 median(gint64 *v, guint n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	return v[n / 2];
}

/* Times @n SELECTs into @us[]; returns their sum. */
static gint64 time_direct(pcsc_host *host, const guint8 *a, gsize len,
			  GByteArray *r, gint64 *us, guint n)
{
	gint64 sum = 0;

	for (guint i = 0; i < n; i++) {
		gint64 t0 = g_get_monotonic_time();

		ck_assert_int_eq(pcsc_host_xfr(host, a, len, r),
				 SCARD_S_SUCCESS);
		us[i] = g_get_monotonic_time() - t0;
		sum += us[i];
	}
	expect_sw(r, 0x9000);
	return sum;
}

static gint64 time_guest(struct guest *g, const guint8 *a, gsize len,
			 GByteArray *r, gint64 *us, guint n)
{
	gint64 sum = 0;

	for (guint i = 0; i < n; i++) {
		g_autoptr(GError) error = NULL;
		gint64 t0 = g_get_monotonic_time();

		ck_assert_msg(agent_host_xfr_apdu(g->h, 0, a, len, r, NULL,
						  &error), "%s",
			      error ? error->message : "?");
		us[i] = g_get_monotonic_time() - t0;
		sum += us[i];
	}
	expect_sw(r, 0x9000);
	return sum;
}

/*
 * The same SELECT sent by a host application straight to pcscd, and by
 * the guest through the CCID device model (XfrBlock in, DataBlock out) and
 * the pcsc backend.  The three series run in alternating blocks so that
 * the load of a shared machine spreads over all of them.
 */
START_TEST(test_latency)
{
	const char *env = g_getenv("PCSC_LATENCY_APDUS");
	guint n_apdus = env != NULL ? (guint)atoi(env) : 2000;
	const guint block = 100;
	struct ccid_card_pcsc_config cfg;
	g_autofree gint64 *plain = NULL;
	g_autofree gint64 *txn = NULL;
	g_autofree gint64 *guest_us = NULL;
	g_autoptr(GByteArray) atr = NULL;
	g_autoptr(GByteArray) r = g_byte_array_new();
	gint64 sum_p = 0, sum_t = 0, sum_g = 0, med_p, med_t, med_g;
	pcsc_host host;
	struct guest g;
	guint8 a[16];
	gsize n = apdu_select(a, 0x1001);

	n_apdus = MAX(n_apdus / block, 1u) * block;
	plain = g_new(gint64, n_apdus);
	txn = g_new(gint64, n_apdus);
	guest_us = g_new(gint64, n_apdus);
	host_ready(&host);
	ck_assert_int_eq(pcsc_host_connect(&host, SCARD_SHARE_SHARED),
			 SCARD_S_SUCCESS);
	ccid_card_pcsc_config_init(&cfg);
	cfg.reader = VICC_READER;
	cfg.idle_ms = 20;
	guest_init(&g, &cfg);
	atr = guest_power_on(&g);

	for (guint off = 0; off < n_apdus; off += block) {
		sum_p += time_direct(&host, a, n, r, plain + off, block);
		ck_assert_int_eq(SCardBeginTransaction(host.card),
				 SCARD_S_SUCCESS);
		sum_t += time_direct(&host, a, n, r, txn + off, block);
		ck_assert_int_eq(SCardEndTransaction(host.card,
						     SCARD_LEAVE_CARD),
				 SCARD_S_SUCCESS);
		sum_g += time_guest(&g, a, n, r, guest_us + off, block);
		/* The guest's transaction ends after 20 ms of silence: wait
		 * for it (our own transaction can start only then), so the
		 * next direct timings do not include that wait. */
		ck_assert_int_eq(SCardBeginTransaction(host.card),
				 SCARD_S_SUCCESS);
		ck_assert_int_eq(SCardEndTransaction(host.card,
						     SCARD_LEAVE_CARD),
				 SCARD_S_SUCCESS);
	}
	med_p = median(plain, n_apdus);
	med_t = median(txn, n_apdus);
	med_g = median(guest_us, n_apdus);
	printf("latency, %u x SELECT each (vicc with TCP_NODELAY + "
	       "TCP_QUICKACK):\n"
	       "  host app, direct:                  mean %6.1f us, median "
	       "%4" G_GINT64_FORMAT " us\n"
	       "  host app, direct in a transaction: mean %6.1f us, median "
	       "%4" G_GINT64_FORMAT " us\n"
	       "  guest via device + pcsc backend:   mean %6.1f us, median "
	       "%4" G_GINT64_FORMAT " us\n"
	       "  added per APDU (guest - direct in a transaction): mean "
	       "%.1f us, median %" G_GINT64_FORMAT " us\n", n_apdus,
	       sum_p / (double)n_apdus, med_p, sum_t / (double)n_apdus, med_t,
	       sum_g / (double)n_apdus, med_g,
	       (sum_g - sum_t) / (double)n_apdus, med_g - med_t);
	/* Sanity only: the numbers are for the report. */
	ck_assert_int_lt(med_g, med_t + 5000);
	guest_clear(&g);
	pcsc_host_clear(&host);
	drain();
}
END_TEST

/* --- ccid-agent ---------------------------------------------------------------------- */

static int run_agent(const char *const *args, const char *csock, char **out,
		     char **err)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_auto(GStrv) envp = g_get_environ();
	g_autoptr(GError) error = NULL;
	const char *agent = g_getenv("CCID_AGENT");
	int status = -1;

	ck_assert_msg(agent != NULL, "CCID_AGENT is not set");
	g_ptr_array_add(argv, (gpointer)agent);
	for (guint i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)args[i]);
	g_ptr_array_add(argv, NULL);
	if (csock != NULL)
		envp = g_environ_setenv(envp, "PCSCLITE_CSOCK_NAME", csock, TRUE);
	ck_assert_msg(g_spawn_sync(NULL, (char **)argv->pdata, envp, 0, NULL,
				   NULL, out, err, &status, &error),
		      "spawn: %s", error ? error->message : "?");
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(test_agent_selftest)
{
	g_autoptr(GByteArray) host_atr = NULL;
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autoptr(GString) want = g_string_new("IccPowerOn: ATR ");
	pcsc_host host;

	host_ready(&host);
	host_atr = pcsc_host_atr(&host);
	pcsc_host_clear(&host);
	for (guint i = 0; i < host_atr->len; i++)
		g_string_append_printf(want, i ? " %02X" : "%02X",
				       host_atr->data[i]);
	{
		const char *args[] = { "selftest", "--card",
				       "pcsc:" VICC_READER, NULL };

		ck_assert_int_eq(run_agent(args, NULL, &out, &err), 0);
	}
	ck_assert_msg(strstr(out, want->str) != NULL, "%s", out);
	ck_assert_msg(strstr(out, "SELECT MF: SW 9000") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "selftest: 11 passed, 0 failed") != NULL,
		      "%s", out);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	{
		const char *args[] = { "selftest", "--card", "pcsc:Virtual",
				       NULL };

		ck_assert_int_eq(run_agent(args, NULL, &out, &err), 1);
		ck_assert_msg(strstr(out, "'Virtual' matches several PC/SC "
				     "readers") != NULL, "%s", out);
	}
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	{
		const char *args[] = { "selftest", "--card", "pcsc:X,idle=soon",
				       NULL };

		ck_assert_int_eq(run_agent(args, NULL, &out, &err), 2);
		ck_assert_msg(strstr(err, "card 'pcsc:X,idle=soon': idle=soon")
			      != NULL, "%s", err);
	}
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	{
		g_autofree char *nosock = g_build_filename(pcsc_fixture_dir(),
							   "none.comm", NULL);
		g_autofree char *want_err = g_strdup_printf(
			"pcscd is not running (no PC/SC service at %s)", nosock);
		const char *args[] = { "selftest", "--card", "pcsc:" VICC_READER,
				       NULL };

		ck_assert_int_eq(run_agent(args, nosock, &out, &err), 1);
		ck_assert_msg(strstr(out, want_err) != NULL, "%s", out);
	}
}
END_TEST

/* Waits until @path exists and, if @needle is not NULL, contains it:
 * inotify on its directory (creation, writes), under a deadline, no
 * sleeps. */
static gboolean wait_file(const char *path, const char *needle, guint ms)
{
	g_autofree char *dir = g_path_get_dirname(path);
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	gboolean found = FALSE;

	ck_assert_int_ge(in, 0);
	ck_assert_int_ge(inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_TO |
					   IN_MODIFY | IN_CLOSE_WRITE), 0);
	for (;;) {
		g_autofree char *text = NULL;
		struct pollfd p = { .fd = in, .events = POLLIN };
		gint64 left = (end - g_get_monotonic_time()) / 1000;
		char ev[4096];

		if (g_file_test(path, G_FILE_TEST_EXISTS) &&
		    (needle == NULL ||
		     (g_file_get_contents(path, &text, NULL, NULL) &&
		      strstr(text, needle) != NULL))) {
			found = TRUE;
			break;
		}
		if (left <= 0 || poll(&p, 1, (int)left) != 1)
			break;
		while (read(in, ev, sizeof(ev)) > 0)
			;
	}
	close(in);
	return found;
}

START_TEST(test_agent_serve)
{
	g_autofree char *sock = g_build_filename(pcsc_fixture_dir(), "s.sock",
						 NULL);
	g_autofree char *ctl = g_build_filename(pcsc_fixture_dir(), "s.ctl",
						NULL);
	g_autofree char *listen = g_strconcat("unix:", sock, NULL);
	g_autofree char *log = g_build_filename(pcsc_fixture_dir(),
						"serve.log", NULL);
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	g_autofree char *text = NULL;
	g_autoptr(GError) error = NULL;
	const char *agent = g_getenv("CCID_AGENT");
	pcsc_host host;
	GPid pid;
	int fd, status = 0;

	host_ready(&host);
	pcsc_host_clear(&host);

	/* A reader that does not exist: no socket is ever created. */
	{
		const char *args[] = { "serve", "--card", "pcsc:Nope",
				       "--listen", listen, NULL };

		ck_assert_int_eq(run_agent(args, NULL, &out, &err), 1);
		ck_assert_msg(strstr(err, "no PC/SC reader matches 'Nope'"),
			      "%s", err);
		ck_assert(!g_file_test(sock, G_FILE_TEST_EXISTS));
	}

	{
		const char *argv[] = { agent, "serve", "--card",
				       "pcsc:" VICC_READER ",idle=100",
				       "--listen", listen, NULL };

		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_msg(g_spawn_async_with_fds(NULL, (char **)argv, NULL,
						     G_SPAWN_DO_NOT_REAP_CHILD,
						     NULL, NULL, &pid, -1, fd,
						     fd, &error),
			      "serve: %s", error ? error->message : "?");
		close(fd);
	}
	ck_assert_msg(wait_file(ctl, NULL, 5000), "serve made no %s", ctl);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	{
		const char *args[] = { "ctl", "--control", ctl, "status", NULL };

		ck_assert_int_eq(run_agent(args, NULL, &out, &err), 0);
		ck_assert_msg(strstr(out, "{\"slots\": [{\"slot\": 0, "
				     "\"card\": \"pcsc\", \"present\": true, "
				     "\"busy\": false, \"pin_guard_refusals\": 0}]")
			      != NULL, "%s", out);
	}
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	{
		const char *args[] = { "ctl", "--control", ctl, "remove", NULL };

		ck_assert_int_eq(run_agent(args, NULL, &out, &err), 1);
		ck_assert_msg(strstr(out, "{\"error\": \"slot 0 holds a real "
				     "card (pcsc): remove it in the reader "
				     "itself\"}") != NULL, "%s", out);
	}
	/* The physical card leaves: the agent says so and keeps running. */
	pcsc_vicc_kill();
	{
		pcsc_host h2;

		pcsc_host_init(&h2);
		ck_assert(pcsc_host_wait_card(&h2, FALSE, 5000));
		pcsc_host_clear(&h2);
	}
	/* The agent's own word that it saw the card go. */
	ck_assert_msg(wait_file(log, "slot 0: card removed from", 5000),
		      "the agent did not log the removal");
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	{
		const char *args[] = { "ctl", "--control", ctl, "status", NULL };

		ck_assert_int_eq(run_agent(args, NULL, &out, &err), 0);
		ck_assert_msg(strstr(out, "\"card\": \"pcsc\", \"present\": "
				     "false") != NULL, "%s", out);
	}
	ck_assert(pcsc_vicc_start());
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	g_spawn_close_pid(pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert(g_file_get_contents(log, &text, NULL, NULL));
	ck_assert_msg(strstr(text, "slot 0: pcsc card on reader 'Virtual PCD "
			     "00 00' (card inserted)") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "slot 0: card removed from 'Virtual PCD 00 "
			     "00'") != NULL, "%s", text);
}
END_TEST

static Suite *pcsc_suite(void)
{
	Suite *s = suite_create("pcsc");
	/* Tag "leakcheck": the cases the valgrind run covers (no tight
	 * real-time bounds, no subprocesses). */
	struct {
		const char *name;
		const TTest *test;
		int timeout;
		const char *tags;
	} cases[] = {
		{ "spec", test_spec_parse, 10, "leakcheck" },
		{ "readers", test_reader_choice, 30, "leakcheck" },
		{ "files", test_atr_and_files, 30, "leakcheck" },
		{ "extended", test_extended, 60, "leakcheck" },
		{ "exclusive", test_exclusive_then_free, 60, NULL },
		{ "transaction", test_foreign_transaction, 60, NULL },
		{ "idle", test_idle_release, 60, NULL },
		{ "reset", test_reset_by_host, 60, "leakcheck" },
		{ "removal", test_removal_mid_apdu, 60, "leakcheck" },
		{ "restart", test_service_restart, 60, "leakcheck" },
		{ "lists", test_client_lists, 60, NULL },
		{ "crosstalk", test_crosstalk, 300, NULL },
		{ "latency", test_latency, 120, NULL },
		{ "agent_selftest", test_agent_selftest, 60, NULL },
		{ "agent_serve", test_agent_serve, 60, NULL },
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		TCase *tc = tcase_create(cases[i].name);

		if (cases[i].tags != NULL)
			tcase_set_tags(tc, cases[i].tags);
		tcase_add_test(tc, cases[i].test);
		tcase_set_timeout(tc, cases[i].timeout);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	rc = pcsc_fixture_start();
	if (rc != 0) {
		pcsc_fixture_stop();
		fprintf(stderr, "pcsc tests %s: the private pcscd or the vicc "
			"card could not be started\n",
			rc == 77 ? "skipped" : "failed");
		return rc;
	}
	sr = srunner_create(pcsc_suite());
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	pcsc_fixture_stop();
	return failed == 0 ? 0 : 1;
}
