/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the PIN-retry guard (suite 'unit'):
 *
 *   - which APDUs spend a try, and of which reference (classify table);
 *   - what the card's status words teach (learn table);
 *   - the redaction of PIN data for logs (redact table);
 *   - the guard as a layer between the real device model and the real
 *     PIV applet (piv_applet_process, which really counts), driven with
 *     CCID XfrBlock messages: each row is what the guest sends, what it
 *     gets back, and the APDUs the card really saw.
 *
 * APDUs and answers are hex strings (spaces ignored).
 */
#include <check.h>
#include <glib.h>
#include <string.h>

#include <ccid-emu/ccid_emu.h>
#include <ccid_card_pin_guard.h>
#include <ccid_pin_guard.h>
#include <ccid_piv_applet.h>
#include <ccid_piv_data.h>

#include "test_hex.h"

/* PIV PINs are 8 bytes, ASCII digits padded with FF (SP 800-73-4 §2.4.3). */
#define PIN_123456  "31 32 33 34 35 36 FF FF"   /* the default PIN */
#define PIN_999999  "39 39 39 39 39 39 FF FF"   /* a wrong guess */
#define PUK_12345678 "31 32 33 34 35 36 37 38"  /* the default PUK */
#define PUK_99999999 "39 39 39 39 39 39 39 39"  /* a wrong PUK */

/* --- classify ------------------------------------------------------------- */

static const struct {
	const char *what, *apdu;
	enum ccid_pin_cmd_kind kind;
	guint8 ref;
	gboolean chained;
} classify_rows[] = {
	{ "VERIFY with a PIN spends P2", "00 20 00 80 08 " PIN_999999,
	  CCID_PIN_CMD_SPEND, 0x80, FALSE },
	{ "VERIFY, case 1: the tries-left query", "00 20 00 80",
	  CCID_PIN_CMD_QUERY, 0x80, FALSE },
	{ "VERIFY, case 2 (Le only): still no data", "00 20 00 80 00",
	  CCID_PIN_CMD_QUERY, 0x80, FALSE },
	{ "VERIFY, extended Lc", "00 20 00 80 00 00 08 " PIN_999999,
	  CCID_PIN_CMD_SPEND, 0x80, FALSE },
	{ "VERIFY, extended Lc and Le", "00 20 00 80 00 00 08 " PIN_999999 " 00 00",
	  CCID_PIN_CMD_SPEND, 0x80, FALSE },
	{ "VERIFY, first part of a chain (CLA 10)", "10 20 00 80 04 39 39 39 39",
	  CCID_PIN_CMD_SPEND, 0x80, TRUE },
	{ "VERIFY, odd INS (BER-TLV data)", "00 21 00 80 03 5F 01 00",
	  CCID_PIN_CMD_SPEND, 0x80, FALSE },
	{ "VERIFY on logical channel 1", "01 20 00 80 08 " PIN_999999,
	  CCID_PIN_CMD_SPEND, 0x80, FALSE },
	{ "VERIFY, proprietary class: counted too", "80 20 00 81 08 " PIN_999999,
	  CCID_PIN_CMD_SPEND, 0x81, FALSE },
	{ "VERIFY with P1 FF: reset of the security status", "00 20 FF 80",
	  CCID_PIN_CMD_OTHER, 0, FALSE },
	{ "VERIFY with a malformed length: the card may read data",
	  "00 20 00 80 09 " PIN_999999, CCID_PIN_CMD_SPEND, 0x80, FALSE },
	{ "CHANGE REFERENCE DATA, old + new", "00 24 00 80 10 " PIN_999999 PIN_123456,
	  CCID_PIN_CMD_SPEND, 0x80, FALSE },
	{ "CHANGE REFERENCE DATA of the PUK", "00 24 00 81 10 " PUK_99999999 PUK_12345678,
	  CCID_PIN_CMD_SPEND, 0x81, FALSE },
	{ "CHANGE REFERENCE DATA, P1 01: new data only, no check",
	  "00 24 01 80 08 " PIN_123456, CCID_PIN_CMD_OTHER, 0, FALSE },
	{ "RESET RETRY COUNTER spends the PUK (0x81), not P2",
	  "00 2C 00 80 10 " PUK_99999999 PIN_123456, CCID_PIN_CMD_SPEND, 0x81, FALSE },
	{ "RESET RETRY COUNTER, P1 02: no resetting code", "00 2C 02 80 08 " PIN_123456,
	  CCID_PIN_CMD_OTHER, 0, FALSE },
	{ "RESET RETRY COUNTER without data", "00 2C 00 80",
	  CCID_PIN_CMD_OTHER, 0, FALSE },
	{ "PC/SC pseudo-APDU to the reader (CLA FF)", "FF 20 00 80 08 " PIN_999999,
	  CCID_PIN_CMD_OTHER, 0, FALSE },
	{ "SELECT", "00 A4 04 00 05 A0 00 00 03 08", CCID_PIN_CMD_OTHER, 0, FALSE },
	{ "three bytes", "00 20 00", CCID_PIN_CMD_OTHER, 0, FALSE },
};

START_TEST(test_classify)
{
	for (guint i = 0; i < G_N_ELEMENTS(classify_rows); i++) {
		g_autoptr(GByteArray) a = test_unhex(classify_rows[i].apdu);
		struct ccid_pin_cmd c;

		ccid_pin_cmd_classify(a->data, a->len, &c);
		ck_assert_msg(c.kind == classify_rows[i].kind,
			      "%s: kind %d, expected %d", classify_rows[i].what,
			      c.kind, classify_rows[i].kind);
		if (c.kind == CCID_PIN_CMD_OTHER)
			continue;
		ck_assert_msg(c.ref == classify_rows[i].ref &&
			      c.chained == classify_rows[i].chained,
			      "%s: ref %02X chained %d", classify_rows[i].what,
			      c.ref, c.chained);
	}
}
END_TEST

/* The query the guard sends: VERIFY of the reference without data, on
 * the command's logical channel, without chaining or secure messaging. */
static const struct {
	const char *what, *apdu, *query;
} query_rows[] = {
	{ "plain", "00 20 00 80 08 " PIN_999999, "00 20 00 80" },
	{ "chained, SM bits, channel 2", "1E 20 00 80 04 39 39 39 39", "02 20 00 80" },
	{ "further interindustry class, channel 5", "61 20 00 80 08 " PIN_999999, "41 20 00 80" },
	{ "proprietary class kept", "80 20 00 81 08 " PIN_999999, "80 20 00 81" },
	{ "RESET RETRY COUNTER asks the PUK", "00 2C 00 80 10 " PUK_99999999 PIN_123456, "00 20 00 81" },
};

START_TEST(test_query)
{
	for (guint i = 0; i < G_N_ELEMENTS(query_rows); i++) {
		g_autoptr(GByteArray) a = test_unhex(query_rows[i].apdu);
		g_autoptr(GByteArray) want = test_unhex(query_rows[i].query);
		struct ccid_pin_cmd c;
		guint8 q[4];

		ccid_pin_cmd_classify(a->data, a->len, &c);
		ccid_pin_cmd_query(&c, q);
		ck_assert_msg(memcmp(q, want->data, 4) == 0, "%s: %02X %02X %02X %02X",
			      query_rows[i].what, q[0], q[1], q[2], q[3]);
	}
}
END_TEST

/* --- learn: one card's answers in order, on reference 0x80 ---------------- */

static const struct {
	const char *what, *apdu, *resp;
	int left;    /* tries left of 0x80 afterwards, -1 unknown */
} learn_rows[] = {
	{ "nothing known at first", "00 A4 04 00 05 A0 00 00 03 08", "90 00", -1 },
	{ "a query answer: 3 left", "00 20 00 80", "63 C3", 3 },
	{ "a wrong PIN: 2 left", "00 20 00 80 08 " PIN_999999, "63 C2", 2 },
	{ "wrong, count not given: one less", "00 20 00 80 08 " PIN_999999, "63 00", 1 },
	{ "an unrelated error changes nothing", "00 20 00 80 08 " PIN_999999, "6A 80", 1 },
	{ "a chain part's 9000 is only \"go on\"", "10 20 00 80 04 31 32 33 34", "90 00", 1 },
	{ "the right PIN: back to the maximum, not told", "00 20 00 80 08 " PIN_123456, "90 00", -1 },
	{ "blocked: 6983", "00 20 00 80 08 " PIN_999999, "69 83", 0 },
	{ "63C0 is none left too", "00 20 00 80", "63 C0", 0 },
	{ "a query's 9000: verified, maximum", "00 20 00 80", "90 00", -1 },
	{ "an answer without SW", "00 20 00 80 08 " PIN_999999, "63", -1 },
};

START_TEST(test_learn)
{
	struct ccid_pin_counts counts;

	ccid_pin_counts_init(&counts);
	for (guint i = 0; i < G_N_ELEMENTS(learn_rows); i++) {
		g_autoptr(GByteArray) a = test_unhex(learn_rows[i].apdu);
		g_autoptr(GByteArray) r = test_unhex(learn_rows[i].resp);
		struct ccid_pin_cmd c;
		int left;

		ccid_pin_cmd_classify(a->data, a->len, &c);
		ccid_pin_counts_learn(&counts, &c, r->data, r->len);
		left = counts.left[0x80] == CCID_PIN_GUARD_UNKNOWN ? -1 :
		       counts.left[0x80];
		ck_assert_msg(left == learn_rows[i].left, "%s: %d left, expected %d",
			      learn_rows[i].what, left, learn_rows[i].left);
	}
}
END_TEST

/* --- redact ---------------------------------------------------------------- */

static const struct {
	const char *what, *apdu, *out;
} redact_rows[] = {
	{ "VERIFY: the PIN goes", "00 20 00 80 08 " PIN_123456,
	  "00 20 00 80 08 2A 2A 2A 2A 2A 2A 2A 2A" },
	{ "CHANGE REFERENCE DATA: both go", "00 24 00 80 04 31 32 33 34",
	  "00 24 00 80 04 2A 2A 2A 2A" },
	{ "RESET RETRY COUNTER, extended", "00 2C 00 80 00 00 02 31 32",
	  "00 2C 00 80 00 2A 2A 2A 2A" },
	{ "a query has nothing to hide", "00 20 00 80", "00 20 00 80" },
	{ "other commands stay", "00 A4 04 00 02 3F 00", "00 A4 04 00 02 3F 00" },
};

START_TEST(test_redact)
{
	for (guint i = 0; i < G_N_ELEMENTS(redact_rows); i++) {
		g_autoptr(GByteArray) a = test_unhex(redact_rows[i].apdu);
		g_autoptr(GByteArray) want = test_unhex(redact_rows[i].out);
		g_autofree guint8 *out = g_malloc(a->len);
		g_autofree char *got = NULL;

		ccid_pin_cmd_redact(a->data, a->len, out);
		got = test_tohex(out, a->len, " ");
		ck_assert_msg(a->len == want->len &&
			      memcmp(out, want->data, a->len) == 0,
			      "%s: %s", redact_rows[i].what, got);
	}
}
END_TEST

/* --- the layer: device model, guard, real PIV applet ----------------------- */

/* A synchronous card on the real applet, which keeps the APDUs it saw. */
struct counting_card {
	ccid_slot *slot;
	piv_applet *applet;
	guint8 *resp;
	GString *seen;          /* hex of every APDU, ";"-separated */
	/* Script for the error paths: the next transmit fails to start
	 * (non-zero), or completes with this status instead of answering. */
	int refuse_next;
	enum ccid_card_status fail_next;
	unsigned n_cancel;
};

static gboolean no_save(void *user, const struct piv_data *d, GError **error)
{
	return TRUE;
}

static int cc_power_on(void *card)
{
	struct counting_card *c = card;
	static const guint8 atr[] = { 0x3B, 0x80, 0x01, 0x81 };

	piv_applet_reset(c->applet);
	ccid_slot_power_on_done(c->slot, CCID_CARD_OK, atr, sizeof(atr));
	return 0;
}

static void cc_power_off(void *card)
{
}

static int cc_transmit(void *card, const uint8_t *apdu, size_t len)
{
	struct counting_card *c = card;
	g_autofree char *h = test_tohex(apdu, len, " ");
	size_t n;

	g_string_append_printf(c->seen, "%s%s", c->seen->len ? ";" : "", h);
	if (c->refuse_next) {
		c->refuse_next = 0;
		return -1;
	}
	if (c->fail_next != CCID_CARD_OK) {
		enum ccid_card_status st = c->fail_next;

		c->fail_next = CCID_CARD_OK;
		ccid_slot_apdu_done(c->slot, st, NULL, 0);
		return 0;
	}
	n = piv_applet_process(c->applet, apdu, len, c->resp);
	ccid_slot_apdu_done(c->slot, CCID_CARD_OK, c->resp, n);
	return 0;
}

static void cc_cancel(void *card)
{
	((struct counting_card *)card)->n_cancel++;
}

static const struct ccid_card_ops counting_ops = {
	.name = "counting PIV applet",
	.power_on = cc_power_on,
	.power_off = cc_power_off,
	.transmit = cc_transmit,
	.cancel = cc_cancel,
};

struct rig {
	ccid_dev *dev;
	struct counting_card card;
	ccid_card_pin_guard *guard;
	unsigned refused_calls;
	guint8 last_refused_ins, last_refused_ref;
	guint8 seq;
	guint8 *msg;
};

static uint64_t t_now(void *user)
{
	return 0;
}

static void t_timer(void *user, int64_t deadline)
{
}

static const struct ccid_transport_ops tops = {
	.now_ms = t_now,
	.timer_update = t_timer,
};

static void on_refused(void *user, uint8_t ins, uint8_t ref)
{
	struct rig *r = user;

	r->refused_calls++;
	r->last_refused_ins = ins;
	r->last_refused_ref = ref;
}

/* Pulls one whole bulk-IN message into r->msg; returns its length. */
static size_t pull_msg(struct rig *r)
{
	size_t have = 0;
	int n;

	do {
		n = ccid_dev_bulk_in_pull(r->dev, r->msg + have, 4096);
		ck_assert_int_ne(n, CCID_PULL_NONE);
		have += (size_t)n;
	} while (n == 4096);
	return have;
}

static void rig_init(struct rig *r, uint32_t max_msg)
{
	struct ccid_config cfg;
	const struct ccid_card_pin_guard_config gcfg = {
		.refused = on_refused,
		.user = r,
	};
	static const guint8 set_config[8] = { 0x00, 0x09, 0x01, 0x00,
					      0x00, 0x00, 0x00, 0x00 };
	/* IccPowerOn, slot 0, seq 0, automatic voltage */
	static const guint8 power_on[10] = { 0x62 };
	size_t n;

	memset(r, 0, sizeof(*r));
	r->msg = g_malloc(70000);
	ccid_config_init(&cfg);
	cfg.max_message_len = max_msg;
	r->dev = ccid_dev_new(&cfg, &tops, r, NULL);
	ck_assert_ptr_nonnull(r->dev);
	r->card.slot = ccid_dev_get_slot(r->dev, 0);
	r->card.applet = piv_applet_new(piv_data_new_default(), no_save, NULL);
	r->card.resp = g_malloc(PIV_APPLET_RESP_CAP);
	r->card.seen = g_string_new(NULL);
	r->guard = ccid_card_pin_guard_new(r->card.slot, &counting_ops,
					   &r->card, &gcfg);
	ccid_card_pin_guard_bind(r->guard, true);
	ck_assert_int_eq(ccid_dev_control(r->dev, set_config, NULL, 0), 0);
	ccid_dev_bulk_out(r->dev, power_on, sizeof(power_on));
	n = pull_msg(r);
	ck_assert_uint_eq(r->msg[0], 0x80);   /* RDR_to_PC_DataBlock */
	ck_assert_uint_eq(n, 10 + 4);
	r->seq = 1;
}

static void rig_clear(struct rig *r)
{
	ccid_dev_free(r->dev);
	ccid_card_pin_guard_free(r->guard);
	piv_applet_free(r->card.applet);
	g_free(r->card.resp);
	g_string_free(r->card.seen, TRUE);
	g_free(r->msg);
}

/* One XfrBlock with @apdu (chained in CCID parts when it does not fit one
 * message); returns the response APDU as hex. */
static char *rig_xfr(struct rig *r, const GByteArray *apdu, uint32_t max_msg)
{
	uint32_t room = max_msg - 10, off = 0;
	GByteArray *resp = g_byte_array_new();
	char *hex;

	do {
		uint32_t part = MIN(room, apdu->len - off);
		/* wLevelParameter (CCID 1.1 §6.1.4): 0 whole, 1 begins,
		 * 3 continues, 2 ends a chained command. */
		guint16 level = apdu->len <= room ? 0 :
				off == 0 ? 1 : off + part == apdu->len ? 2 : 3;
		g_autofree guint8 *m = g_malloc0(10 + part);
		size_t n;

		m[0] = 0x6F;
		m[1] = part & 0xFF;
		m[2] = (part >> 8) & 0xFF;
		m[6] = r->seq++;
		m[8] = level & 0xFF;
		memcpy(m + 10, apdu->data + off, part);
		ccid_dev_bulk_out(r->dev, m, 10 + part);
		off += part;
		n = pull_msg(r);
		ck_assert_uint_eq(r->msg[0], 0x80);
		ck_assert_msg(r->msg[7] == 0, "bStatus %02X bError %02X",
			      r->msg[7], r->msg[8]);
		if (off < apdu->len) {
			/* An empty DataBlock, bChainParameter 10: go on. */
			ck_assert_uint_eq(n, 10);
			ck_assert_uint_eq(r->msg[9], 0x10);
			continue;
		}
		g_byte_array_append(resp, r->msg + 10, (guint)(n - 10));
	} while (off < apdu->len);
	hex = test_tohex(resp->data, resp->len, " ");
	g_byte_array_unref(resp);
	return hex;
}

struct layer_row {
	const char *what;
	const char *apdu;     /* from the guest */
	const char *answer;   /* to the guest */
	const char *seen;     /* what the card saw, ";"-separated */
};

static void run_rows(struct rig *r, const struct layer_row *rows, guint n,
		     uint32_t max_msg)
{
	for (guint i = 0; i < n; i++) {
		g_autoptr(GByteArray) a = test_unhex(rows[i].apdu);
		g_autoptr(GByteArray) want = test_unhex(rows[i].answer);
		g_autofree char *want_hex = test_tohex(want->data, want->len,
							" ");
		g_autofree char *got = NULL;
		g_autofree char *want_seen = NULL;

		g_string_truncate(r->card.seen, 0);
		got = rig_xfr(r, a, max_msg);
		ck_assert_msg(strcmp(got, want_hex) == 0, "%s: answered %s, expected %s",
			      rows[i].what, got, want_hex);
		/* Normalise the expected card log to tohex()'s spacing. */
		{
			g_auto(GStrv) parts = g_strsplit(rows[i].seen, ";", -1);
			GString *s = g_string_new(NULL);

			for (guint k = 0; parts[k] != NULL; k++) {
				g_autoptr(GByteArray) b = test_unhex(parts[k]);
				g_autofree char *h = test_tohex(b->data, b->len, " ");

				if (b->len == 0)
					continue;
				g_string_append_printf(s, "%s%s", s->len ? ";" : "", h);
			}
			want_seen = g_string_free(s, FALSE);
		}
		ck_assert_msg(strcmp(r->card.seen->str, want_seen) == 0,
			      "%s: the card saw %s, expected %s", rows[i].what,
			      r->card.seen->str, want_seen);
	}
}

/* SELECT of the PIV application, P2 0C: no response data. */
#define SELECT_PIV "00 A4 04 0C 05 A0 00 00 03 08"

/* A guessing guest against the default PIN (3 tries). */
static const struct layer_row guess_rows[] = {
	{ "SELECT passes untouched", SELECT_PIV, "90 00", SELECT_PIV },
	{ "the guest's own query passes", "00 20 00 80", "63 C3", "00 20 00 80" },
	{ "guess 1: asked first, then forwarded", "00 20 00 80 08 " PIN_999999, "63 C2",
	  "00 20 00 80;00 20 00 80 08 " PIN_999999 },
	{ "guess 2: forwarded, 1 left", "00 20 00 80 08 " PIN_999999, "63 C1",
	  "00 20 00 80;00 20 00 80 08 " PIN_999999 },
	{ "guess 3: refused, never reaches the card", "00 20 00 80 08 " PIN_999999, "63 C1",
	  "00 20 00 80" },
	{ "guess 3 again, extended length: refused", "00 20 00 80 00 00 08 " PIN_999999 " 00 00",
	  "63 C1", "00 20 00 80" },
	{ "guess 3 as a chain: its first part is refused",
	  "10 20 00 80 04 39 39 39 39", "63 C1", "00 20 00 80" },
	{ "guess 3 by CHANGE REFERENCE DATA: refused",
	  "00 24 00 80 10 " PIN_999999 PIN_999999, "63 C1", "00 20 00 80" },
	{ "guess 3 by odd-INS VERIFY: refused", "00 21 00 80 03 53 01 00", "63 C1",
	  "00 20 00 80" },
	{ "the card still has its last try", "00 20 00 80", "63 C1", "00 20 00 80" },
};

/* Two wrong PINs reach the card; every later guess, in any encoding, is
 * answered 63C1 by the guard and never reaches it: the card keeps its
 * last try for the host user. */
START_TEST(test_layer_guessing_guest)
{
	struct rig r;

	rig_init(&r, CCID_EMU_DEFAULT_MAX_MSG);
	run_rows(&r, guess_rows, G_N_ELEMENTS(guess_rows), CCID_EMU_DEFAULT_MAX_MSG);
	ck_assert_uint_eq(ccid_card_pin_guard_refusals(r.guard), 5);
	ck_assert_uint_eq(r.refused_calls, 5);
	ck_assert_uint_eq(r.last_refused_ins, 0x21);
	ck_assert_uint_eq(r.last_refused_ref, 0x80);
	ck_assert_int_eq(ccid_card_pin_guard_tries_left(r.guard, 0x80), 1);
	ck_assert_uint_eq(piv_applet_get_data(r.card.applet)->pin_left, 1);
	rig_clear(&r);
}
END_TEST

/* Right PINs and chains through the guard while tries remain; the query
 * never lands inside a chain. */
static const struct layer_row chain_rows[] = {
	{ "SELECT", SELECT_PIV, "90 00", SELECT_PIV },
	{ "the right PIN in two chained parts: first part, asked first",
	  "10 20 00 80 04 31 32 33 34", "90 00", "00 20 00 80;10 20 00 80 04 31 32 33 34" },
	{ "... last part: no query inside the chain", "00 20 00 80 04 35 36 FF FF", "90 00",
	  "00 20 00 80 04 35 36 FF FF" },
	{ "verified", "00 20 00 80", "90 00", "00 20 00 80" },
	{ "a wrong PIN, extended length: 2 left", "00 20 00 80 00 00 08 " PIN_999999,
	  "63 C2", "00 20 00 80;00 20 00 80 00 00 08 " PIN_999999 },
	{ "the right PIN: counter back to 3", "00 20 00 80 08 " PIN_123456, "90 00",
	  "00 20 00 80;00 20 00 80 08 " PIN_123456 },
	{ "case-1 query", "00 20 00 80", "90 00", "00 20 00 80" },
};

START_TEST(test_layer_chains)
{
	struct rig r;

	rig_init(&r, CCID_EMU_DEFAULT_MAX_MSG);
	run_rows(&r, chain_rows, G_N_ELEMENTS(chain_rows), CCID_EMU_DEFAULT_MAX_MSG);
	ck_assert_uint_eq(ccid_card_pin_guard_refusals(r.guard), 0);
	ck_assert_uint_eq(piv_applet_get_data(r.card.applet)->pin_left, 3);
	rig_clear(&r);
}
END_TEST

/* The PUK: VERIFY of 0x81 tells nothing (6A88), so the guard learns the
 * count from the answers to RESET RETRY COUNTER and CHANGE REFERENCE
 * DATA of 0x81. */
static const struct layer_row puk_rows[] = {
	{ "SELECT", SELECT_PIV, "90 00", SELECT_PIV },
	{ "wrong PUK 1: the query tells nothing, forwarded",
	  "00 2C 00 80 10 " PUK_99999999 PIN_123456, "63 C2",
	  "00 20 00 81;00 2C 00 80 10 " PUK_99999999 PIN_123456 },
	{ "wrong PUK 2 by CHANGE REFERENCE DATA of 0x81: 1 left",
	  "00 24 00 81 10 " PUK_99999999 PUK_99999999, "63 C1",
	  "00 20 00 81;00 24 00 81 10 " PUK_99999999 PUK_99999999 },
	{ "wrong PUK 3: refused", "00 2C 00 80 10 " PUK_99999999 PIN_123456, "63 C1",
	  "00 20 00 81" },
	{ "the right PUK is refused too: the guard cannot tell",
	  "00 2C 00 80 10 " PUK_12345678 PIN_123456, "63 C1", "00 20 00 81" },
	{ "the PIN is still fine", "00 20 00 80 08 " PIN_123456, "90 00",
	  "00 20 00 80;00 20 00 80 08 " PIN_123456 },
};

START_TEST(test_layer_puk)
{
	struct rig r;

	rig_init(&r, CCID_EMU_DEFAULT_MAX_MSG);
	run_rows(&r, puk_rows, G_N_ELEMENTS(puk_rows), CCID_EMU_DEFAULT_MAX_MSG);
	ck_assert_uint_eq(piv_applet_get_data(r.card.applet)->puk_left, 1);
	ck_assert_uint_eq(r.last_refused_ref, 0x81);
	rig_clear(&r);
}
END_TEST

/* A reader with the smallest dwMaxCCIDMessageLength (271) chains a long
 * extended VERIFY in CCID parts; the device joins them, so the guard
 * judges the whole APDU. */
START_TEST(test_layer_ccid_chaining)
{
	static const struct layer_row rows[] = {
		{ "SELECT", SELECT_PIV, "90 00", SELECT_PIV },
		{ "wrong PIN 1", "00 20 00 80 08 " PIN_999999, "63 C2",
		  "00 20 00 80;00 20 00 80 08 " PIN_999999 },
		{ "wrong PIN 2", "00 20 00 80 08 " PIN_999999, "63 C1",
		  "00 20 00 80;00 20 00 80 08 " PIN_999999 },
	};
	GString *big = g_string_new("00 20 00 80 00 01 2C");   /* Lc 300 */
	struct layer_row last = { "300-byte VERIFY in 2 CCID parts: refused",
				  NULL, "63 C1", "00 20 00 80" };
	struct rig r;

	for (int i = 0; i < 300; i++)
		g_string_append(big, " 39");
	last.apdu = big->str;
	rig_init(&r, CCID_EMU_MIN_MAX_MSG);
	run_rows(&r, rows, G_N_ELEMENTS(rows), CCID_EMU_MIN_MAX_MSG);
	run_rows(&r, &last, 1, CCID_EMU_MIN_MAX_MSG);
	ck_assert_uint_eq(ccid_card_pin_guard_refusals(r.guard), 1);
	rig_clear(&r);
	g_string_free(big, TRUE);
}
END_TEST

/* One XfrBlock whose answer is a failure; returns bError. */
static guint8 rig_xfr_fails(struct rig *r, const char *apdu_hex)
{
	g_autoptr(GByteArray) a = test_unhex(apdu_hex);
	g_autofree guint8 *m = g_malloc0(10 + a->len);
	size_t n;

	m[0] = 0x6F;
	m[1] = (guint8)a->len;
	m[6] = r->seq++;
	memcpy(m + 10, a->data, a->len);
	ccid_dev_bulk_out(r->dev, m, 10 + a->len);
	n = pull_msg(r);
	ck_assert_uint_eq(n, 10);
	ck_assert_uint_eq(r->msg[7] >> 6, 1);    /* bmCommandStatus: failed */
	return r->msg[8];
}

/* Error paths: a query the card fails, a forward the backend cannot
 * start; the guest's command fails cleanly, the guard holds nothing and
 * the next command works. */
START_TEST(test_layer_errors)
{
	static const struct layer_row select_row[] = {
		{ "SELECT", SELECT_PIV, "90 00", SELECT_PIV },
	};
	static const struct layer_row after[] = {
		{ "afterwards a VERIFY goes through as usual",
		  "00 20 00 80 08 " PIN_999999, "63 C2",
		  "00 20 00 80;00 20 00 80 08 " PIN_999999 },
	};
	struct rig r;

	rig_init(&r, CCID_EMU_DEFAULT_MAX_MSG);
	run_rows(&r, select_row, 1, CCID_EMU_DEFAULT_MAX_MSG);
	/* The card is gone when the guard asks: ICC_MUTE (FE), nothing
	 * forwarded. */
	r.card.fail_next = CCID_CARD_ENOCARD;
	g_string_truncate(r.card.seen, 0);
	ck_assert_uint_eq(rig_xfr_fails(&r, "00 20 00 80 08 " PIN_999999), 0xFE);
	ck_assert_str_eq(r.card.seen->str, "00 20 00 80");
	rig_clear(&r);

	rig_init(&r, CCID_EMU_DEFAULT_MAX_MSG);
	run_rows(&r, select_row, 1, CCID_EMU_DEFAULT_MAX_MSG);
	/* The backend refuses to start the query: HW_ERROR (FB). */
	r.card.refuse_next = 1;
	ck_assert_uint_eq(rig_xfr_fails(&r, "00 20 00 80 08 " PIN_999999), 0xFB);
	run_rows(&r, after, 1, CCID_EMU_DEFAULT_MAX_MSG);
	ck_assert_uint_eq(piv_applet_get_data(r.card.applet)->pin_left, 2);
	rig_clear(&r);
}
END_TEST

static Suite *pin_guard_suite(void)
{
	Suite *s = suite_create("pin-guard");
	TCase *tc = tcase_create("tables");

	tcase_add_test(tc, test_classify);
	tcase_add_test(tc, test_query);
	tcase_add_test(tc, test_learn);
	tcase_add_test(tc, test_redact);
	suite_add_tcase(s, tc);
	tc = tcase_create("layer");
	tcase_add_test(tc, test_layer_guessing_guest);
	tcase_add_test(tc, test_layer_chains);
	tcase_add_test(tc, test_layer_puk);
	tcase_add_test(tc, test_layer_ccid_chaining);
	tcase_add_test(tc, test_layer_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pin_guard_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
