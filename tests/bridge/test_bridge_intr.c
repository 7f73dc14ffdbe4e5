/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bridge's interrupt data path against the fake QEMU: the bulk-IN
 * endpoint announced as interrupt in ep_info, replies pushed as pieces of
 * at most wMaxPacketSize that QEMU buffers only between start and stop of
 * interrupt receiving.  The fake reads them like a UHCI guest: one piece
 * per TD, babble when a piece is larger than its TD.
 *
 * Checked: which peers get the path (bulk-OUT too with interrupt-both),
 * the pieces of 63/64/65-byte and 64 KiB replies, nothing pushed before
 * start, a reply ready while the guest is idle, a reply half
 * read when the endpoint stops, no stale copy once the next command came,
 * time extension, a reply that comes a little later (held in the fence)
 * or much later (the bulk path, and back), USB reset, the fallback to bulk when the peer rejects
 * the device, and 64 KiB APDUs chained within the 16-bit interrupt length
 * behind UHCI and xHCI.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <usbredirparser.h>

#include "ccid_bridge.h"
#include "ccid_card_loopback.h"
#include "fake_qemu.h"
#include "served.h"

#define QEMU_HELLO "qemu usb-redir guest 7.2.0"
/* usbredir endpoint table indexes: OUT 0..15, IN 16..31 */
#define I_BULK_OUT 2
#define I_BULK_IN  17
#define I_INTR_IN  19

/* A QEMU-like peer with the device configured and the card powered
 * (IccPowerOn answered on the interrupt path). */
static void setup_qemu(struct served *s, struct fake_qemu *g, uint32_t te_ms)
{
	static const uint8_t power_on[10] = {
		CCID_PC_TO_RDR_ICC_POWER_ON, 0, 0, 0, 0, 0, 1, 0, 0, 0
	};
	uint8_t atr[80];
	uint32_t n;

	served_init(s, te_ms);
	connect_pair_version(s, g, QEMU_HELLO);
	fake_qemu_set_configuration(g, 1);
	fake_qemu_data_start(g);
	fake_qemu_bulk_out(g, power_on, sizeof(power_on));
	n = fake_qemu_data_read(g, atr, sizeof(atr), 64, 0, 2000);
	ck_assert_uint_ge(n, 12);
	ck_assert_int_eq(atr[0], CCID_RDR_TO_PC_DATA_BLOCK);
	ck_assert_int_eq(atr[6], 1);
	ck_assert_int_eq(atr[10], 0x3B);
}

/* XfrBlock(ECHO of @lc bytes i & 0xFF) with bSeq @seq; the reply is
 * 10 + lc + 2 bytes. */
/* Returns how many reply pieces QEMU had when the command completed. */
static unsigned send_echo(struct fake_qemu *g, uint8_t seq, unsigned lc)
{
	static uint8_t apdu[300], msg[320];
	uint32_t n;
	uint64_t id;

	ck_assert_uint_le(lc, 255);
	apdu[0] = 0x80; apdu[1] = 0x01; apdu[2] = 0; apdu[3] = 0;
	apdu[4] = (uint8_t)lc;
	for (unsigned i = 0; i < lc; i++)
		apdu[5 + i] = (uint8_t)i;
	n = fake_qemu_xfr_block(msg, seq, apdu, 5 + lc);
	/* a UHCI guest: one packet per 64-byte TD */
	id = fake_qemu_bulk_out_tds(g, msg, n, 64);
	return g->bulk[id % FAKE_QEMU_BULK_SLOTS].data_count;
}

static void check_echo_reply(const uint8_t *r, uint32_t n, uint8_t seq,
			     unsigned lc)
{
	ck_assert_uint_eq(n, 10 + lc + 2);
	ck_assert_int_eq(r[0], CCID_RDR_TO_PC_DATA_BLOCK);
	ck_assert_int_eq(r[6], seq);
	ck_assert_int_eq(r[7], 0x00);
	for (unsigned i = 0; i < lc; i++)
		ck_assert_int_eq(r[10 + i], (uint8_t)i);
	ck_assert_int_eq(r[10 + lc], 0x90);
	ck_assert_int_eq(r[11 + lc], 0x00);
}

static void send_pattern_64k(struct fake_qemu *g, uint8_t seq)
{
	/* PATTERN with extended Le 00 00 00: 65536 bytes + 90 00 */
	static const uint8_t pattern[] = { 0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00 };
	uint8_t msg[32];
	uint32_t n = fake_qemu_xfr_block(msg, seq, pattern, sizeof(pattern));

	fake_qemu_bulk_out(g, msg, n);
}

static void check_pattern_64k(const uint8_t *r, uint32_t n, uint8_t seq)
{
	ck_assert_uint_eq(n, 10 + 65536 + 2);
	ck_assert_int_eq(r[6], seq);
	for (uint32_t i = 0; i < 65536; i++)
		if (r[10 + i] != ccid_card_loopback_pattern_byte(i))
			ck_abort_msg("pattern byte %u differs", i);
	ck_assert_int_eq(r[10 + 65536], 0x90);
}

START_TEST(test_path_chosen_by_peer)
{
	/* hello version, data path asked, interrupt-both's configuration
	 * (dwMaxCCIDMessageLength 65535) or the library's default (65554),
	 * bulk-IN and bulk-OUT types QEMU gets */
	static const struct {
		const char *version;
		enum ccid_bridge_data_path path;
		bool agent_cfg;
		uint8_t in_type, out_type;
	} vec[] = {
		/* the default: bulk-OUT stays bulk (its completion waits
		 * for the answer), whatever dwMaxCCIDMessageLength */
		{ QEMU_HELLO,  CCID_BRIDGE_PATH_AUTO, true,
		  usb_redir_type_interrupt, usb_redir_type_bulk },
		{ QEMU_HELLO,  CCID_BRIDGE_PATH_AUTO, false,
		  usb_redir_type_interrupt, usb_redir_type_bulk },
		/* not QEMU: the bulk fallback */
		{ "fake-qemu", CCID_BRIDGE_PATH_AUTO, true,
		  usb_redir_type_bulk, usb_redir_type_bulk },
		{ "fake-qemu", CCID_BRIDGE_PATH_AUTO, false,
		  usb_redir_type_bulk, usb_redir_type_bulk },
		{ QEMU_HELLO,  CCID_BRIDGE_PATH_BULK, true,
		  usb_redir_type_bulk, usb_redir_type_bulk },
		{ "fake-qemu", CCID_BRIDGE_PATH_INTERRUPT, true,
		  usb_redir_type_interrupt, usb_redir_type_bulk },
		{ QEMU_HELLO,  CCID_BRIDGE_PATH_INTERRUPT_BOTH, false,
		  usb_redir_type_interrupt, usb_redir_type_interrupt },
		{ QEMU_HELLO,  CCID_BRIDGE_PATH_INTERRUPT_BOTH, true,
		  usb_redir_type_interrupt, usb_redir_type_interrupt },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(vec); i++) {
		struct served s;
		struct fake_qemu g;
		struct ccid_bridge_stats st;

		if (vec[i].agent_cfg)
			served_init_agent(&s, 500);
		else
			served_init(&s, 500);
		ccid_bridge_set_data_path(s.bridge, vec[i].path);
		connect_pair_version(&s, &g, vec[i].version);
		ck_assert_msg(g.ep.type[I_BULK_IN] == vec[i].in_type,
			      "case %zu: bulk-IN type %d", i, g.ep.type[I_BULK_IN]);
		ck_assert_msg(g.ep.type[I_BULK_OUT] == vec[i].out_type,
			      "case %zu: bulk-OUT type %d", i, g.ep.type[I_BULK_OUT]);
		/* QEMU rejects interrupt endpoints with interval 0. */
		if (vec[i].in_type == usb_redir_type_interrupt)
			ck_assert_int_ne(g.ep.interval[I_BULK_IN], 0);
		ck_assert_int_eq(g.ep.max_packet_size[I_BULK_IN], 64);
		ck_assert_int_eq(g.ep.type[I_INTR_IN], usb_redir_type_interrupt);
		/* The configuration's ep_info says the same. */
		fake_qemu_set_configuration(&g, 1);
		ck_assert_int_eq(g.ep.type[I_BULK_IN], vec[i].in_type);
		ck_assert_int_eq(g.ep.type[I_BULK_OUT], vec[i].out_type);
		ccid_bridge_get_stats(s.bridge, &st);
		ck_assert_int_eq(st.interrupt_path,
				 vec[i].in_type == usb_redir_type_interrupt);
		ck_assert_int_eq(st.interrupt_out,
				 vec[i].out_type == usb_redir_type_interrupt);
		fake_qemu_fini(&g);
		served_fini(&s);
	}
}
END_TEST

/* Pieces of each reply: full 64-byte pieces, then a short one; a reply
 * that is a multiple of 64 bytes ends with a zero-length piece, as a
 * bulk endpoint would end it with a ZLP. */
START_TEST(test_pieces_and_zero_length_packets)
{
	static const struct {
		unsigned lc;          /* ECHO data bytes */
		unsigned reply;       /* 10 + lc + 2 */
		unsigned pieces;      /* interrupt packets for the reply */
		unsigned last;        /* length of the last one */
	} vec[] = {
		{  51,  63, 1, 63 },  /* 63: one short piece */
		{  52,  64, 2,  0 },  /* 64: 64 + ZLP */
		{  53,  65, 2,  1 },  /* 65: 64 + 1 */
		{ 116, 128, 3,  0 },  /* 128: 64 + 64 + ZLP */
		{   0,  12, 1, 12 },  /* status word only */
	};
	struct served s;
	struct fake_qemu g;
	uint8_t r[300];

	setup_qemu(&s, &g, 500);
	for (size_t i = 0; i < G_N_ELEMENTS(vec); i++) {
		uint8_t seq = (uint8_t)(10 + i);
		unsigned head = g.data_head, n;
		uint32_t got;

		/* The whole reply comes before the command's completion, so
		 * the guest cannot start reading a reply QEMU has half of. */
		ck_assert_uint_eq(send_echo(&g, seq, vec[i].lc), vec[i].pieces);
		got = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
		check_echo_reply(r, got, seq, vec[i].lc);
		n = (g.data_head + FAKE_QEMU_MAX_PIECES - head) % FAKE_QEMU_MAX_PIECES;
		ck_assert_msg(n == vec[i].pieces, "reply %u: %u pieces",
			      vec[i].reply, n);
		ck_assert_int_eq(g.data_len[(g.data_head + FAKE_QEMU_MAX_PIECES - 1) %
					    FAKE_QEMU_MAX_PIECES], (int)vec[i].last);
		ck_assert_uint_eq(g.data_count, 0);   /* nothing extra */
	}
	ck_assert_uint_eq(g.data_dropped, 0);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_64k_reply_in_pieces)
{
	struct served s;
	struct fake_qemu g;
	static uint8_t r[70000];
	uint32_t n;

	setup_qemu(&s, &g, 500);
	send_pattern_64k(&g, 3);
	/* 65548 bytes: 1024 pieces of 64, then 12 */
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 5000);
	check_pattern_64k(r, n, 3);
	ck_assert_uint_eq(g.data_len[(g.data_head + FAKE_QEMU_MAX_PIECES - 1) %
				     FAKE_QEMU_MAX_PIECES], 12);
	/* A second one right after: nothing left over from the first. */
	send_echo(&g, 4, 3);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 4, 3);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

static bool has_dropped_or_queued(struct fake_qemu *g, void *arg)
{
	return g->data_dropped > 0 || g->data_count > 0;
}

/* QEMU frees interrupt packets that arrive before start_interrupt_receiving:
 * a reply ready before the guest polls waits in the bridge. */
START_TEST(test_nothing_pushed_before_start)
{
	static const uint8_t slot_status[10] = {
		CCID_PC_TO_RDR_GET_SLOT_STATUS, 0, 0, 0, 0, 0, 1, 0, 0, 0
	};
	struct served s;
	struct fake_qemu g;
	uint8_t r[100];
	uint32_t n;

	served_init(&s, 500);
	connect_pair_version(&s, &g, QEMU_HELLO);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_bulk_out(&g, slot_status, sizeof(slot_status));
	/* The reader answers at once; give the bridge every chance to push
	 * too early (a wrong bridge fails here, a right one never does). */
	ck_assert(!fake_qemu_spin(&g, has_dropped_or_queued, NULL, 200));
	fake_qemu_data_start(&g);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	ck_assert_uint_eq(n, 10);
	ck_assert_int_eq(r[0], CCID_RDR_TO_PC_SLOT_STATUS);
	ck_assert_int_eq(r[6], 1);
	ck_assert_uint_eq(g.data_dropped, 0);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* The guest finished a read and idles: the controller stops the endpoint
 * (UHCI after 32 unseen frames).  The next reply becomes ready while
 * nobody polls, and comes when the guest polls again. */
START_TEST(test_reply_ready_while_idle)
{
	struct served s;
	struct fake_qemu g;
	uint8_t r[300];
	uint32_t n;

	setup_qemu(&s, &g, 500);
	fake_qemu_data_stop(&g);
	send_echo(&g, 2, 200);
	ck_assert(!fake_qemu_spin(&g, has_dropped_or_queued, NULL, 100));
	fake_qemu_data_start(&g);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 2, 200);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

static bool two_pieces_queued(struct fake_qemu *g, void *arg)
{
	return g->data_count >= 2;
}

/* QEMU frees what it buffered when the endpoint stops (xHCI stop/reset
 * endpoint, a read the guest cancels): the whole reply comes again from
 * its first byte at the next start, so none of it is lost. */
START_TEST(test_stop_mid_reply_resends_whole_reply)
{
	struct served s;
	struct fake_qemu g;
	static uint8_t r[70000];
	struct ccid_bridge_stats st;
	uint32_t n;

	setup_qemu(&s, &g, 500);
	send_pattern_64k(&g, 5);
	/* The guest reads 10 pieces, then the endpoint stops. */
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 10, 5000);
	ck_assert_uint_eq(n, 640);
	fake_qemu_data_stop(&g);
	fake_qemu_data_start(&g);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 5000);
	check_pattern_64k(r, n, 5);
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert_uint_eq(st.resent, 1);
	/* And a reply pushed in full (112 bytes: 64 + 48), then freed
	 * unread on a stop. */
	send_echo(&g, 6, 100);
	ck_assert(fake_qemu_spin(&g, two_pieces_queued, NULL, 2000));
	fake_qemu_data_stop(&g);
	fake_qemu_data_start(&g);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 6, 100);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* Once the guest sends its next command, the previous reply is known to
 * be read: a stop/start cycle in between (the guest idled) must not bring
 * a stale copy in front of the new reply. */
/* A bulk-IN request while bulk-IN is announced as interrupt is the
 * peer's mistake (QEMU never sends one): it is refused at once with
 * inval and no data, not left open.  Before, the refusal kept the length
 * asked for, usbredirparser would not send an IN answer whose data is
 * shorter than its length, and the request stayed open for ever (found by
 * fuzz_usbredir_bridge). */
START_TEST(test_bulk_in_request_on_interrupt_path_refused)
{
	struct served s;
	struct fake_qemu g;
	uint8_t r[300];
	uint64_t id;
	uint32_t n;

	setup_qemu(&s, &g, 500);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_interrupt);
	id = fake_qemu_bulk_in_request(&g, 64);
	ck_assert_msg(fake_qemu_spin(&g, fake_qemu_bulk_done,
				     GUINT_TO_POINTER(id), 2000),
		      "the refused bulk-IN request got no answer");
	ck_assert_int_eq(g.bulk[id % FAKE_QEMU_BULK_SLOTS].status,
			 usb_redir_inval);
	ck_assert_int_eq(g.bulk[id % FAKE_QEMU_BULK_SLOTS].len, 0);
	/* The reader goes on as before. */
	send_echo(&g, 2, 40);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 2, 40);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_next_command_commits_reply)
{
	struct served s;
	struct fake_qemu g;
	uint8_t r[300];
	uint32_t n;

	setup_qemu(&s, &g, 500);
	send_echo(&g, 7, 80);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 7, 80);
	fake_qemu_data_stop(&g);           /* idle */
	send_echo(&g, 8, 20);              /* next command */
	fake_qemu_data_start(&g);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 8, 20);
	ck_assert_uint_eq(g.data_count, 0);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_time_extension_on_interrupt_path)
{
	struct served s;
	struct fake_qemu g;
	/* DELAY 300 ms: 80 03 00 00 04 00 00 01 2C */
	const uint8_t delay[] = { 0x80, 0x03, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, 0x2C };
	uint8_t msg[32], r[100];
	uint32_t n;
	int ext = 0;

	setup_qemu(&s, &g, 100);     /* time extension every 100 ms */
	n = fake_qemu_xfr_block(msg, 9, delay, sizeof(delay));
	fake_qemu_bulk_out(&g, msg, n);
	for (;;) {
		n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
		ck_assert_int_eq(r[6], 9);
		if (r[7] != 0x80)
			break;
		ck_assert_uint_eq(n, 10);
		ext++;
		ck_assert_int_lt(ext, 20);
		if (ext == 1) {
			/* The guest idles between reads: stop and start. */
			fake_qemu_data_stop(&g);
			fake_qemu_data_start(&g);
		}
	}
	ck_assert_int_ge(ext, 1);
	ck_assert_uint_eq(n, 12);
	ck_assert_int_eq(r[7], 0x00);
	ck_assert_int_eq(r[10], 0x90);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* DELAY @ms on the loopback card (80 03 00 00 04, then the milliseconds
 * big-endian), one 64-byte TD per bulk-OUT packet; returns the last
 * packet's id. */
static uint64_t send_delay(struct fake_qemu *g, uint8_t seq, uint32_t ms)
{
	const uint8_t apdu[9] = {
		0x80, 0x03, 0x00, 0x00, 0x04,
		(uint8_t)(ms >> 24), (uint8_t)(ms >> 16), (uint8_t)(ms >> 8),
		(uint8_t)ms,
	};
	uint8_t msg[32];
	uint32_t n = fake_qemu_xfr_block(msg, seq, apdu, sizeof(apdu));

	return fake_qemu_bulk_out_tds(g, msg, n, 64);
}

/* A reply the card gives a little later (another thread, a timer): the
 * command's completion waits for it, so the whole reply is in QEMU before
 * the guest can post its read (the fence). */
START_TEST(test_later_reply_waits_in_fence)
{
	struct served s;
	struct fake_qemu g;
	struct ccid_bridge_stats st;
	uint8_t r[100];
	gint64 t0;
	uint64_t id;
	uint32_t n;

	setup_qemu(&s, &g, 500);
	t0 = g_get_monotonic_time();
	id = send_delay(&g, 2, 10);
	ck_assert_int_ge(g_get_monotonic_time() - t0, 10 * G_TIME_SPAN_MILLISECOND);
	/* 12 bytes: one piece, queued before the completion came */
	ck_assert_uint_eq(g.bulk[id % FAKE_QEMU_BULK_SLOTS].data_count, 1);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	ck_assert_uint_eq(n, 12);
	ck_assert_int_eq(r[6], 2);
	ck_assert_int_eq(r[10], 0x90);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_interrupt);
	ck_assert_uint_eq(g.data_bulk_reads, 0);
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert_uint_eq(st.in_flips, 0);
	ck_assert_uint_eq(st.fence_timeouts, 0);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* A long operation outlives the fence: before completing the command the
 * reader announces bulk-IN as bulk again, the time extensions and the
 * answer come through bulk-IN requests (none as interrupt pieces, which
 * the guest might read half of around a stop), and the next command
 * whose reply is ready at once brings bulk-IN back to interrupt before
 * its completion. */
START_TEST(test_long_operation_on_bulk_path_and_back)
{
	struct served s;
	struct fake_qemu g;
	struct ccid_bridge_stats st;
	uint8_t r[300];
	guint64 pieces;
	uint64_t id;
	uint32_t n;
	int ext = 0;

	setup_qemu(&s, &g, 100);          /* time extension every 100 ms */
	ccid_bridge_get_stats(s.bridge, &st);
	pieces = st.data_pieces;
	id = send_delay(&g, 3, 300);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_bulk);
	ck_assert_uint_eq(g.bulk[id % FAKE_QEMU_BULK_SLOTS].data_count, 0);
	for (;;) {
		n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
		ck_assert_int_eq(r[6], 3);
		if (r[7] != 0x80)
			break;
		ck_assert_uint_eq(n, 10);
		ck_assert_int_lt(++ext, 20);
	}
	ck_assert_int_ge(ext, 1);
	ck_assert_uint_eq(n, 12);
	ck_assert_int_eq(r[10], 0x90);
	ck_assert_uint_eq(g.data_bulk_reads, (unsigned)ext + 1);
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert_uint_eq(st.data_pieces, pieces);
	ck_assert_uint_eq(st.in_flips, 1);
	ck_assert_uint_eq(st.fence_timeouts, 1);

	/* ECHO of 100 bytes, ready at once: 112 bytes, two pieces in QEMU
	 * when the command completes, and interrupt again */
	ck_assert_uint_eq(send_echo(&g, 4, 100), 2);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_interrupt);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 4, 100);
	ck_assert_uint_eq(g.data_bulk_reads, (unsigned)ext + 1);
	ck_assert_uint_eq(g.data_wrong_type, 0);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* A USB reset drops the reply waiting for the guest: after it the
 * guest enumerates again and sees only new replies. */
START_TEST(test_usb_reset_drops_held_reply)
{
	static const uint8_t slot_status[10] = {
		CCID_PC_TO_RDR_GET_SLOT_STATUS, 0, 0, 0, 0, 0, 3, 0, 0, 0
	};
	struct served s;
	struct fake_qemu g;
	uint8_t r[100];
	uint32_t n;

	setup_qemu(&s, &g, 500);
	fake_qemu_data_stop(&g);
	send_echo(&g, 2, 30);
	usbredirparser_send_reset(g.parser);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_data_start(&g);
	fake_qemu_bulk_out(&g, slot_status, sizeof(slot_status));
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	ck_assert_uint_eq(n, 10);
	ck_assert_int_eq(r[0], CCID_RDR_TO_PC_SLOT_STATUS);
	ck_assert_int_eq(r[6], 3);
	ck_assert_uint_eq(g.data_count, 0);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* A QEMU that rejects the device (usbredir filter_reject) while the
 * interrupt path is offered gets the same device again on the bulk path,
 * and it works there. */
START_TEST(test_rejected_interrupt_path_falls_back)
{
	struct served s;
	struct fake_qemu g;
	struct ccid_bridge_stats st;

	served_init(&s, 500);
	connect_pair_version(&s, &g, QEMU_HELLO);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_interrupt);
	g.connected = false;
	usbredirparser_send_filter_reject(g.parser);
	ck_assert_msg(fake_qemu_spin(&g, fake_qemu_is_connected, NULL, 2000),
		      "no second device_connect");
	ck_assert_uint_eq(g.n_connects, 2);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_bulk);
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert(!st.interrupt_path);
	ck_assert_uint_eq(st.fallbacks, 1);
	fake_qemu_set_configuration(&g, 1);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_bulk);
	fake_qemu_power_on(&g, 1);
	/* A second reject is a real one: no third offer.  The answer to a
	 * control transfer sent after the reject is the barrier: the bridge
	 * handles our packets in order and writes its own in order, so a
	 * device_connect for the reject would arrive before it. */
	usbredirparser_send_filter_reject(g.parser);
	fake_qemu_control_in(&g, 0x80, 0x00, 0, 0, 2);   /* GET_STATUS */
	ck_assert_uint_eq(g.n_connects, 2);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* interrupt-both: bulk-OUT arrives as interrupt packets, one UHCI TD
 * (<= 64 bytes) each, and is reassembled by the device. */
START_TEST(test_interrupt_out_pieces)
{
	static const uint8_t power_on[10] = {
		CCID_PC_TO_RDR_ICC_POWER_ON, 0, 0, 0, 0, 0, 1, 0, 0, 0
	};
	struct served s;
	struct fake_qemu g;
	static uint8_t apdu[300], msg[320], r[300];
	struct ccid_bridge_stats st;
	uint32_t len, n;

	served_init(&s, 500);
	ccid_bridge_set_data_path(s.bridge, CCID_BRIDGE_PATH_INTERRUPT_BOTH);
	connect_pair_version(&s, &g, QEMU_HELLO);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_data_start(&g);
	fake_qemu_intr_out(&g, power_on, sizeof(power_on), 64);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	ck_assert_int_eq(r[10], 0x3B);
	/* ECHO of 118 bytes: a 133-byte command in pieces 64 + 64 + 5 */
	apdu[0] = 0x80; apdu[1] = 0x01; apdu[4] = 118;
	for (unsigned i = 0; i < 118; i++)
		apdu[5 + i] = (uint8_t)i;
	len = fake_qemu_xfr_block(msg, 2, apdu, 5 + 118);
	fake_qemu_intr_out(&g, msg, len, 64);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 2, 118);
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert_uint_eq(st.intr_out, 1 + 3);   /* power on + 3 pieces */
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* interrupt-both behind a controller that hands QEMU whole transfers
 * (xHCI): the first interrupt-OUT packet larger than 64 bytes is taken,
 * and bulk-OUT goes back to bulk in a new ep_info. */
START_TEST(test_interrupt_out_whole_transfer_goes_bulk)
{
	static const uint8_t power_on[10] = {
		CCID_PC_TO_RDR_ICC_POWER_ON, 0, 0, 0, 0, 0, 1, 0, 0, 0
	};
	struct served s;
	struct fake_qemu g;
	static uint8_t apdu[300], msg[320], r[300];
	struct ccid_bridge_stats st;
	uint32_t len, n;

	served_init(&s, 500);
	ccid_bridge_set_data_path(s.bridge, CCID_BRIDGE_PATH_INTERRUPT_BOTH);
	connect_pair_version(&s, &g, QEMU_HELLO);
	fake_qemu_set_configuration(&g, 1);
	ck_assert_int_eq(g.ep.type[I_BULK_OUT], usb_redir_type_interrupt);
	fake_qemu_data_start(&g);
	fake_qemu_intr_out(&g, power_on, sizeof(power_on), 4096);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	ck_assert_int_eq(r[10], 0x3B);
	/* 10 bytes said nothing: still interrupt */
	ck_assert_int_eq(g.ep.type[I_BULK_OUT], usb_redir_type_interrupt);
	apdu[0] = 0x80; apdu[1] = 0x01; apdu[4] = 118;
	for (unsigned i = 0; i < 118; i++)
		apdu[5 + i] = (uint8_t)i;
	len = fake_qemu_xfr_block(msg, 2, apdu, 5 + 118);
	fake_qemu_intr_out(&g, msg, len, 4096);     /* one 133-byte packet */
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 2, 118);
	ck_assert_int_eq(g.ep.type[I_BULK_OUT], usb_redir_type_bulk);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_interrupt);
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert_uint_eq(st.out_to_bulk, 1);
	ck_assert(!st.interrupt_out);
	/* Bulk from now on. */
	send_echo(&g, 3, 200);
	n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
	check_echo_reply(r, n, 3, 200);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* Behind a controller that hands QEMU whole transfers (xHCI) the first
 * bulk-OUT packet over 64 bytes puts bulk-IN back on the bulk path: a new
 * ep_info before the answer to that packet, and the reply comes through a
 * bulk-IN request. */
START_TEST(test_whole_transfer_puts_in_back_to_bulk)
{
	struct served s;
	struct fake_qemu g;
	static uint8_t apdu[300], msg[320];
	struct fake_qemu_reply *r;
	struct ccid_bridge_stats st;
	uint32_t len;
	int i_ep = -1;
	unsigned before;

	setup_qemu(&s, &g, 500);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_interrupt);
	send_echo(&g, 2, 100);               /* in 64-byte TDs: no change */
	len = fake_qemu_data_read(&g, msg, sizeof(msg), 64, 0, 2000);
	check_echo_reply(msg, len, 2, 100);
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_interrupt);
	apdu[0] = 0x80; apdu[1] = 0x01; apdu[4] = 118;
	for (unsigned i = 0; i < 118; i++)
		apdu[5 + i] = (uint8_t)i;
	len = fake_qemu_xfr_block(msg, 3, apdu, 5 + 118);
	before = g.n_events;
	fake_qemu_bulk_out(&g, msg, len);    /* one 133-byte packet */
	ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_bulk);
	ck_assert_int_eq(g.ep.type[I_BULK_OUT], usb_redir_type_bulk);
	for (unsigned i = before; i < g.n_events; i++)
		if (!strcmp(g.events[i], "ep_info"))
			i_ep = (int)i;
	ck_assert_int_ge(i_ep, 0);
	r = fake_qemu_bulk_in(&g, 65600, 2000);
	ck_assert_int_eq(r->status, usb_redir_success);
	check_echo_reply(r->data, (uint32_t)r->len, 3, 118);
	ck_assert_uint_eq(g.data_count, 0);
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert_uint_eq(st.in_to_bulk, 1);
	ck_assert(!st.interrupt_path);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* dwMaxCCIDMessageLength in the configuration descriptor the guest reads
 * (CCID 1.1 §5.1: offset 44 of the class descriptor, type 0x21). */
static uint32_t guest_max_message_len(struct served *s)
{
	size_t len;
	const uint8_t *c = ccid_dev_config_descriptor(
		ccid_bridge_get_dev(s->bridge), &len);

	for (size_t off = 0; off + 2 <= len && c[off] >= 2; off += c[off])
		if (c[off + 1] == 0x21 && off + 48 <= len)
			return (uint32_t)c[off + 44] | (uint32_t)c[off + 45] << 8 |
			       (uint32_t)c[off + 46] << 16 |
			       (uint32_t)c[off + 47] << 24;
	ck_abort_msg("no CCID class descriptor");
	return 0;
}

/* One command transfer as the guest's controller hands it to QEMU: in TDs
 * of at most @td bytes, as interrupt packets while QEMU has the endpoint
 * as interrupt, as one bulk packet once it is bulk again. */
static void guest_out(struct fake_qemu *g, const uint8_t *msg, uint32_t len,
		      unsigned td)
{
	if (g->ep.type[I_BULK_OUT] == usb_redir_type_interrupt)
		fake_qemu_intr_out(g, msg, len, td);
	else
		fake_qemu_bulk_out(g, msg, len);
}

/* XfrBlock with wLevelParameter @level around @n bytes of @apdu. */
static uint32_t xfr_level(uint8_t *msg, uint8_t seq, uint16_t level,
			  const uint8_t *apdu, uint32_t n)
{
	uint32_t len = fake_qemu_xfr_block(msg, seq, apdu, n);

	msg[8] = (uint8_t)level;
	msg[9] = (uint8_t)(level >> 8);
	return len;
}

/* interrupt-both with its configuration (ccid_bridge_config_init): a 64 KiB
 * extended APDU (ECHO of 65535 bytes, 65544 bytes) and its 65537-byte answer,
 * chained as libccid's CmdXfrBlockAPDU_extended and GnuPG's driver chain
 * them once the APDU exceeds dwMaxCCIDMessageLength - 10 (wLevelParameter
 * 1, 2, 0x10; bChainParameter 0x10, 1, 2).  No transfer exceeds 65535
 * bytes, so none can be lost to QEMU's 16-bit interrupt length: behind
 * UHCI (64-byte TDs) and behind xHCI (a whole transfer in one packet,
 * the largest exactly 65535 bytes, which also puts bulk-OUT back to
 * bulk). */
START_TEST(test_interrupt_both_64k_apdu_chained)
{
	static const unsigned tds[] = { 64, 65535 };
	static uint8_t apdu[65544], msg[65600], r[65600];

	/* ECHO, extended Lc 65535, data i & 0xFF, extended Le 00 00 */
	apdu[0] = 0x80; apdu[1] = 0x01; apdu[2] = 0; apdu[3] = 0;
	apdu[4] = 0x00; apdu[5] = 0xFF; apdu[6] = 0xFF;
	for (uint32_t i = 0; i < 65535; i++)
		apdu[7 + i] = (uint8_t)i;
	apdu[65542] = 0; apdu[65543] = 0;
	for (size_t t = 0; t < G_N_ELEMENTS(tds); t++) {
		static const uint8_t power_on[10] = {
			CCID_PC_TO_RDR_ICC_POWER_ON, 0, 0, 0, 0, 0, 1, 0, 0, 0
		};
		struct served s;
		struct fake_qemu g;
		struct ccid_bridge_stats st;
		uint32_t len, n, part = 65535 - 10;

		served_init_agent(&s, 500);
		ck_assert_uint_eq(guest_max_message_len(&s),
				  CCID_BRIDGE_INTR_OUT_MAX_MSG);
		ccid_bridge_set_data_path(s.bridge,
					  CCID_BRIDGE_PATH_INTERRUPT_BOTH);
		connect_pair_version(&s, &g, QEMU_HELLO);
		fake_qemu_set_configuration(&g, 1);
		ck_assert_int_eq(g.ep.type[I_BULK_OUT], usb_redir_type_interrupt);
		ck_assert_int_eq(g.ep.type[I_BULK_IN], usb_redir_type_interrupt);
		fake_qemu_data_start(&g);
		guest_out(&g, power_on, sizeof(power_on), tds[t]);
		n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
		ck_assert_int_eq(r[10], 0x3B);

		/* first block: wLevelParameter 1, 65525 bytes; the reader
		 * asks for more (empty DataBlock, bChainParameter 0x10) */
		len = xfr_level(msg, 2, 0x0001, apdu, part);
		ck_assert_uint_eq(len, 65535);
		guest_out(&g, msg, len, tds[t]);
		n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
		ck_assert_uint_eq(n, 10);
		ck_assert_int_eq(r[0], CCID_RDR_TO_PC_DATA_BLOCK);
		ck_assert_int_eq(r[6], 2);
		ck_assert_int_eq(r[7], 0x00);
		ck_assert_int_eq(r[9], 0x10);
		/* last block: wLevelParameter 2, the other 19 bytes; the
		 * answer's first 65525 bytes, bChainParameter 1 */
		len = xfr_level(msg, 3, 0x0002, apdu + part, sizeof(apdu) - part);
		guest_out(&g, msg, len, tds[t]);
		n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 5000);
		ck_assert_uint_eq(n, 65535);
		ck_assert_int_eq(r[6], 3);
		ck_assert_int_eq(r[7], 0x00);
		ck_assert_int_eq(r[9], 0x01);
		for (uint32_t i = 0; i < part; i++)
			if (r[10 + i] != (uint8_t)i)
				ck_abort_msg("td %u: echo byte %u differs", tds[t], i);
		/* wLevelParameter 0x10: the rest, 10 data bytes + 90 00,
		 * bChainParameter 2 */
		len = xfr_level(msg, 4, 0x0010, apdu, 0);
		guest_out(&g, msg, len, tds[t]);
		n = fake_qemu_data_read(&g, r, sizeof(r), 64, 0, 2000);
		ck_assert_uint_eq(n, 10 + 12);
		ck_assert_int_eq(r[6], 4);
		ck_assert_int_eq(r[9], 0x02);
		for (uint32_t i = part; i < 65535; i++)
			ck_assert_int_eq(r[10 + i - part], (uint8_t)i);
		ck_assert_int_eq(r[20], 0x90);
		ck_assert_int_eq(r[21], 0x00);

		ccid_bridge_get_stats(s.bridge, &st);
		/* UHCI: every piece came as interrupt OUT; xHCI: the first
		 * whole transfer over 64 bytes (65535) put it back to bulk */
		ck_assert_uint_eq(st.out_to_bulk, tds[t] > 64 ? 1 : 0);
		ck_assert_int_eq(st.interrupt_out, tds[t] == 64);
		fake_qemu_fini(&g);
		served_fini(&s);
	}
}
END_TEST

static Suite *bridge_intr_suite(void)
{
	Suite *s = suite_create("bridge interrupt path");
	TCase *tc = tcase_create("interrupt");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_path_chosen_by_peer);
	tcase_add_test(tc, test_pieces_and_zero_length_packets);
	tcase_add_test(tc, test_64k_reply_in_pieces);
	tcase_add_test(tc, test_nothing_pushed_before_start);
	tcase_add_test(tc, test_reply_ready_while_idle);
	tcase_add_test(tc, test_stop_mid_reply_resends_whole_reply);
	tcase_add_test(tc, test_next_command_commits_reply);
	tcase_add_test(tc, test_bulk_in_request_on_interrupt_path_refused);
	tcase_add_test(tc, test_time_extension_on_interrupt_path);
	tcase_add_test(tc, test_later_reply_waits_in_fence);
	tcase_add_test(tc, test_long_operation_on_bulk_path_and_back);
	tcase_add_test(tc, test_usb_reset_drops_held_reply);
	tcase_add_test(tc, test_rejected_interrupt_path_falls_back);
	tcase_add_test(tc, test_whole_transfer_puts_in_back_to_bulk);
	tcase_add_test(tc, test_interrupt_out_pieces);
	tcase_add_test(tc, test_interrupt_out_whole_transfer_goes_bulk);
	tcase_add_test(tc, test_interrupt_both_64k_apdu_chained);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(bridge_intr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
