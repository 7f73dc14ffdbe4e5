/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the virtual PIV card's applet (suite 'unit'): APDU
 * test-vector tables per command, run in order on one fresh card each, and
 * cryptographic round trips checked with OpenSSL on the test side.
 *
 * Table rows are hex strings (spaces ignored).  An expected answer that
 * starts with '*' only fixes its last bytes: "* 9000" is any data then
 * 90 00.  A row whose command is "@mgmt" authenticates with the default
 * 3DES management key (the host side computed here with OpenSSL).
 */
#include <check.h>
#include <glib.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <string.h>

#include "ccid_piv_applet.h"
#include "ccid_piv_data.h"

#include "test_hex.h"

/* --- helpers ---------------------------------------------------------------- */

struct saves {
	unsigned n;
	uint8_t pin_left_at_save[16];
	gboolean fail;
};

static gboolean record_save(void *user, const struct piv_data *d,
			    GError **error)
{
	struct saves *s = user;

	if (s->n < G_N_ELEMENTS(s->pin_left_at_save))
		s->pin_left_at_save[s->n] = d->pin_left;
	s->n++;
	if (s->fail) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC,
			    "disk full (test)");
		return FALSE;
	}
	return TRUE;
}

static struct saves saves;

static piv_applet *fresh(void)
{
	memset(&saves, 0, sizeof(saves));
	return piv_applet_new(piv_data_new_default(), record_save, &saves);
}

/* Sends @cmd; returns the whole response (data + SW). */
static GByteArray *xfer(piv_applet *a, const guint8 *cmd, gsize len)
{
	GByteArray *r = g_byte_array_sized_new(PIV_APPLET_RESP_CAP);
	size_t n;

	g_byte_array_set_size(r, PIV_APPLET_RESP_CAP);
	n = piv_applet_process(a, cmd, len, r->data);
	ck_assert_uint_ge(n, 2);
	ck_assert_uint_le(n, PIV_APPLET_RESP_CAP);
	g_byte_array_set_size(r, (guint)n);
	return r;
}

static unsigned sw_of(const GByteArray *r)
{
	return (unsigned)r->data[r->len - 2] << 8 | r->data[r->len - 1];
}

/* The status word of @cmd; the response is dropped. */
static unsigned sw_bytes(piv_applet *a, const guint8 *cmd, gsize len)
{
	g_autoptr(GByteArray) r = xfer(a, cmd, len);

	return sw_of(r);
}

static GByteArray *xfer_hex(piv_applet *a, const char *cmd)
{
	g_autoptr(GByteArray) c = test_unhex(cmd);

	return xfer(a, c->data, c->len);
}

static unsigned sw_hex(piv_applet *a, const char *cmd)
{
	g_autoptr(GByteArray) r = xfer_hex(a, cmd);

	return sw_of(r);
}

static void block_op(uint8_t alg, const guint8 *key, gboolean enc,
		     const guint8 *in, guint8 *out)
{
	const char *name = alg == PIV_ALG_3DES ? "DES-EDE3-ECB" :
			   alg == PIV_ALG_AES128 ? "AES-128-ECB" :
			   alg == PIV_ALG_AES192 ? "AES-192-ECB" : "AES-256-ECB";
	int bl = alg == PIV_ALG_3DES ? 8 : 16;
	EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, name, NULL);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, f = 0;

	ck_assert(c != NULL && ctx != NULL);
	ck_assert_int_eq(EVP_CipherInit_ex2(ctx, c, key, NULL, enc, NULL), 1);
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	ck_assert_int_eq(EVP_CipherUpdate(ctx, out, &n, in, bl), 1);
	ck_assert_int_eq(EVP_CipherFinal_ex(ctx, out + n, &f), 1);
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
}

/* Host side of SP 800-73-4 mutual authentication with the management key:
 * returns the SW of the second step (the card's response checked too). */
static unsigned mgmt_auth(piv_applet *a, uint8_t alg, const guint8 *key,
			  gboolean right_key)
{
	int bl = alg == PIV_ALG_3DES ? 8 : 16;
	guint8 cmd[64], wit[16], chal[16], expect[16];
	g_autoptr(GByteArray) r1 = NULL;
	g_autoptr(GByteArray) r2 = NULL;
	size_t n = 0;

	/* 00 87 alg 9B 04 7C 02 80 00: ask for a witness */
	memcpy(cmd, (guint8[]){ 0x00, 0x87, alg, 0x9B, 0x04, 0x7C, 0x02, 0x80,
				0x00 }, 9);
	r1 = xfer(a, cmd, 9);
	if (sw_of(r1) != 0x9000)
		return sw_of(r1);
	/* 7C L 80 bl Enc(W) */
	ck_assert_uint_eq(r1->len, (guint)(4 + bl + 2));
	ck_assert(r1->data[0] == 0x7C && r1->data[2] == 0x80 &&
		  r1->data[3] == bl);
	block_op(alg, key, FALSE, r1->data + 4, wit);
	if (!right_key)
		wit[0] ^= 1;
	for (int i = 0; i < bl; i++)
		chal[i] = (guint8)(0xA0 + i);
	cmd[n++] = 0x00; cmd[n++] = 0x87; cmd[n++] = alg; cmd[n++] = 0x9B;
	cmd[n++] = (guint8)(6 + 2 * bl);
	cmd[n++] = 0x7C; cmd[n++] = (guint8)(4 + 2 * bl);
	cmd[n++] = 0x80; cmd[n++] = (guint8)bl;
	memcpy(cmd + n, wit, bl); n += bl;
	cmd[n++] = 0x81; cmd[n++] = (guint8)bl;
	memcpy(cmd + n, chal, bl); n += bl;
	r2 = xfer(a, cmd, n);
	if (sw_of(r2) != 0x9000)
		return sw_of(r2);
	/* 7C L 82 bl Enc(challenge): the card knows the key too */
	block_op(alg, key, TRUE, chal, expect);
	ck_assert_uint_eq(r2->len, (guint)(4 + bl + 2));
	ck_assert(r2->data[2] == 0x82);
	ck_assert_mem_eq(r2->data + 4, expect, (size_t)bl);
	return 0x9000;
}

static unsigned default_mgmt(piv_applet *a)
{
	return mgmt_auth(a, PIV_ALG_3DES, piv_default_mgmt_key, TRUE);
}

struct row {
	const char *what;
	const char *cmd;
	const char *resp;
};

static void run_rows(piv_applet *a, const struct row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		g_autoptr(GByteArray) want = NULL;
		g_autoptr(GByteArray) got = NULL;
		g_autofree char *got_hex = NULL;
		gboolean tail = rows[i].resp[0] == '*';

		if (strcmp(rows[i].cmd, "@mgmt") == 0) {
			ck_assert_msg(default_mgmt(a) == 0x9000, "%s",
				      rows[i].what);
			continue;
		}
		want = test_unhex(rows[i].resp);
		got = xfer_hex(a, rows[i].cmd);
		got_hex = test_tohex(got->data, got->len, "");
		if (tail)
			ck_assert_msg(got->len >= want->len &&
				      memcmp(got->data + got->len - want->len,
					     want->data, want->len) == 0,
				      "%s: got %s, want %s", rows[i].what,
				      got_hex, rows[i].resp);
		else
			ck_assert_msg(got->len == want->len &&
				      memcmp(got->data, want->data,
					     want->len) == 0,
				      "%s: got %s, want %s", rows[i].what,
				      got_hex, rows[i].resp);
	}
}

#define RUN(a, rows) run_rows(a, rows, G_N_ELEMENTS(rows))

/* PIN "123456" and friends, 0xFF-padded. */
#define PIN_123456   "313233343536FFFF"
#define PIN_123457   "313233343537FFFF"
#define PIN_654321   "363534333231FFFF"
#define PUK_12345678 "3132333435363738"
#define PUK_87654321 "3837363534333231"

/* --- SELECT ----------------------------------------------------------------- */

static const struct row select_rows[] = {
	{ "SELECT with the PIV RID only (right-truncated AID)",
	  "00 A4 04 00 05 A0 00 00 03 08",
	  "61 41  4F 06 000010000100  79 07 4F 05 A000000308"
	  "  50 14 63636964 2D656D75 20766972 7475616C 20504956"
	  "  AC 18 800103 800108 80010A 80010C 800107 800111 800114 060100"
	  "  9000" },
	{ "SELECT with the full AID and Le", "00 A4 04 00 0B A0000003080000100001 00 00",
	  "* AC 18 800103 800108 80010A 80010C 800107 800111 800114 060100 9000" },
	{ "SELECT with P2 0C: no response data", "00 A4 04 0C 05 A0 00 00 03 08", "9000" },
	{ "SELECT with P2 04", "00 A4 04 04 05 A0 00 00 03 08", "6A86" },
	{ "SELECT of another application", "00 A4 04 00 05 A0 00 00 00 03", "6A82" },
	{ "SELECT with an AID longer than PIV's", "00 A4 04 00 0C A000000308000010000100 01", "6A82" },
	{ "SELECT with a 4-byte AID", "00 A4 04 00 04 A0 00 00 03", "6A82" },
	{ "SELECT by file id (P1 00)", "00 A4 00 00 02 3F 00", "6A86" },
	{ "unknown class", "80 A4 04 00 05 A0 00 00 03 08", "6E00" },
	{ "unknown instruction", "00 12 00 00", "6D00" },
	{ "malformed APDU: Lc says 5, 3 bytes follow", "00 A4 04 00 05 A0 00 00", "6700" },
	{ "GET RESPONSE with nothing pending", "00 C0 00 00 00", "6985" },
};

START_TEST(test_select)
{
	g_autoptr(piv_applet) a = fresh();

	RUN(a, select_rows);
	ck_assert_uint_eq(saves.n, 0);
}
END_TEST

/* --- VERIFY ----------------------------------------------------------------- */

static const struct row verify_rows[] = {
	{ "status of a fresh card: 3 tries", "00 20 00 80", "63C3" },
	{ "status with Le = 0 is the same query", "00 20 00 80 00", "63C3" },
	{ "wrong PIN", "00 20 00 80 08 " PIN_123457, "63C2" },
	{ "status after a wrong PIN", "00 20 00 80", "63C2" },
	{ "right PIN restores the counter", "00 20 00 80 08 " PIN_123456, "9000" },
	{ "status once verified", "00 20 00 80", "9000" },
	{ "P1 FF forgets the verification", "00 20 FF 80", "9000" },
	{ "status after the reset", "00 20 00 80", "63C3" },
	{ "P1 FF with data", "00 20 FF 80 01 00", "6A80" },
	{ "P1 FF of the PUK", "00 20 FF 81", "6A88" },
	{ "VERIFY of the PUK reference", "00 20 00 81 08 " PUK_12345678, "6A88" },
	{ "VERIFY of the global PIN", "00 20 00 00 08 " PIN_123456, "6A88" },
	{ "P1 01", "00 20 01 80 08 " PIN_123456, "6A86" },
	{ "PIN of 6 bytes (not padded) costs no try", "00 20 00 80 06 313233343536", "6A80" },
	{ "status: still 3", "00 20 00 80", "63C3" },
	{ "wrong 1", "00 20 00 80 08 " PIN_123457, "63C2" },
	{ "wrong 2", "00 20 00 80 08 " PIN_123457, "63C1" },
	{ "wrong 3 blocks", "00 20 00 80 08 " PIN_123457, "6983" },
	{ "right PIN on a blocked card", "00 20 00 80 08 " PIN_123456, "6983" },
	{ "status of a blocked PIN", "00 20 00 80", "6983" },
};

START_TEST(test_verify)
{
	g_autoptr(piv_applet) a = fresh();

	RUN(a, verify_rows);
	ck_assert_uint_eq(piv_applet_get_data(a)->pin_left, 0);
}
END_TEST

/* The counter is written down *before* the answer, and before the
 * comparison: a wrong PIN saves 2; a right one saves 2 and then 3. */
START_TEST(test_verify_persists_first)
{
	g_autoptr(piv_applet) a = fresh();

	ck_assert_uint_eq(sw_hex(a, "00 20 00 80 08 " PIN_123457), 0x63C2);
	ck_assert_uint_eq(saves.n, 1);
	ck_assert_uint_eq(saves.pin_left_at_save[0], 2);
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80 08 " PIN_123456), 0x9000);
	ck_assert_uint_eq(saves.n, 3);
	ck_assert_uint_eq(saves.pin_left_at_save[1], 1);
	ck_assert_uint_eq(saves.pin_left_at_save[2], 3);
	/* A store that cannot write: 65 81, the PIN is not accepted, and the
	 * try is still counted in memory. */
	saves.fail = TRUE;
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80 08 " PIN_123456), 0x6581);
	ck_assert_uint_eq(piv_applet_get_data(a)->pin_left, 2);
	ck_assert_str_eq(piv_applet_last_save_error(a), "disk full (test)");
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80"), 0x63C2);
	saves.fail = FALSE;
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80 08 " PIN_123456), 0x9000);
	ck_assert_ptr_null(piv_applet_last_save_error(a));
}
END_TEST

/* --- CHANGE REFERENCE DATA, RESET RETRY COUNTER ----------------------------- */

static const struct row change_rows[] = {
	{ "change PIN 123456 -> 654321",
	  "00 24 00 80 10 " PIN_123456 PIN_654321, "9000" },
	{ "...which leaves the PIN verified", "00 20 00 80", "9000" },
	{ "the old PIN is wrong now", "00 20 00 80 08 " PIN_123456, "63C2" },
	{ "the new one is right", "00 20 00 80 08 " PIN_654321, "9000" },
	{ "change with a wrong old PIN", "00 24 00 80 10 " PIN_123457 PIN_123456, "63C2" },
	{ "...which also resets the PIN status", "00 20 00 80", "63C2" },
	{ "new PIN of 5 digits", "00 24 00 80 10 " PIN_654321 "3132333435FFFFFF", "6A80" },
	{ "new PIN with a byte after the padding", "00 24 00 80 10 " PIN_654321 "313233343536FF37", "6A80" },
	{ "...neither cost a try", "00 20 00 80", "63C2" },
	{ "data of 15 bytes", "00 24 00 80 0F " PIN_654321 "31323334353637", "6A80" },
	{ "change PUK 12345678 -> 87654321",
	  "00 24 00 81 10 " PUK_12345678 PUK_87654321, "9000" },
	{ "change PUK with the old PUK", "00 24 00 81 10 " PUK_12345678 PUK_87654321, "63C2" },
	{ "unknown reference 82", "00 24 00 82 10 " PUK_12345678 PUK_87654321, "6A88" },
	{ "P1 01", "00 24 01 80 10 " PIN_654321 PIN_123456, "6A86" },
};

START_TEST(test_change_reference)
{
	g_autoptr(piv_applet) a = fresh();

	RUN(a, change_rows);
}
END_TEST

static const struct row unblock_rows[] = {
	{ "wrong PIN 1", "00 20 00 80 08 " PIN_123457, "63C2" },
	{ "wrong PIN 2", "00 20 00 80 08 " PIN_123457, "63C1" },
	{ "wrong PIN 3: blocked", "00 20 00 80 08 " PIN_123457, "6983" },
	{ "CHANGE REFERENCE DATA on a blocked PIN", "00 24 00 80 10 " PIN_123456 PIN_654321, "6983" },
	{ "Yubico RESET needs the PUK blocked too", "00 FB 00 00", "6985" },
	{ "RESET RETRY COUNTER with a wrong PUK", "00 2C 00 80 10 " PUK_87654321 PIN_654321, "63C2" },
	{ "RESET RETRY COUNTER with a malformed new PIN", "00 2C 00 80 10 " PUK_12345678 "31FFFFFFFFFFFFFF", "6A80" },
	{ "RESET RETRY COUNTER of the PUK reference", "00 2C 00 81 10 " PUK_12345678 PIN_654321, "6A88" },
	{ "RESET RETRY COUNTER P1 01", "00 2C 01 80 10 " PUK_12345678 PIN_654321, "6A86" },
	{ "RESET RETRY COUNTER: PUK + new PIN 654321", "00 2C 00 80 10 " PUK_12345678 PIN_654321, "9000" },
	{ "the PIN has 3 tries again", "00 20 00 80", "63C3" },
	{ "and is the new one", "00 20 00 80 08 " PIN_654321, "9000" },
	{ "block the PUK: 1", "00 2C 00 80 10 " PUK_87654321 PIN_123456, "63C2" },
	{ "block the PUK: 2", "00 2C 00 80 10 " PUK_87654321 PIN_123456, "63C1" },
	{ "block the PUK: 3", "00 2C 00 80 10 " PUK_87654321 PIN_123456, "6983" },
	{ "the right PUK no longer helps", "00 2C 00 80 10 " PUK_12345678 PIN_123456, "6983" },
	{ "CHANGE REFERENCE DATA of a blocked PUK", "00 24 00 81 10 " PUK_12345678 PUK_87654321, "6983" },
	{ "RESET with the PIN still usable", "00 FB 00 00", "6985" },
	{ "block the PIN: 1", "00 20 00 80 08 " PIN_123457, "63C2" },
	{ "block the PIN: 2", "00 20 00 80 08 " PIN_123457, "63C1" },
	{ "block the PIN: 3", "00 20 00 80 08 " PIN_123457, "6983" },
	{ "RESET with P1 01", "00 FB 01 00", "6A86" },
	{ "RESET of a card whose PIN and PUK are blocked", "00 FB 00 00", "9000" },
	{ "the default PIN works again", "00 20 00 80 08 " PIN_123456, "9000" },
	{ "the default PUK too", "00 24 00 81 10 " PUK_12345678 PUK_12345678, "9000" },
};

START_TEST(test_unblock_and_reset)
{
	g_autoptr(piv_applet) a = fresh();

	RUN(a, unblock_rows);
}
END_TEST

/* --- GET DATA, PUT DATA ------------------------------------------------------ */

static const struct row data_rows[] = {
	{ "GET DATA of the CHUID of a new card", "00 CB 3F FF 05 5C 03 5FC102 00", "6A82" },
	{ "GET DATA of the discovery object: the default one",
	  "00 CB 3F FF 03 5C 01 7E 00",
	  "7E 12 4F 0B A0000003080000100001 00 5F2F 02 4000 9000" },
	{ "PUT DATA without the management key", "00 DB 3F FF 09 5C 03 5FC102 53 02 AABB", "6982" },
	{ "authenticate with the management key", "@mgmt", "" },
	{ "PUT DATA of the CHUID", "00 DB 3F FF 09 5C 03 5FC102 53 02 AABB", "9000" },
	{ "GET DATA of the CHUID", "00 CB 3F FF 05 5C 03 5FC102 00", "53 02 AABB 9000" },
	{ "GET DATA without Le answers as Le 00", "00 CB 3F FF 05 5C 03 5FC102", "53 02 AABB 9000" },
	{ "PUT DATA of the 9A certificate", "00 DB 3F FF 0A 5C 03 5FC105 53 03 700100", "9000" },
	{ "PUT DATA of a retired-slot certificate (82)", "00 DB 3F FF 08 5C 03 5FC10D 53 01 01", "9000" },
	{ "GET DATA of it", "00 CB 3F FF 05 5C 03 5FC10D 00", "53 01 01 9000" },
	{ "PUT DATA of the printed information", "00 DB 3F FF 08 5C 03 5FC109 53 01 99", "9000" },
	{ "GET DATA of the printed information needs the PIN", "00 CB 3F FF 05 5C 03 5FC109 00", "6982" },
	{ "VERIFY", "00 20 00 80 08 " PIN_123456, "9000" },
	{ "...and then it is readable", "00 CB 3F FF 05 5C 03 5FC109 00", "53 01 99 9000" },
	{ "PUT DATA with an empty value deletes", "00 DB 3F FF 07 5C 03 5FC102 53 00", "9000" },
	{ "GET DATA of the deleted CHUID", "00 CB 3F FF 05 5C 03 5FC102 00", "6A82" },
	{ "PUT DATA of the discovery object in its own form",
	  "00 DB 3F FF 05 7E 03 4F 01 AA", "9000" },
	{ "GET DATA of it", "00 CB 3F FF 03 5C 01 7E 00", "7E 03 4F 01 AA 9000" },
	{ "PUT DATA of the discovery object in 53", "00 DB 3F FF 06 5C 01 7E 53 01 00", "6A80" },
	{ "PUT DATA of an unknown object", "00 DB 3F FF 08 5C 03 5FC1FF 53 01 01", "6A82" },
	{ "PUT DATA with data after 53", "00 DB 3F FF 09 5C 03 5FC102 53 01 01 00", "6A80" },
	{ "PUT DATA with a 53 longer than the data", "00 DB 3F FF 08 5C 03 5FC102 53 05 01", "6A80" },
	{ "PUT DATA with a 4-byte tag", "00 DB 3F FF 09 5C 04 5FC10201 53 01 01", "6A80" },
	{ "PUT DATA with P1 P2 00 00", "00 DB 00 00 08 5C 03 5FC102 53 01 01", "6A86" },
	{ "GET DATA of an unknown object", "00 CB 3F FF 05 5C 03 5FC1FF 00", "6A82" },
	{ "GET DATA with a tag list that is not 5C", "00 CB 3F FF 05 5D 03 5FC102 00", "6A80" },
	{ "GET DATA with a truncated 5C", "00 CB 3F FF 03 5C 03 5F 00", "6A80" },
	{ "GET DATA with no data", "00 CB 3F FF 00", "6A80" },
	{ "GET DATA with P1 P2 00 00", "00 CB 00 00 05 5C 03 5FC102 00", "6A86" },
	{ "a 2-byte BER length in PUT DATA", "00 DB 3F FF 09 5C 03 5FC102 53 81 01 CC", "9000" },
	{ "GET DATA of it", "00 CB 3F FF 05 5C 03 5FC102 00", "53 01 CC 9000" },
};

START_TEST(test_data_objects)
{
	g_autoptr(piv_applet) a = fresh();

	RUN(a, data_rows);
}
END_TEST

/* A 3000-byte certificate arrives in chained short APDUs (CLA 10) and
 * leaves with 61xx and GET RESPONSE, or in one extended APDU. */
START_TEST(test_chaining)
{
	g_autoptr(piv_applet) a = fresh();
	g_autoptr(GByteArray) body = g_byte_array_new();
	g_autoptr(GByteArray) got = g_byte_array_new();
	guint8 hdr[] = { 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82, 0x0B, 0xB8 };
	guint off = 0;
	unsigned sw;

	ck_assert_uint_eq(default_mgmt(a), 0x9000);
	g_byte_array_append(body, hdr, sizeof(hdr));
	for (int i = 0; i < 3000; i++) {
		guint8 b = (guint8)(i * 7);

		g_byte_array_append(body, &b, 1);
	}
	while (off < body->len) {
		guint n = MIN(255u, body->len - off);
		gboolean last = off + n == body->len;
		guint8 apdu[5 + 255] = { last ? 0x00 : 0x10, 0xDB, 0x3F, 0xFF,
					 (guint8)n };
		g_autoptr(GByteArray) r = NULL;

		memcpy(apdu + 5, body->data + off, n);
		r = xfer(a, apdu, 5 + n);
		ck_assert_uint_eq(sw_of(r), 0x9000);
		ck_assert_uint_eq(r->len, 2);
		off += n;
	}
	/* Short GET DATA: 256 bytes then 61 00 (more than 255 left). */
	{
		g_autoptr(GByteArray) r = xfer_hex(a, "00 CB 3F FF 05 5C 03 5FC105 00");

		ck_assert_uint_eq(r->len, 258);
		ck_assert_uint_eq(sw_of(r), 0x6100);
		g_byte_array_append(got, r->data, 256);
	}
	do {
		g_autoptr(GByteArray) r = xfer_hex(a, "00 C0 00 00 00");

		sw = sw_of(r);
		g_byte_array_append(got, r->data, r->len - 2);
		if (sw != 0x9000)
			ck_assert_uint_eq(sw & 0xFF00, 0x6100);
	} while (sw != 0x9000);
	/* 53 82 0B B8 + the 3000 bytes */
	ck_assert_uint_eq(got->len, 3004);
	ck_assert_mem_eq(got->data + 4, body->data + 9, 3000);
	/* The last part announces its exact size: 3004 = 11*256 + 188. */
	{
		g_autoptr(GByteArray) r = NULL;

		r = xfer_hex(a, "00 CB 3F FF 05 5C 03 5FC105 00");
		for (int i = 0; i < 10; i++) {
			g_byte_array_unref(r);
			r = xfer_hex(a, "00 C0 00 00 00");
		}
		ck_assert_uint_eq(sw_of(r), 0x61BC);
	}
	/* Any other command drops the rest. */
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80"), 0x63C3);
	ck_assert_uint_eq(sw_hex(a, "00 C0 00 00 00"), 0x6985);
	/* Extended Le 00 00: all at once. */
	{
		g_autoptr(GByteArray) r = xfer_hex(a, "00 CB 3F FF 00 00 05 5C 03 5FC105 00 00");

		ck_assert_uint_eq(sw_of(r), 0x9000);
		ck_assert_uint_eq(r->len, 3006);
	}
	/* A short Le of 16 bytes is honoured. */
	{
		g_autoptr(GByteArray) r = xfer_hex(a, "00 CB 3F FF 05 5C 03 5FC105 10");

		ck_assert_uint_eq(r->len, 18);
		ck_assert_uint_eq(sw_of(r), 0x6100);
	}
	/* A chain abandoned for another command is forgotten. */
	ck_assert_uint_eq(sw_hex(a, "10 DB 3F FF 03 5C 03 5F"), 0x9000);
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80"), 0x63C3);
	ck_assert_uint_eq(sw_hex(a, "00 DB 3F FF 05 C1 02 53 01 01"), 0x6A80);
}
END_TEST

/* --- GENERAL AUTHENTICATE, management key ------------------------------------ */

START_TEST(test_mgmt_mutual_3des)
{
	g_autoptr(piv_applet) a = fresh();
	guint8 wrong[24];

	memcpy(wrong, piv_default_mgmt_key, 24);
	wrong[23] ^= 0x10;
	/* A wrong key: the card refuses the witness. */
	ck_assert_uint_eq(mgmt_auth(a, PIV_ALG_3DES, wrong, TRUE), 0x6982);
	ck_assert_uint_eq(mgmt_auth(a, PIV_ALG_3DES, piv_default_mgmt_key,
				    FALSE), 0x6982);
	ck_assert_uint_eq(sw_hex(a, "00 DB 3F FF 08 5C 03 5FC102 53 01 01"),
			  0x6982);
	ck_assert_uint_eq(default_mgmt(a), 0x9000);
	ck_assert_uint_eq(sw_hex(a, "00 DB 3F FF 08 5C 03 5FC102 53 01 01"),
			  0x9000);
	/* Power cycle: the authentication is gone. */
	piv_applet_reset(a);
	ck_assert_uint_eq(sw_hex(a, "00 DB 3F FF 08 5C 03 5FC102 53 01 01"),
			  0x6982);
}
END_TEST

static const struct row mgmt_error_rows[] = {
	{ "a decrypted witness that was never asked for",
	  "00 87 03 9B 0C 7C 0A 80 08 0102030405060708", "6985" },
	{ "the algorithm is not the key's (AES-128 asked, 3DES set)",
	  "00 87 08 9B 04 7C 02 80 00", "6A86" },
	{ "ask for a witness", "00 87 03 9B 04 7C 02 80 00", "* 9000" },
	{ "a witness of the wrong length", "00 87 03 9B 0B 7C 09 80 07 01020304050607", "6A80" },
	{ "the witness is single-use: gone after the error",
	  "00 87 03 9B 0C 7C 0A 80 08 0102030405060708", "6985" },
	{ "ask for a witness again", "00 87 03 9B 04 7C 02 80 00", "* 9000" },
	{ "any other command in between drops it", "00 20 00 80", "63C3" },
	{ "so the answer comes too late",
	  "00 87 03 9B 0C 7C 0A 80 08 0102030405060708", "6985" },
	{ "a response to a challenge never sent",
	  "00 87 03 9B 0C 7C 0A 82 08 0102030405060708", "6985" },
	{ "7C missing", "00 87 03 9B 04 7D 02 80 00", "6A80" },
	{ "7C longer than the data", "00 87 03 9B 04 7C 05 80 00", "6A80" },
	{ "an unknown tag inside 7C", "00 87 03 9B 04 7C 02 83 00", "6A80" },
	{ "a tag twice", "00 87 03 9B 06 7C 04 80 00 80 00", "6A80" },
	{ "an empty template", "00 87 03 9B 02 7C 00", "6A80" },
	{ "the card proves itself (81 C 82 empty): no status change",
	  "00 87 03 9B 0E 7C 0C 81 08 0102030405060708 82 00", "* 9000" },
	{ "...so PUT DATA still needs the key", "00 DB 3F FF 08 5C 03 5FC102 53 01 01", "6982" },
};

START_TEST(test_mgmt_errors)
{
	g_autoptr(piv_applet) a = fresh();

	RUN(a, mgmt_error_rows);
}
END_TEST

/* Challenge-response in the other direction: the card sends a challenge,
 * the host encrypts it. */
START_TEST(test_mgmt_challenge_response)
{
	g_autoptr(piv_applet) a = fresh();
	g_autoptr(GByteArray) r = xfer_hex(a, "00 87 03 9B 04 7C 02 81 00");
	guint8 cmd[5 + 12] = { 0x00, 0x87, 0x03, 0x9B, 12, 0x7C, 10, 0x82, 8 };

	ck_assert_uint_eq(sw_of(r), 0x9000);
	ck_assert_uint_eq(r->len, 14);
	block_op(PIV_ALG_3DES, piv_default_mgmt_key, TRUE, r->data + 4,
		 cmd + 9);
	cmd[9] ^= 0xFF;  /* wrong first */
	ck_assert_uint_eq(sw_bytes(a, cmd, sizeof(cmd)), 0x6982);
	g_byte_array_unref(r);
	r = xfer_hex(a, "00 87 03 9B 04 7C 02 81 00");
	block_op(PIV_ALG_3DES, piv_default_mgmt_key, TRUE, r->data + 4,
		 cmd + 9);
	g_byte_array_unref(r);
	r = xfer(a, cmd, sizeof(cmd));
	ck_assert_uint_eq(sw_of(r), 0x9000);
	ck_assert_uint_eq(sw_hex(a, "00 DB 3F FF 08 5C 03 5FC102 53 01 01"),
			  0x9000);
}
END_TEST

/* Yubico SET MANAGEMENT KEY to each AES size, then mutual authentication
 * with it. */
START_TEST(test_mgmt_aes)
{
	static const struct { uint8_t alg; size_t len; } keys[] = {
		{ PIV_ALG_AES128, 16 }, { PIV_ALG_AES192, 24 },
		{ PIV_ALG_AES256, 32 }, { PIV_ALG_3DES, 24 },
	};
	g_autoptr(piv_applet) a = fresh();
	guint8 key[32], cur[32];
	uint8_t cur_alg = PIV_ALG_3DES;

	memcpy(cur, piv_default_mgmt_key, 24);
	ck_assert_uint_eq(sw_hex(a, "00 FF FF FF 1B 03 9B 18 "
				    "010203040506070801020304050607080102030405060708"),
			  0x6982);
	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
		guint8 cmd[5 + 3 + 32] = { 0x00, 0xFF, 0xFF, 0xFF,
					   (guint8)(3 + keys[i].len),
					   keys[i].alg, 0x9B,
					   (guint8)keys[i].len };

		for (size_t k = 0; k < keys[i].len; k++)
			key[k] = (guint8)(0x40 + i * 3 + k);
		ck_assert_uint_eq(mgmt_auth(a, cur_alg, cur, TRUE), 0x9000);
		memcpy(cmd + 8, key, keys[i].len);
		ck_assert_uint_eq(sw_bytes(a, cmd, 8 + keys[i].len), 0x9000);
		piv_applet_reset(a);
		/* The old key no longer works: another algorithm is refused
		 * as such, the same one fails the witness. */
		ck_assert_uint_eq(mgmt_auth(a, cur_alg, cur, TRUE),
				  cur_alg != keys[i].alg ? 0x6A86 : 0x6982);
		cur_alg = keys[i].alg;
		memcpy(cur, key, keys[i].len);
		ck_assert_uint_eq(mgmt_auth(a, cur_alg, cur, TRUE), 0x9000);
		ck_assert_uint_eq(piv_applet_get_data(a)->mgmt_alg, cur_alg);
	}
	/* Wrong key length for AES-128, unknown algorithm, missing 9B, P2. */
	ck_assert_uint_eq(sw_hex(a, "00 FF FF FF 0B 08 9B 08 0102030405060708"),
			  0x6A80);
	ck_assert_uint_eq(sw_hex(a, "00 FF FF FF 0B 07 9B 08 0102030405060708"),
			  0x6A80);
	ck_assert_uint_eq(sw_hex(a, "00 FF FF FF 13 08 9A 10 "
				    "01020304050607080102030405060708"), 0x6A80);
	ck_assert_uint_eq(sw_hex(a, "00 FF FF 00 13 08 9B 10 "
				    "01020304050607080102030405060708"), 0x6A86);
}
END_TEST

/* --- keys ---------------------------------------------------------------------- */

/* GENERATE ASYMMETRIC KEY PAIR; returns the 7F49 contents. */
static GByteArray *generate(piv_applet *a, uint8_t slot, uint8_t alg,
			    unsigned *sw)
{
	guint8 cmd[] = { 0x00, 0x47, 0x00, slot, 0x05, 0xAC, 0x03, 0x80, 0x01,
			 alg, 0x00 };
	GByteArray *r = xfer(a, cmd, sizeof(cmd));

	*sw = sw_of(r);
	/* The RSA answer is 7F49 82 0109 ... = 269 bytes + SW: more than a
	 * short Le; fetch the rest. */
	while ((*sw & 0xFF00) == 0x6100) {
		g_autoptr(GByteArray) more = xfer_hex(a, "00 C0 00 00 00");

		g_byte_array_set_size(r, r->len - 2);
		g_byte_array_append(r, more->data, more->len);
		*sw = sw_of(r);
	}
	g_byte_array_set_size(r, r->len - 2);
	return r;
}

/* An OpenSSL public key from the 7F49 template. */
static EVP_PKEY *pub_from_template(const GByteArray *t, uint8_t alg)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY_CTX *ctx;
	OSSL_PARAM *params;
	EVP_PKEY *pkey = NULL;
	const guint8 *p = t->data;
	gsize hdr = 0, len = 0;

	ck_assert(p[0] == 0x7F && p[1] == 0x49);
	hdr = p[2] == 0x82 ? 5 : p[2] == 0x81 ? 4 : 3;
	p += hdr;
	if (alg == PIV_ALG_RSA2048) {
		BIGNUM *n, *e;

		/* 81 82 01 00 modulus 82 03 exponent */
		ck_assert(p[0] == 0x81 && p[1] == 0x82);
		len = (gsize)p[2] << 8 | p[3];
		ck_assert_uint_eq(len, 256);
		n = BN_bin2bn(p + 4, (int)len, NULL);
		p += 4 + len;
		ck_assert(p[0] == 0x82);
		e = BN_bin2bn(p + 2, p[1], NULL);
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
		params = OSSL_PARAM_BLD_to_param(bld);
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
		BN_free(n);
		BN_free(e);
	} else {
		ck_assert(p[0] == 0x86);
		OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
			alg == PIV_ALG_ECC_P256 ? "P-256" : "P-384", 0);
		OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
						 p + 2, p[1]);
		ck_assert_uint_eq(p[1], alg == PIV_ALG_ECC_P256 ? 65 : 97);
		params = OSSL_PARAM_BLD_to_param(bld);
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	}
	ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY,
					   params), 1);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

/* GENERAL AUTHENTICATE 7C { 82 00, @tag data } -> the 82 value. */
static GByteArray *ga_key(piv_applet *a, uint8_t alg, uint8_t slot,
			  uint8_t tag, const guint8 *data, gsize len,
			  unsigned *sw)
{
	g_autoptr(GByteArray) cmd = g_byte_array_new();
	g_autoptr(GByteArray) r = NULL;
	guint8 hdr[] = { 0x00, 0x87, alg, slot, 0x00, 0x00, 0x00 };
	guint8 inner_len_hdr[4];
	gsize inner = 2 + (len < 0x80 ? 2 : len <= 0xFF ? 3 : 4) + len;
	gsize total = (inner < 0x80 ? 2 : inner <= 0xFF ? 3 : 4) + inner;
	GByteArray *out = g_byte_array_new();
	guint8 le[2] = { 0, 0 };
	const guint8 *p;
	gsize n = 0, l;

	/* extended APDU: 00 Lc(2) */
	hdr[5] = (guint8)(total >> 8);
	hdr[6] = (guint8)total;
	g_byte_array_append(cmd, hdr, sizeof(hdr));
	inner_len_hdr[n++] = 0x7C;
	if (inner < 0x80) {
		inner_len_hdr[n++] = (guint8)inner;
	} else if (inner <= 0xFF) {
		inner_len_hdr[n++] = 0x81;
		inner_len_hdr[n++] = (guint8)inner;
	} else {
		inner_len_hdr[n++] = 0x82;
		inner_len_hdr[n++] = (guint8)(inner >> 8);
		inner_len_hdr[n++] = (guint8)inner;
	}
	g_byte_array_append(cmd, inner_len_hdr, (guint)n);
	g_byte_array_append(cmd, (guint8[]){ 0x82, 0x00 }, 2);
	n = 0;
	inner_len_hdr[n++] = tag;
	if (len < 0x80) {
		inner_len_hdr[n++] = (guint8)len;
	} else if (len <= 0xFF) {
		inner_len_hdr[n++] = 0x81;
		inner_len_hdr[n++] = (guint8)len;
	} else {
		inner_len_hdr[n++] = 0x82;
		inner_len_hdr[n++] = (guint8)(len >> 8);
		inner_len_hdr[n++] = (guint8)len;
	}
	g_byte_array_append(cmd, inner_len_hdr, (guint)n);
	g_byte_array_append(cmd, data, (guint)len);
	g_byte_array_append(cmd, le, 2);
	r = xfer(a, cmd->data, cmd->len);
	*sw = sw_of(r);
	if (*sw != 0x9000)
		return out;
	/* 7C L 82 L value */
	p = r->data;
	ck_assert(p[0] == 0x7C);
	p += p[1] == 0x82 ? 4 : p[1] == 0x81 ? 3 : 2;
	ck_assert(p[0] == 0x82);
	l = p[1];
	if (l == 0x81) {
		l = p[2];
		p += 3;
	} else if (l == 0x82) {
		l = (gsize)p[2] << 8 | p[3];
		p += 4;
	} else {
		p += 2;
	}
	g_byte_array_append(out, p, (guint)l);
	return out;
}

START_TEST(test_rsa2048_9a)
{
	g_autoptr(piv_applet) a = fresh();
	g_autoptr(GByteArray) t = NULL;
	g_autoptr(GByteArray) sig = NULL;
	g_autoptr(GByteArray) dec = NULL;
	guint8 block[256], ct[256], rec[256];
	EVP_PKEY *pub;
	EVP_PKEY_CTX *ctx;
	size_t rl = sizeof(rec), cl = sizeof(ct);
	unsigned sw;
	gint64 t0;

	t = generate(a, 0x9A, PIV_ALG_RSA2048, &sw);
	ck_assert_uint_eq(sw, 0x6982);   /* no management key yet */
	g_byte_array_unref(t);
	ck_assert_uint_eq(default_mgmt(a), 0x9000);
	t0 = g_get_monotonic_time();
	t = generate(a, 0x9A, PIV_ALG_RSA2048, &sw);
	fprintf(stderr, "RSA-2048 key generation in the applet: %.0f ms\n",
		(g_get_monotonic_time() - t0) / 1000.0);
	ck_assert_uint_eq(sw, 0x9000);
	pub = pub_from_template(t, PIV_ALG_RSA2048);

	/* PKCS#1 v1.5 type 1 block, as a host builds it for signing. */
	memset(block, 0xFF, sizeof(block));
	block[0] = 0x00;
	block[1] = 0x01;
	block[256 - 33] = 0x00;
	for (int i = 0; i < 32; i++)
		block[256 - 32 + i] = (guint8)i;
	sig = ga_key(a, PIV_ALG_RSA2048, 0x9A, 0x81, block, 256, &sw);
	ck_assert_uint_eq(sw, 0x6982);   /* 9A needs the PIN */
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80 08 " PIN_123456), 0x9000);
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_RSA2048, 0x9A, 0x81, block, 256, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	ck_assert_uint_eq(sig->len, 256);
	/* Host side: the public operation gives the block back. */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	ck_assert_int_eq(EVP_PKEY_verify_recover_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
	ck_assert_int_eq(EVP_PKEY_verify_recover(ctx, rec, &rl, sig->data,
						 sig->len), 1);
	ck_assert_uint_eq(rl, 256);
	ck_assert_mem_eq(rec, block, 256);
	EVP_PKEY_CTX_free(ctx);
	/* 9A stays usable: PIN once. */
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_RSA2048, 0x9A, 0x81, block, 256, &sw);
	ck_assert_uint_eq(sw, 0x9000);

	/* Decrypt: the host encrypts with PKCS#1 padding, the card does the
	 * raw operation, the padding is checked here. */
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	ck_assert_int_eq(EVP_PKEY_encrypt_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_encrypt(ctx, ct, &cl,
					  (const guint8 *)"secret", 6), 1);
	EVP_PKEY_CTX_free(ctx);
	dec = ga_key(a, PIV_ALG_RSA2048, 0x9A, 0x81, ct, cl, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	ck_assert_uint_eq(dec->len, 256);
	ck_assert_mem_eq(dec->data + 250, "secret", 6);
	ck_assert_uint_eq(dec->data[249], 0x00);

	/* Wrong length, wrong algorithm, ECDH on RSA, empty slot. */
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_RSA2048, 0x9A, 0x81, block, 255, &sw);
	ck_assert_uint_eq(sw, 0x6A80);
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_ECC_P256, 0x9A, 0x81, block, 32, &sw);
	ck_assert_uint_eq(sw, 0x6A86);
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_RSA2048, 0x9A, 0x85, block, 65, &sw);
	ck_assert_uint_eq(sw, 0x6A80);
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_RSA2048, 0x9D, 0x81, block, 256, &sw);
	ck_assert_uint_eq(sw, 0x6A88);
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_RSA2048, 0x42, 0x81, block, 256, &sw);
	ck_assert_uint_eq(sw, 0x6A86);
	EVP_PKEY_free(pub);
}
END_TEST

START_TEST(test_p256_9c_pin_always)
{
	g_autoptr(piv_applet) a = fresh();
	g_autoptr(GByteArray) t = NULL;
	g_autoptr(GByteArray) sig = NULL;
	guint8 hash[32];
	EVP_PKEY *pub;
	EVP_PKEY_CTX *ctx;
	unsigned sw;
	gint64 t0;

	for (int i = 0; i < 32; i++)
		hash[i] = (guint8)(0x11 * i);
	ck_assert_uint_eq(default_mgmt(a), 0x9000);
	t0 = g_get_monotonic_time();
	t = generate(a, 0x9C, PIV_ALG_ECC_P256, &sw);
	fprintf(stderr, "P-256 key generation in the applet: %.1f ms\n",
		(g_get_monotonic_time() - t0) / 1000.0);
	ck_assert_uint_eq(sw, 0x9000);
	pub = pub_from_template(t, PIV_ALG_ECC_P256);
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80 08 " PIN_123456), 0x9000);
	sig = ga_key(a, PIV_ALG_ECC_P256, 0x9C, 0x81, hash, 32, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	ck_assert_int_eq(EVP_PKEY_verify_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_verify(ctx, sig->data, sig->len, hash, 32), 1);
	EVP_PKEY_CTX_free(ctx);
	/* PIN-always: a second signature needs a second VERIFY... */
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_ECC_P256, 0x9C, 0x81, hash, 32, &sw);
	ck_assert_uint_eq(sw, 0x6982);
	/* ...right before it: a GET DATA in between spoils it. */
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80 08 " PIN_123456), 0x9000);
	ck_assert_uint_eq(sw_hex(a, "00 CB 3F FF 03 5C 01 7E 00"), 0x9000);
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_ECC_P256, 0x9C, 0x81, hash, 32, &sw);
	ck_assert_uint_eq(sw, 0x6982);
	/* The status query is a VERIFY too, but proves nothing. */
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80"), 0x9000);
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_ECC_P256, 0x9C, 0x81, hash, 32, &sw);
	ck_assert_uint_eq(sw, 0x6982);
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80 08 " PIN_123456), 0x9000);
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_ECC_P256, 0x9C, 0x81, hash, 32, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	EVP_PKEY_free(pub);
}
END_TEST

START_TEST(test_p384_ecdh_9d_and_9e)
{
	g_autoptr(piv_applet) a = fresh();
	g_autoptr(GByteArray) t = NULL;
	g_autoptr(GByteArray) secret = NULL;
	g_autoptr(GByteArray) sig = NULL;
	EVP_PKEY *pub, *mine;
	EVP_PKEY_CTX *ctx;
	guint8 point[97], expect[48], hash[48] = { 1, 2, 3 };
	size_t plen = 0, elen = sizeof(expect);
	unsigned sw;

	ck_assert_uint_eq(default_mgmt(a), 0x9000);
	t = generate(a, 0x9D, PIV_ALG_ECC_P384, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	pub = pub_from_template(t, PIV_ALG_ECC_P384);
	mine = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	ck_assert(mine != NULL);
	ck_assert_int_eq(EVP_PKEY_get_octet_string_param(mine,
		OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof(point),
		&plen), 1);
	ck_assert_uint_eq(plen, 97);
	secret = ga_key(a, PIV_ALG_ECC_P384, 0x9D, 0x85, point, plen, &sw);
	ck_assert_uint_eq(sw, 0x6982);   /* 9D needs the PIN */
	ck_assert_uint_eq(sw_hex(a, "00 20 00 80 08 " PIN_123456), 0x9000);
	g_byte_array_unref(secret);
	secret = ga_key(a, PIV_ALG_ECC_P384, 0x9D, 0x85, point, plen, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
	ck_assert_int_eq(EVP_PKEY_derive_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_derive_set_peer(ctx, pub), 1);
	ck_assert_int_eq(EVP_PKEY_derive(ctx, expect, &elen), 1);
	EVP_PKEY_CTX_free(ctx);
	ck_assert_uint_eq(secret->len, 48);
	ck_assert_mem_eq(secret->data, expect, 48);
	/* A point off the curve, and a compressed one. */
	point[50] ^= 1;
	g_byte_array_unref(secret);
	secret = ga_key(a, PIV_ALG_ECC_P384, 0x9D, 0x85, point, plen, &sw);
	ck_assert_uint_eq(sw, 0x6A80);
	g_byte_array_unref(secret);
	secret = ga_key(a, PIV_ALG_ECC_P384, 0x9D, 0x85, point, 49, &sw);
	ck_assert_uint_eq(sw, 0x6A80);

	/* 9E (card authentication) needs no PIN, even after a power cycle. */
	g_byte_array_unref(t);
	t = generate(a, 0x9E, PIV_ALG_ECC_P384, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	piv_applet_reset(a);
	sig = ga_key(a, PIV_ALG_ECC_P384, 0x9E, 0x81, hash, 48, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(mine);
}
END_TEST

static const struct row generate_rows[] = {
	{ "GENERATE without the management key", "00 47 00 9A 05 AC 03 80 01 11", "6982" },
	{ "authenticate", "@mgmt", "" },
	{ "GENERATE in a slot that is not a key slot", "00 47 00 9B 05 AC 03 80 01 11", "6A86" },
	{ "GENERATE with P1 01", "00 47 01 9A 05 AC 03 80 01 11", "6A86" },
	{ "GENERATE of an unknown algorithm", "00 47 00 9A 05 AC 03 80 01 05", "6A80" },
	{ "GENERATE of AES (not asymmetric)", "00 47 00 9A 05 AC 03 80 01 08", "6A80" },
	{ "GENERATE without an algorithm", "00 47 00 9A 02 AC 00", "6A80" },
	{ "GENERATE without the AC template", "00 47 00 9A 03 80 01 11", "6A80" },
	{ "GENERATE with an unknown PIN policy", "00 47 00 9A 08 AC 06 80 01 11 AA 01 04", "6A80" },
	{ "GENERATE P-256 in retired slot 95 with PIN policy never",
	  "00 47 00 95 0B AC 09 80 01 11 AA 01 01 AB 01 01", "* 9000" },
	{ "GET METADATA of slot 95: ECCP256, policy never, generated",
	  "00 F7 00 95 00", "* 9000" },
	{ "GET METADATA of an empty slot", "00 F7 00 9A 00", "6A88" },
	{ "GET METADATA of a non-slot", "00 F7 00 42 00", "6A86" },
};

START_TEST(test_generate)
{
	g_autoptr(piv_applet) a = fresh();
	g_autoptr(GByteArray) meta = NULL;

	RUN(a, generate_rows);
	meta = xfer_hex(a, "00 F7 00 95 00");
	/* 01 01 11, 02 02 01 01, 03 01 01, 04 43 86 41 04 ... */
	ck_assert_uint_ge(meta->len, 13);
	ck_assert_mem_eq(meta->data, ((guint8[]){ 0x01, 0x01, 0x11, 0x02, 0x02,
						  0x01, 0x01, 0x03, 0x01, 0x01,
						  0x04, 0x43, 0x86 }), 13);
	ck_assert_uint_eq(piv_applet_get_data(a)->keys[23].pin_policy,
			  PIV_PIN_POLICY_NEVER);
}
END_TEST

/* --- Yubico IMPORT KEY --------------------------------------------------------- */

/* Appends TLV @tag with BN @name of @pkey, left-padded to @width bytes. */
static void put_bn_param(GByteArray *d, guint8 tag, EVP_PKEY *pkey,
			 const char *name, int width)
{
	BIGNUM *bn = NULL;
	guint8 buf[128];
	guint8 hdr[3] = { tag, 0x81, (guint8)width };

	ck_assert_int_eq(EVP_PKEY_get_bn_param(pkey, name, &bn), 1);
	ck_assert_int_eq(BN_bn2binpad(bn, buf, width), width);
	BN_free(bn);
	if (width < 0x80) {
		hdr[1] = (guint8)width;
		g_byte_array_append(d, hdr, 2);
	} else {
		g_byte_array_append(d, hdr, 3);
	}
	g_byte_array_append(d, buf, (guint)width);
}

/* 00 FE alg slot, extended Lc, @data. */
static unsigned import_key(piv_applet *a, uint8_t alg, uint8_t slot,
			   const GByteArray *data)
{
	g_autoptr(GByteArray) cmd = g_byte_array_new();
	guint8 hdr[7] = { 0x00, 0xFE, alg, slot, 0x00,
			  (guint8)(data->len >> 8), (guint8)data->len };

	g_byte_array_append(cmd, hdr, sizeof(hdr));
	g_byte_array_append(cmd, data->data, data->len);
	return sw_bytes(a, cmd->data, cmd->len);
}

/* A key made by OpenSSL on the test side goes onto the card by its CRT
 * parameters (RSA) or scalar (ECC); the card's signatures verify with the
 * original public key. */
START_TEST(test_import_key)
{
	static const char *const crt[5] = {
		OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
		OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
		OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	};
	g_autoptr(piv_applet) a = fresh();
	g_autoptr(GByteArray) rsa_data = g_byte_array_new();
	g_autoptr(GByteArray) ec_data = g_byte_array_new();
	g_autoptr(GByteArray) bad = g_byte_array_new();
	g_autoptr(GByteArray) sig = NULL;
	g_autoptr(GByteArray) meta = NULL;
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY_CTX *ctx;
	guint8 block[256], rec[256], hash[32];
	size_t rl = sizeof(rec);
	unsigned sw;

	ck_assert(rsa != NULL && ec != NULL);
	for (int i = 0; i < 5; i++)
		put_bn_param(rsa_data, (guint8)(i + 1), rsa, crt[i], 128);
	g_byte_array_append(rsa_data, (guint8[]){ 0xAA, 0x01, 0x01 }, 3);
	put_bn_param(ec_data, 0x06, ec, OSSL_PKEY_PARAM_PRIV_KEY, 32);

	ck_assert_uint_eq(import_key(a, PIV_ALG_RSA2048, 0x9D, rsa_data), 0x6982);
	ck_assert_uint_eq(default_mgmt(a), 0x9000);
	/* Wrong algorithm for the data, slot not a key slot, unknown alg. */
	ck_assert_uint_eq(import_key(a, PIV_ALG_RSA1024, 0x9D, rsa_data), 0x6A80);
	ck_assert_uint_eq(import_key(a, PIV_ALG_RSA2048, 0x9B, rsa_data), 0x6A86);
	ck_assert_uint_eq(import_key(a, 0x05, 0x9D, rsa_data), 0x6A86);
	ck_assert_uint_eq(import_key(a, PIV_ALG_ECC_P256, 0x9E, rsa_data), 0x6A80);
	/* p and q swapped for dP: inconsistent, refused. */
	g_byte_array_append(bad, rsa_data->data, rsa_data->len);
	bad->data[3 + 10] ^= 0x01;
	ck_assert_uint_eq(import_key(a, PIV_ALG_RSA2048, 0x9D, bad), 0x6A80);

	ck_assert_uint_eq(import_key(a, PIV_ALG_RSA2048, 0x9D, rsa_data), 0x9000);
	ck_assert_uint_eq(import_key(a, PIV_ALG_ECC_P256, 0x9E, ec_data), 0x9000);
	meta = xfer_hex(a, "00 F7 00 9D 00");
	/* 01 01 07, 02 02 01 01 (policy never from AA), 03 01 02 (imported) */
	ck_assert_mem_eq(meta->data, ((guint8[]){ 0x01, 0x01, 0x07, 0x02, 0x02,
						  0x01, 0x01, 0x03, 0x01,
						  0x02 }), 10);

	/* RSA: the raw operation on a PKCS#1 block, no PIN (policy never). */
	memset(block, 0xFF, sizeof(block));
	block[0] = 0x00;
	block[1] = 0x01;
	block[200] = 0x00;
	for (int i = 201; i < 256; i++)
		block[i] = (guint8)i;
	sig = ga_key(a, PIV_ALG_RSA2048, 0x9D, 0x81, block, 256, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, rsa, NULL);
	ck_assert_int_eq(EVP_PKEY_verify_recover_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
	ck_assert_int_eq(EVP_PKEY_verify_recover(ctx, rec, &rl, sig->data,
						 sig->len), 1);
	ck_assert_mem_eq(rec, block, 256);
	EVP_PKEY_CTX_free(ctx);

	/* ECC in 9E: ECDSA that verifies with the original key. */
	for (int i = 0; i < 32; i++)
		hash[i] = (guint8)(3 * i);
	g_byte_array_unref(sig);
	sig = ga_key(a, PIV_ALG_ECC_P256, 0x9E, 0x81, hash, 32, &sw);
	ck_assert_uint_eq(sw, 0x9000);
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ec, NULL);
	ck_assert_int_eq(EVP_PKEY_verify_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_verify(ctx, sig->data, sig->len, hash, 32), 1);
	EVP_PKEY_CTX_free(ctx);

	/* A scalar of zero, and one of the wrong size. */
	g_byte_array_set_size(bad, 0);
	g_byte_array_append(bad, (guint8[]){ 0x06, 0x20 }, 2);
	for (int i = 0; i < 32; i++)
		g_byte_array_append(bad, (guint8[]){ 0x00 }, 1);
	ck_assert_uint_eq(import_key(a, PIV_ALG_ECC_P256, 0x9E, bad), 0x6A80);
	ck_assert_uint_eq(import_key(a, PIV_ALG_ECC_P384, 0x9E, ec_data), 0x6A80);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
}
END_TEST

/* --- Yubico extensions ---------------------------------------------------- */

static const struct row yubico_rows[] = {
	{ "GET VERSION", "00 FD 00 00 00", "05 04 03 9000" },
	{ "GET METADATA of the PIN: default, 3 of 3",
	  "00 F7 00 80 00", "01 01 FF 05 01 01 06 02 03 03 9000" },
	{ "GET METADATA of the PUK", "00 F7 00 81 00", "01 01 FF 05 01 01 06 02 03 03 9000" },
	{ "GET METADATA of the management key: 3DES, default",
	  "00 F7 00 9B 00", "01 01 03 02 02 00 01 05 01 01 9000" },
	{ "GET METADATA with P1 01", "00 F7 01 80 00", "6A86" },
	{ "SET PIN RETRIES without anything", "00 FA 05 06", "6982" },
	{ "authenticate", "@mgmt", "" },
	{ "SET PIN RETRIES still needs the PIN", "00 FA 05 06", "6982" },
	{ "change the PIN", "00 24 00 80 10 " PIN_123456 PIN_654321, "9000" },
	{ "GET METADATA: the PIN is no longer the default, 1 try used and back",
	  "00 F7 00 80 00", "01 01 FF 05 01 00 06 02 03 03 9000" },
	{ "SET PIN RETRIES of 0", "00 FA 00 06", "6A86" },
	{ "SET PIN RETRIES 5 and 6", "00 FA 05 06", "9000" },
	{ "...resets the PIN to the default", "00 F7 00 80 00", "01 01 FF 05 01 01 06 02 05 05 9000" },
	{ "...and the PUK", "00 F7 00 81 00", "01 01 FF 05 01 01 06 02 06 06 9000" },
	{ "VERIFY with the default PIN", "00 20 00 80 08 " PIN_654321, "63C4" },
};

START_TEST(test_yubico)
{
	g_autoptr(piv_applet) a = fresh();
	g_autoptr(GByteArray) s = xfer_hex(a, "00 F8 00 00 00");
	uint32_t serial = piv_applet_get_data(a)->serial;

	/* GET SERIAL: the serial, big-endian. */
	ck_assert_uint_eq(s->len, 6);
	ck_assert_uint_eq(sw_of(s), 0x9000);
	ck_assert_uint_eq((uint32_t)s->data[0] << 24 | s->data[1] << 16 |
			  s->data[2] << 8 | s->data[3], serial);
	RUN(a, yubico_rows);
}
END_TEST

/* Hostile input: every truncation and a bit flip in each byte of a valid
 * command of each kind must give an answer, never a crash. */
START_TEST(test_garbage)
{
	static const char *const cmds[] = {
		"00 A4 04 00 05 A0 00 00 03 08",
		"00 CB 3F FF 05 5C 03 5FC102 00",
		"00 DB 3F FF 09 5C 03 5FC102 53 02 AABB",
		"00 87 03 9B 16 7C 14 80 08 0102030405060708 81 08 0102030405060708",
		"00 87 07 9A 08 7C 06 82 00 81 02 0102",
		"00 47 00 9A 08 AC 06 80 01 11 AA 01 01",
		"00 FF FF FF 1B 03 9B 18 010203040506070801020304050607080102030405060708",
		"00 24 00 80 10 " PIN_123456 PIN_654321,
	};
	g_autoptr(piv_applet) a = fresh();

	ck_assert_uint_eq(default_mgmt(a), 0x9000);
	for (size_t i = 0; i < G_N_ELEMENTS(cmds); i++) {
		g_autoptr(GByteArray) c = test_unhex(cmds[i]);

		for (guint cut = 0; cut <= c->len; cut++) {
			g_autoptr(GByteArray) r = xfer(a, c->data, cut);

			(void)r;
		}
		for (guint b = 4; b < c->len; b++) {
			for (int bit = 0; bit < 8; bit++) {
				g_autoptr(GByteArray) r = NULL;

				c->data[b] ^= (guint8)(1u << bit);
				r = xfer(a, c->data, c->len);
				c->data[b] ^= (guint8)(1u << bit);
			}
		}
	}
}
END_TEST

static Suite *piv_suite(void)
{
	Suite *s = suite_create("piv-applet");
	TCase *tc = tcase_create("applet");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_select);
	tcase_add_test(tc, test_verify);
	tcase_add_test(tc, test_verify_persists_first);
	tcase_add_test(tc, test_change_reference);
	tcase_add_test(tc, test_unblock_and_reset);
	tcase_add_test(tc, test_data_objects);
	tcase_add_test(tc, test_chaining);
	tcase_add_test(tc, test_mgmt_mutual_3des);
	tcase_add_test(tc, test_mgmt_errors);
	tcase_add_test(tc, test_mgmt_challenge_response);
	tcase_add_test(tc, test_mgmt_aes);
	tcase_add_test(tc, test_rsa2048_9a);
	tcase_add_test(tc, test_p256_9c_pin_always);
	tcase_add_test(tc, test_p384_ecdh_9d_and_9e);
	tcase_add_test(tc, test_generate);
	tcase_add_test(tc, test_yubico);
	tcase_add_test(tc, test_import_key);
	tcase_add_test(tc, test_garbage);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(piv_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
