/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bulk transfer framing and extended APDUs:
 *  - a message split over several bulk-OUT transfers, and in one transfer;
 *  - bulk-IN messages whose length is a multiple of wMaxPacketSize end with
 *    a zero-length packet (USB 2.0 §5.8.3), others with a short packet;
 *  - the largest extended APDU (65544 bytes) and response (65538 bytes);
 *  - extended APDU chaining (CCID 1.1 §6.1.4 wLevelParameter, §6.2.1
 *    bChainParameter) when dwMaxCCIDMessageLength is small.
 */
#include <stdlib.h>
#include <string.h>

#include "expected.h"
#include "harness.h"

static uint8_t cmd_byte(size_t i)
{
	return (uint8_t)((i * 13u + 5u) & 0xFF);
}

static uint8_t resp_byte(size_t i)
{
	return (uint8_t)((i * 7u + 3u) & 0xFF);
}

/* A response of @len bytes: pattern, then SW 90 00. */
static uint8_t *make_resp(struct harness *h, size_t len)
{
	uint8_t *r = h_malloc(h, len);

	for (size_t i = 0; i + 2 < len; i++)
		r[i] = resp_byte(i);
	r[len - 2] = 0x90;
	r[len - 1] = 0x00;
	return r;
}

/* XfrBlock carrying an APDU of @apdu_len pattern bytes, in a malloc'd
 * buffer of CCID_HDR_LEN + apdu_len. */
static uint8_t *make_xfr(struct harness *h, size_t apdu_len, uint8_t seq,
			 uint16_t level)
{
	uint8_t *m = h_malloc(h, CCID_HDR_LEN + apdu_len + 1);

	/* PC_to_RDR_XfrBlock: dwLength, bSlot 0, bSeq, bBWI 0, wLevelParameter */
	h_hdr(m, 0x6F, (uint32_t)apdu_len, 0, seq, 0x00, (uint8_t)level,
	      (uint8_t)(level >> 8));
	for (size_t i = 0; i < apdu_len; i++)
		m[CCID_HDR_LEN + i] = cmd_byte(i);
	return m;
}

/* Checks that h->msg is a DataBlock OK for @seq carrying @data. */
static void check_datablock(struct harness *h, uint8_t seq, uint8_t chain,
			    const uint8_t *data, size_t len, const char *what)
{
	uint8_t hdr[CCID_HDR_LEN];

	/* RDR_to_PC_DataBlock: dwLength, bSlot 0, bSeq, OK+active, bError 0,
	 * bChainParameter */
	h_hdr(hdr, 0x80, (uint32_t)len, 0, seq, 0x00, 0x00, chain);
	ck_assert_uint_ge(h->msg_len, CCID_HDR_LEN);
	h_assert_bytes(h->msg, CCID_HDR_LEN, hdr, CCID_HDR_LEN, what);
	h_assert_bytes(h->msg + CCID_HDR_LEN, h->msg_len - CCID_HDR_LEN, data,
		       len, what);
}

static struct harness *powered(const struct ccid_config *cfg)
{
	struct harness *h = h_new_configured(cfg, true);

	h_power_on(h, 0, 0x01);
	return h;
}

/* ------------------------------------------------------------------ */
/* Multi-packet messages                                              */
/* ------------------------------------------------------------------ */
static void xfr_roundtrip(size_t apdu_len, size_t chunk, size_t resp_len)
{
	struct harness *h = powered(NULL);
	uint8_t *m = make_xfr(h, apdu_len, 0x20, 0);
	uint8_t *r = make_resp(h, resp_len);

	fake_card_set_resp(&h->cards[0], r, resp_len);
	h_send_split(h, m, CCID_HDR_LEN + apdu_len, chunk);
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	h_assert_bytes(h->cards[0].last_apdu, h->cards[0].last_apdu_len,
		       m + CCID_HDR_LEN, apdu_len, "APDU at the card");
	ck_assert_int_eq(h_pull_msg(h), (long)(CCID_HDR_LEN + resp_len));
	check_datablock(h, 0x20, 0x00, r, resp_len, "reply");
	h_assert_no_reply(h);
	h_free(h);
}

START_TEST(test_split_64)
{
	/* 210 bytes as 64 + 64 + 64 + 18; reply 160 as 64 + 64 + 32 */
	xfr_roundtrip(200, 64, 150);
}
END_TEST

START_TEST(test_one_transfer)
{
	xfr_roundtrip(200, 4096, 150);
}
END_TEST

/* Transfers longer than a packet but a multiple of it do not end the
 * message; the short tail does. */
START_TEST(test_split_512)
{
	xfr_roundtrip(1500, 512, 1000);
}
END_TEST

/* The message is complete before the last transfer only if the device
 * counts dwLength: 128 bytes as 64 + 64, no short packet follows. */
START_TEST(test_exact_multiple_out)
{
	struct harness *h = powered(NULL);
	uint8_t *m = make_xfr(h, 118, 0x21, 0);

	h_send(h, m, 64);
	ck_assert_uint_eq(h->cards[0].n_transmit, 0);
	h_assert_no_reply(h);
	h_send(h, m + 64, 64);
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	ck_assert_uint_eq(h->cards[0].last_apdu_len, 118);
	h_expect(h, BYTES(0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x00,
			  0x00, 0x90, 0x00), "reply to a 128-byte message");
	/* a host that adds a zero-length packet anyway: ignored */
	h_send(h, NULL, 0);
	h_assert_no_reply(h);
	h_exchange(h, (&(struct vec){ "next message",
		BYTES(0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00),
		BYTES(0x81, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00,
		      EXP_CLOCK_STATUS) }));
	h_free(h);
}
END_TEST

/* A 128-byte reply pulled with 64-byte requests: 64, 64, then a
 * zero-length packet, then nothing. */
START_TEST(test_exact_multiple_in_zlp)
{
	struct harness *h = powered(NULL);
	uint8_t *r = make_resp(h, 118);
	uint8_t buf[64];
	uint8_t cmd[CCID_HDR_LEN + 4] = { 0 };

	fake_card_set_resp(&h->cards[0], r, 118);
	h_hdr(cmd, 0x6F, 4, 0, 0x23, 0, 0, 0);
	cmd[11] = 0xB0;
	h_send(h, cmd, sizeof(cmd));
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 64), 64);
	h_assert_bytes(buf, CCID_HDR_LEN,
		       BYTES(0x80, 0x76, 0x00, 0x00, 0x00, 0x00, 0x23, 0x00, 0x00,
			     0x00), "first packet header (dwLength 118)");
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 64), 64);
	h_assert_bytes(buf + 62, 2, BYTES(0x90, 0x00), "SW at the end");
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 64), 0);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 64), CCID_PULL_NONE);
	h_free(h);
}
END_TEST

/* The same reply into one large request: the transfer is short already,
 * no zero-length packet follows. */
START_TEST(test_exact_multiple_in_big_request)
{
	struct harness *h = powered(NULL);
	uint8_t *r = make_resp(h, 118);
	uint8_t buf[512];
	uint8_t cmd[CCID_HDR_LEN + 4] = { 0 };

	fake_card_set_resp(&h->cards[0], r, 118);
	h_hdr(cmd, 0x6F, 4, 0, 0x24, 0, 0, 0);
	h_send(h, cmd, sizeof(cmd));
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, sizeof(buf)), 128);
	h_assert_bytes(buf + CCID_HDR_LEN, 118, r, 118, "reply data");
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, sizeof(buf)),
			 CCID_PULL_NONE);
	h_free(h);
}
END_TEST

/* A host buffer smaller than the reply and not a whole number of packets
 * (GnuPG's driver reads 2065 bytes): the transfer ends with a short
 * packet, so the host takes the message as over.  The rest of that reply
 * is dropped; the next reply comes whole, as its own message. */
START_TEST(test_short_buffer_cuts_message)
{
	struct harness *h = powered(NULL);
	uint8_t *r = make_resp(h, 300);
	uint8_t buf[512];
	uint8_t cmd[CCID_HDR_LEN + 4] = { 0 };
	static const uint8_t gss[] = { 0x65, 0, 0, 0, 0, 0, 0x26, 0, 0, 0 };

	fake_card_set_resp(&h->cards[0], r, 300);
	h_hdr(cmd, 0x6F, 4, 0, 0x25, 0, 0, 0);
	h_send(h, cmd, sizeof(cmd));
	h_send(h, gss, sizeof(gss));
	/* 100 bytes of the 310-byte DataBlock: 64 + a short 36 */
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 100), 100);
	h_assert_bytes(buf, CCID_HDR_LEN,
		       BYTES(0x80, LE32(300), 0x00, 0x25, 0x00, 0x00, 0x00),
		       "DataBlock header (dwLength 300)");
	ck_assert(h_log_contains(h, "the rest (210 bytes) is dropped"));
	/* next: the SlotStatus, not the DataBlock's remaining 210 bytes */
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 100), 10);
	h_assert_bytes(buf, 10, BYTES(0x81, LE32(0), 0x00, 0x26, 0x00, 0x00, 0x00),
		       "SlotStatus after the cut reply");
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 100), CCID_PULL_NONE);
	/* the slot is free again: a new command is answered */
	h_hdr(cmd, 0x6F, 4, 0, 0x27, 0, 0, 0);
	h_send(h, cmd, sizeof(cmd));
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, sizeof(buf)), 310);
	ck_assert_uint_eq(buf[6], 0x27);
	h_free(h);
}
END_TEST

/* The same reply read in whole packets (128 bytes a transfer) is
 * continued, not cut: 128 + 128 + 54. */
START_TEST(test_packet_multiple_continues_message)
{
	struct harness *h = powered(NULL);
	uint8_t *r = make_resp(h, 300);
	uint8_t buf[512];
	uint8_t cmd[CCID_HDR_LEN + 4] = { 0 };

	fake_card_set_resp(&h->cards[0], r, 300);
	h_hdr(cmd, 0x6F, 4, 0, 0x28, 0, 0, 0);
	h_send(h, cmd, sizeof(cmd));
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 128), 128);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 128), 128);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 128), 54);
	h_assert_bytes(buf + 52, 2, BYTES(0x90, 0x00), "SW at the end");
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 128), CCID_PULL_NONE);
	h_free(h);
}
END_TEST

/* Two queued replies never share a transfer. */
START_TEST(test_no_mixing)
{
	struct harness *h = powered(NULL);
	uint8_t buf[512];
	static const uint8_t gss1[] = { 0x65, 0, 0, 0, 0, 0, 0x31, 0, 0, 0 };
	static const uint8_t gss2[] = { 0x65, 0, 0, 0, 0, 0, 0x32, 0, 0, 0 };

	h_send(h, gss1, sizeof(gss1));
	h_send(h, gss2, sizeof(gss2));
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, sizeof(buf)), 10);
	ck_assert_uint_eq(buf[6], 0x31);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, sizeof(buf)), 10);
	ck_assert_uint_eq(buf[6], 0x32);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, sizeof(buf)),
			 CCID_PULL_NONE);
	h_free(h);
}
END_TEST

/* 8-byte packets. */
START_TEST(test_packet_8)
{
	struct ccid_config cfg;
	struct harness *h;
	uint8_t buf[8];
	static const uint8_t gss[] = { 0x65, 0, 0, 0, 0, 0, 0x41, 0, 0, 0 };
	uint8_t cmd[CCID_HDR_LEN + 4] = { 0 };
	static const uint8_t six[] = { 1, 2, 3, 4, 0x90, 0x00 };

	h_config_default(&cfg);
	cfg.bulk_max_packet = 8;
	h = powered(&cfg);
	/* 10 bytes as 8 + 2 */
	h_send(h, gss, 8);
	h_assert_no_reply(h);
	h_send(h, gss + 8, 2);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 8), 8);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 8), 2);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 8), CCID_PULL_NONE);
	/* a 16-byte reply: 8, 8, zero-length */
	fake_card_set_resp(&h->cards[0], six, sizeof(six));
	h_hdr(cmd, 0x6F, 4, 0, 0x42, 0, 0, 0);
	h_send_split(h, cmd, sizeof(cmd), 8);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 8), 8);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 8), 8);
	/* bytes 8..15: bError, bChainParameter, 01 02 03 04 90 00 */
	h_assert_bytes(buf, 8, BYTES(0x00, 0x00, 1, 2, 3, 4, 0x90, 0x00),
		       "second packet");
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 8), 0);
	ck_assert_int_eq(ccid_dev_bulk_in_pull(h->dev, buf, 8), CCID_PULL_NONE);
	h_free(h);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Largest extended APDU and response                                 */
/* ------------------------------------------------------------------ */
static void big_roundtrip(size_t chunk)
{
	struct harness *h = powered(NULL);
	size_t apdu_len = CCID_EMU_MAX_APDU_CMD;       /* 65544 */
	uint8_t *m = make_xfr(h, apdu_len, 0x50, 0);
	uint8_t *r = make_resp(h, CCID_EMU_MAX_APDU_RESP); /* 65538 */

	/* extended case 4: CLA INS P1 P2, Lc = 00 FF FF, 65535 bytes,
	 * Le = 00 00 */
	m[10] = 0x00;
	m[11] = 0xD6;
	m[12] = 0x00;
	m[13] = 0x00;
	m[14] = 0x00;
	m[15] = 0xFF;
	m[16] = 0xFF;
	m[CCID_HDR_LEN + apdu_len - 2] = 0x00;
	m[CCID_HDR_LEN + apdu_len - 1] = 0x00;
	fake_card_set_resp(&h->cards[0], r, CCID_EMU_MAX_APDU_RESP);
	ck_assert_uint_eq(CCID_HDR_LEN + apdu_len, CCID_EMU_DEFAULT_MAX_MSG);
	h_send_split(h, m, CCID_HDR_LEN + apdu_len, chunk);
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	h_assert_bytes(h->cards[0].last_apdu, h->cards[0].last_apdu_len,
		       m + CCID_HDR_LEN, apdu_len, "65544-byte APDU at the card");
	/* 65548 bytes: 1024 full packets + 12 */
	ck_assert_int_eq(h_pull_msg(h), (long)(CCID_HDR_LEN + CCID_EMU_MAX_APDU_RESP));
	check_datablock(h, 0x50, 0x00, r, CCID_EMU_MAX_APDU_RESP,
			"65538-byte response");
	h_assert_no_reply(h);
	h_free(h);
}

START_TEST(test_64k_one_transfer)
{
	big_roundtrip(CCID_EMU_DEFAULT_MAX_MSG);
}
END_TEST

START_TEST(test_64k_packets)
{
	big_roundtrip(64);
}
END_TEST

START_TEST(test_64k_4k_transfers)
{
	big_roundtrip(4096);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Extended APDU chaining, dwMaxCCIDMessageLength 271                  */
/* ------------------------------------------------------------------ */
#define CHUNK 261u      /* 271 - 10 */

static struct harness *small_msg(void)
{
	struct ccid_config cfg;

	h_config_default(&cfg);
	cfg.max_message_len = 271;
	return powered(&cfg);
}

/* Pulls the response chain the device started with the reply to @seq and
 * keeps asking with wLevelParameter 0x10; checks it reassembles to @exp. */
static void pull_response_chain(struct harness *h, uint8_t seq,
				const uint8_t *exp, size_t exp_len)
{
	uint8_t *got = h_malloc(h, exp_len + CHUNK);
	size_t got_len = 0;
	unsigned parts = 0;

	for (;;) {
		uint8_t chain;
		size_t n;

		ck_assert_msg(h_pull_msg(h) >= 0, "no reply for part %u", parts);
		ck_assert_uint_eq(h->msg[0], 0x80);     /* DataBlock */
		ck_assert_uint_eq(h->msg[5], 0x00);     /* bSlot */
		ck_assert_uint_eq(h->msg[6], seq);      /* bSeq */
		ck_assert_uint_eq(h->msg[7], 0x00);     /* OK + active */
		ck_assert_uint_eq(h->msg[8], 0x00);     /* bError */
		chain = h->msg[9];
		n = h->msg_len - CCID_HDR_LEN;
		ck_assert_uint_ge(n, 1);
		ck_assert_uint_le(n, CHUNK);
		ck_assert_uint_le(got_len + n, exp_len);
		if (parts == 0)
			ck_assert_msg(chain == 0x01, "first part bChainParameter "
				      "0x%02x, expected 0x01", chain);
		else
			ck_assert_msg(chain == 0x03 || chain == 0x02,
				      "part %u bChainParameter 0x%02x, expected "
				      "0x03 or 0x02", parts, chain);
		memcpy(got + got_len, h->msg + CCID_HDR_LEN, n);
		got_len += n;
		parts++;
		h_assert_no_reply(h);
		if (chain == 0x02)
			break;
		/* PC_to_RDR_XfrBlock: dwLength 0, wLevelParameter 0x0010:
		 * "send the next part of the response" */
		seq++;
		{
			uint8_t more[CCID_HDR_LEN];

			h_hdr(more, 0x6F, 0, 0, seq, 0x00, 0x10, 0x00);
			h_send(h, more, sizeof(more));
		}
	}
	h_assert_bytes(got, got_len, exp, exp_len, "reassembled response");
	/* full parts: the device fills each message */
	ck_assert_uint_eq(parts, (exp_len + CHUNK - 1) / CHUNK);
}

START_TEST(test_chain_command_and_response)
{
	struct harness *h = small_msg();
	size_t apdu_len = 600;
	uint8_t *apdu = make_xfr(h, apdu_len, 0, 0) + CCID_HDR_LEN;
	uint8_t *r = make_resp(h, CCID_EMU_MAX_APDU_RESP);
	uint8_t m[CCID_HDR_LEN + CHUNK];

	fake_card_set_resp(&h->cards[0], r, CCID_EMU_MAX_APDU_RESP);
	/* extended header: 00 D6 00 00, Lc = 00 02 51 (593) */
	apdu[0] = 0x00;
	apdu[1] = 0xD6;
	apdu[2] = 0x00;
	apdu[3] = 0x00;
	apdu[4] = 0x00;
	apdu[5] = 0x02;
	apdu[6] = 0x51;

	/* part 1: wLevelParameter 0x0001 "begins, more follows", 261 bytes */
	h_hdr(m, 0x6F, CHUNK, 0, 0x10, 0x00, 0x01, 0x00);
	memcpy(m + CCID_HDR_LEN, apdu, CHUNK);
	h_send_split(h, m, sizeof(m), 64);
	/* DataBlock: dwLength 0, OK, bChainParameter 0x10 "send more" */
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
			  0x10), "reply to chain part 1");
	ck_assert_uint_eq(h->cards[0].n_transmit, 0);

	/* part 2: wLevelParameter 0x0003 "continues", 261 bytes */
	h_hdr(m, 0x6F, CHUNK, 0, 0x11, 0x00, 0x03, 0x00);
	memcpy(m + CCID_HDR_LEN, apdu + CHUNK, CHUNK);
	h_send_split(h, m, sizeof(m), 64);
	h_expect(h, BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x00,
			  0x10), "reply to chain part 2");
	ck_assert_uint_eq(h->cards[0].n_transmit, 0);

	/* part 3: wLevelParameter 0x0002 "ends", 78 bytes */
	h_hdr(m, 0x6F, 78, 0, 0x12, 0x00, 0x02, 0x00);
	memcpy(m + CCID_HDR_LEN, apdu + 2 * CHUNK, 78);
	h_send_split(h, m, CCID_HDR_LEN + 78, 64);
	ck_assert_uint_eq(h->cards[0].n_transmit, 1);
	h_assert_bytes(h->cards[0].last_apdu, h->cards[0].last_apdu_len, apdu,
		       apdu_len, "reassembled command APDU at the card");

	/* 65538 bytes come back as 251 parts of 261 and one of 27 */
	pull_response_chain(h, 0x12, r, CCID_EMU_MAX_APDU_RESP);
	h_free(h);
}
END_TEST

/* A short command with a response longer than one message. */
START_TEST(test_chain_response_only)
{
	struct harness *h = small_msg();
	uint8_t *r = make_resp(h, 600);
	uint8_t cmd[CCID_HDR_LEN + 5];

	fake_card_set_resp(&h->cards[0], r, 600);
	h_hdr(cmd, 0x6F, 5, 0, 0x20, 0, 0, 0);
	memcpy(cmd + CCID_HDR_LEN, (const uint8_t[]){ 0x00, 0xB0, 0x00, 0x00,
						      0x00 }, 5);
	h_send(h, cmd, sizeof(cmd));
	pull_response_chain(h, 0x20, r, 600);
	/* the chain is over: another 0x10 is a sequence error */
	h_exchange(h, (&(struct vec){ "0x10 after the last part",
		BYTES(0x6F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x00, 0x10, 0x00),
		/* DataBlock: failed+active, bError 8 (wLevelParameter) */
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x40, 0x08, 0x00) }));
	h_free(h);
}
END_TEST

/* "Send more" must have an empty abData (CCID 1.1 §6.1.4). */
START_TEST(test_chain_more_with_data)
{
	struct harness *h = small_msg();
	uint8_t *r = make_resp(h, 600);
	uint8_t cmd[CCID_HDR_LEN + 5] = { 0 };

	fake_card_set_resp(&h->cards[0], r, 600);
	h_hdr(cmd, 0x6F, 5, 0, 0x20, 0, 0, 0);
	h_send(h, cmd, sizeof(cmd));
	ck_assert_int_ge(h_pull_msg(h), 0);
	ck_assert_uint_eq(h->msg[9], 0x01);
	/* XfrBlock dwLength 1, wLevelParameter 0x0010, one stray byte */
	h_send(h, BYTES(0x6F, 0x01, 0x00, 0x00, 0x00, 0x00, 0x21, 0x00, 0x10,
			0x00, 0xEE));
	ck_assert_int_ge(h_pull_msg(h), 0);
	ck_assert_uint_eq(h->msg_len, CCID_HDR_LEN);
	ck_assert_uint_eq(h->msg[0], 0x80);
	ck_assert_uint_eq(h->msg[6], 0x21);
	ck_assert_uint_eq(h->msg[7], 0x40);
	/* either field is the offending one: dwLength (1) or wLevelParameter (8) */
	ck_assert_msg(h->msg[8] == 0x01 || h->msg[8] == 0x08,
		      "bError 0x%02x", h->msg[8]);
	h_free(h);
}
END_TEST

/* A response that fits is not chained even on a small-message reader. */
START_TEST(test_chain_not_needed)
{
	struct harness *h = small_msg();
	uint8_t *r = make_resp(h, CHUNK);
	uint8_t cmd[CCID_HDR_LEN + 4];

	fake_card_set_resp(&h->cards[0], r, CHUNK);
	h_hdr(cmd, 0x6F, 4, 0, 0x21, 0, 0, 0);
	memset(cmd + CCID_HDR_LEN, 0, 4);
	h_send(h, cmd, sizeof(cmd));
	ck_assert_int_eq(h_pull_msg(h), (long)(CCID_HDR_LEN + CHUNK));
	check_datablock(h, 0x21, 0x00, r, CHUNK, "261-byte response in one");
	h_free(h);
}
END_TEST

/* Chaining is also allowed when the APDU would have fitted. */
START_TEST(test_chain_on_big_reader)
{
	struct harness *h = powered(NULL);

	h_exchange(h, (&(struct vec){ "part 1 of 2",
		/* XfrBlock dwLength 4, bSeq 0x40, wLevelParameter 0x0001 */
		BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x01, 0x00,
		      0x00, 0xA4, 0x04, 0x00),
		/* DataBlock, bChainParameter 0x10 */
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x10) }));
	h_exchange(h, (&(struct vec){ "part 2 of 2",
		/* XfrBlock dwLength 1, bSeq 0x41, wLevelParameter 0x0002 */
		BYTES(0x6F, 0x01, 0x00, 0x00, 0x00, 0x00, 0x41, 0x00, 0x02, 0x00,
		      0x00),
		BYTES(0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x41, 0x00, 0x00, 0x00,
		      0x90, 0x00) }));
	h_assert_bytes(h->cards[0].last_apdu, h->cards[0].last_apdu_len,
		       BYTES(0x00, 0xA4, 0x04, 0x00, 0x00), "APDU at the card");
	h_free(h);
}
END_TEST

/* wLevelParameter out of sequence: bError 8 (offset of wLevelParameter),
 * and nothing reaches the card. */
static const struct vec chain_errors[] = {
	{ "0x0003 without a beginning",
	  BYTES(0x6F, 0x02, 0x00, 0x00, 0x00, 0x00, 0x50, 0x00, 0x03, 0x00,
		0x00, 0xA4),
	  BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x40, 0x08, 0x00) },
	{ "0x0002 without a beginning",
	  BYTES(0x6F, 0x02, 0x00, 0x00, 0x00, 0x00, 0x51, 0x00, 0x02, 0x00,
		0x00, 0xA4),
	  BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x51, 0x40, 0x08, 0x00) },
	{ "0x0010 with no response pending",
	  BYTES(0x6F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x52, 0x00, 0x10, 0x00),
	  BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x52, 0x40, 0x08, 0x00) },
	{ "0x0004 (undefined)",
	  BYTES(0x6F, 0x02, 0x00, 0x00, 0x00, 0x00, 0x53, 0x00, 0x04, 0x00,
		0x00, 0xA4),
	  BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53, 0x40, 0x08, 0x00) },
	{ "0x0100 (undefined)",
	  BYTES(0x6F, 0x02, 0x00, 0x00, 0x00, 0x00, 0x54, 0x00, 0x00, 0x01,
		0x00, 0xA4),
	  BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x54, 0x40, 0x08, 0x00) },
	{ "0xFFFF (undefined)",
	  BYTES(0x6F, 0x02, 0x00, 0x00, 0x00, 0x00, 0x55, 0x00, 0xFF, 0xFF,
		0x00, 0xA4),
	  BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x55, 0x40, 0x08, 0x00) },
};

START_TEST(test_chain_errors)
{
	struct harness *h = small_msg();

	h_exchange(h, &chain_errors[_i]);
	ck_assert_uint_eq(h->cards[0].n_transmit, 0);
	/* the slot still works */
	h_exchange(h, (&(struct vec){ "plain XfrBlock afterwards",
		BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x56, 0x00, 0x00, 0x00,
		      0x00, 0xA4, 0x04, 0x00),
		BYTES(0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x56, 0x00, 0x00, 0x00,
		      0x90, 0x00) }));
	h_free(h);
}
END_TEST

/* "Send more" in the middle of a command chain is out of sequence. */
START_TEST(test_chain_error_mid_command)
{
	struct harness *h = small_msg();

	h_exchange(h, (&(struct vec){ "part 1",
		BYTES(0x6F, 0x02, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x01, 0x00,
		      0x00, 0xA4),
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x10) }));
	h_exchange(h, (&(struct vec){ "0x0010 instead of the next part",
		BYTES(0x6F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x00, 0x10, 0x00),
		BYTES(0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x40, 0x08, 0x00) }));
	ck_assert_uint_eq(h->cards[0].n_transmit, 0);
	h_free(h);
}
END_TEST

/* A command chain longer than any APDU never reaches the card whole, and
 * the device recovers.  (Which bError is reported is not pinned down.) */
START_TEST(test_chain_overflow)
{
	struct harness *h = small_msg();
	uint8_t m[CCID_HDR_LEN + CHUNK];
	bool failed = false;
	uint8_t seq = 0;

	memset(m + CCID_HDR_LEN, 0x11, CHUNK);
	for (unsigned part = 0; part < 260 && !failed; part++) {
		h_hdr(m, 0x6F, CHUNK, 0, seq++, 0x00, part ? 0x03 : 0x01, 0x00);
		h_send_split(h, m, sizeof(m), 64);
		ck_assert_msg(h_pull_msg(h) >= 0, "no reply to part %u", part);
		ck_assert_uint_eq(h->msg[0], 0x80);
		if (h->msg[7] & 0x40)
			failed = true;
		else
			ck_assert_uint_eq(h->msg[9], 0x10);
	}
	/* 251 parts (65511 bytes) fit in an APDU; the 252nd cannot */
	ck_assert_msg(failed, "67860-byte command chain accepted");
	ck_assert_uint_eq(h->cards[0].n_transmit, 0);
	h_drain(h);
	h_exchange(h, (&(struct vec){ "plain XfrBlock afterwards",
		BYTES(0x6F, 0x04, 0x00, 0x00, 0x00, 0x00, 0x70, 0x00, 0x00, 0x00,
		      0x00, 0xA4, 0x04, 0x00),
		BYTES(0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x70, 0x00, 0x00, 0x00,
		      0x90, 0x00) }));
	h_free(h);
}
END_TEST


/* USB 2.0 §9.1.1.5: before SET_CONFIGURATION(1) only endpoint 0 exists.
 * Bulk-OUT is dropped (the card never sees a power on), and nothing can be
 * pulled from bulk-IN or interrupt-IN, not even the pending notification;
 * after configuring, the same command works and the notification comes. */
START_TEST(test_unconfigured_endpoints_inert)
{
	struct ccid_config cfg;
	struct harness *h;
	uint8_t buf[64];
	/* PC_to_RDR_IccPowerOn: dwLength 0, slot 0, seq 1, auto voltage */
	const uint8_t power_on[] = { 0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
				     0x00, 0x00, 0x00 };

	h_config_default(&cfg);
	h = h_new(&cfg, true);
	h_send(h, power_on, sizeof(power_on));
	ck_assert_uint_eq(h->cards[0].n_power_on, 0);
	h_assert_no_reply(h);
	ck_assert_int_eq(ccid_dev_intr_in_pull(h->dev, buf, sizeof(buf)),
			 CCID_PULL_NONE);
	h_set_config(h, 1);
	/* NotifySlotChange: slot 0 present + changed */
	ck_assert_int_eq(ccid_dev_intr_in_pull(h->dev, buf, sizeof(buf)), 2);
	ck_assert_uint_eq(buf[0], 0x50);
	ck_assert_uint_eq(buf[1], 0x03);
	h_send(h, power_on, sizeof(power_on));
	ck_assert_uint_eq(h->cards[0].n_power_on, 1);
	h_free(h);
}
END_TEST

static Suite *transfer_suite(void)
{
	Suite *s = suite_create("transfer");
	TCase *tc;

	tc = h_tcase("framing");
	tcase_add_test(tc, test_unconfigured_endpoints_inert);
	tcase_add_test(tc, test_split_64);
	tcase_add_test(tc, test_one_transfer);
	tcase_add_test(tc, test_split_512);
	tcase_add_test(tc, test_exact_multiple_out);
	tcase_add_test(tc, test_exact_multiple_in_zlp);
	tcase_add_test(tc, test_exact_multiple_in_big_request);
	tcase_add_test(tc, test_no_mixing);
	tcase_add_test(tc, test_short_buffer_cuts_message);
	tcase_add_test(tc, test_packet_multiple_continues_message);
	tcase_add_test(tc, test_packet_8);
	suite_add_tcase(s, tc);

	tc = h_tcase("64k");
	tcase_add_test(tc, test_64k_one_transfer);
	tcase_add_test(tc, test_64k_packets);
	tcase_add_test(tc, test_64k_4k_transfers);
	suite_add_tcase(s, tc);

	tc = h_tcase("chaining");
	tcase_add_test(tc, test_chain_command_and_response);
	tcase_add_test(tc, test_chain_response_only);
	tcase_add_test(tc, test_chain_more_with_data);
	tcase_add_test(tc, test_chain_not_needed);
	tcase_add_test(tc, test_chain_on_big_reader);
	tcase_add_loop_test(tc, test_chain_errors, 0, (int)N_ELEMS(chain_errors));
	tcase_add_test(tc, test_chain_error_mid_command);
	tcase_add_test(tc, test_chain_overflow);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return h_run_suite(transfer_suite());
}
