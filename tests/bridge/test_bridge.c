/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The usbredir bridge against a peer that speaks the usb-guest role with
 * the real usbredirparser, exactly as QEMU's usb-redir does, over a socket
 * pair (the peer is tests/common/fake_qemu.c): handshake order, endpoint
 * info, control, bulk and interrupt traffic, time extension, cancel,
 * disconnect and reconnect, addresses.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <glib-unix.h>
#include <sys/un.h>
#include <usbredirparser.h>

#include "ccid_bridge.h"
#include "ccid_card_loopback.h"
#include "fake_qemu.h"
#include "served.h"

/* ---- tests ------------------------------------------------------------- */

START_TEST(test_handshake_order_and_identity)
{
	struct served s;
	struct fake_qemu g;
	int i_if = -1, i_ep = -1, i_conn = -1;

	served_init(&s, 500);
	connect_pair(&s, &g);
	for (unsigned i = 0; i < g.n_events; i++) {
		if (!strcmp(g.events[i], "interface_info") && i_if < 0)
			i_if = (int)i;
		if (!strcmp(g.events[i], "ep_info") && i_ep < 0)
			i_ep = (int)i;
		if (!strcmp(g.events[i], "device_connect"))
			i_conn = (int)i;
	}
	/* QEMU refuses device_connect without interface info first. */
	ck_assert_int_ge(i_if, 0);
	ck_assert_int_ge(i_ep, 0);
	ck_assert_int_lt(i_if, i_conn);
	ck_assert_int_lt(i_ep, i_conn);
	ck_assert_int_eq(g.conn.speed, usb_redir_speed_full);
	ck_assert_uint_eq(g.conn.vendor_id, CCID_EMU_DEFAULT_VID);
	ck_assert_uint_eq(g.conn.product_id, CCID_EMU_DEFAULT_PID);
	ck_assert_uint_eq(g.conn.device_version_bcd, CCID_EMU_DEFAULT_BCD);
	/* Endpoint table: index = (ep & 0x80) >> 3 | ep number. */
	ck_assert_int_eq(g.ep.type[0], usb_redir_type_control);
	ck_assert_int_eq(g.ep.type[16], usb_redir_type_control);
	ck_assert_int_eq(g.ep.type[2], usb_redir_type_bulk);       /* 0x02 */
	ck_assert_int_eq(g.ep.type[17], usb_redir_type_bulk);      /* 0x81 */
	ck_assert_int_eq(g.ep.type[19], usb_redir_type_interrupt); /* 0x83 */
	ck_assert_int_eq(g.ep.max_packet_size[2], 64);
	ck_assert_int_eq(g.ep.max_packet_size[17], 64);
	ck_assert_int_eq(g.ep.max_packet_size[19], 8);
	ck_assert_int_ne(g.ep.interval[19], 0);   /* QEMU rejects 0 */
	for (unsigned i = 0; i < 32; i++)
		if (i != 0 && i != 16 && i != 2 && i != 17 && i != 19)
			ck_assert_int_eq(g.ep.type[i], usb_redir_type_invalid);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_control_descriptors_and_stall)
{
	struct served s;
	struct fake_qemu g;
	struct fake_qemu_reply *r;
	size_t len;
	const uint8_t *dd;

	served_init(&s, 500);
	connect_pair(&s, &g);
	dd = ccid_dev_device_descriptor(ccid_bridge_get_dev(s.bridge), &len);
	/* GET_DESCRIPTOR(DEVICE), wLength 18 */
	r = fake_qemu_control_in(&g, 0x80, 0x06, 0x0100, 0, 18);
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_eq(r->len, 18);
	ck_assert_mem_eq(r->data, dd, 18);
	/* GET_DESCRIPTOR(CONFIG), wLength 9: just the header, wTotalLength 93 */
	r = fake_qemu_control_in(&g, 0x80, 0x06, 0x0200, 0, 9);
	ck_assert_int_eq(r->len, 9);
	ck_assert_int_eq(r->data[2] | r->data[3] << 8, 93);
	/* GET_DESCRIPTOR(DEVICE_QUALIFIER) on a full-speed device stalls */
	r = fake_qemu_control_in(&g, 0x80, 0x06, 0x0600, 0, 10);
	ck_assert_int_eq(r->status, usb_redir_stall);
	/* CCID GET_DATA_RATES before configuration: no interface yet */
	r = fake_qemu_control_in(&g, 0xA1, 0x03, 0, 0, 4);
	ck_assert_int_eq(r->status, usb_redir_stall);
	/* ... and after SET_CONFIGURATION: one dword, 10752 bps */
	fake_qemu_set_configuration(&g, 1);
	r = fake_qemu_control_in(&g, 0xA1, 0x03, 0, 0, 4);
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_eq(r->len, 4);
	ck_assert_int_eq(r->data[0] | r->data[1] << 8, 10752);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_configuration_resends_info)
{
	struct served s;
	struct fake_qemu g;
	unsigned before;
	int i_ep = -1, i_status = -1;

	served_init(&s, 500);
	connect_pair(&s, &g);
	before = g.n_events;
	fake_qemu_set_configuration(&g, 1);
	for (unsigned i = before; i < g.n_events; i++) {
		if (!strcmp(g.events[i], "ep_info"))
			i_ep = (int)i;
		if (!strcmp(g.events[i], "configuration_status"))
			i_status = (int)i;
	}
	ck_assert_int_ge(i_ep, 0);
	ck_assert_int_lt(i_ep, i_status);
	ck_assert_int_eq(g.cfg_status.status, usb_redir_success);
	ck_assert_int_eq(g.cfg_status.configuration, 1);
	/* Configuration 2 does not exist. */
	fake_qemu_set_configuration(&g, 2);
	ck_assert_int_eq(g.cfg_status.status, usb_redir_stall);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_interrupt_notify_and_card_events)
{
	struct served s;
	struct fake_qemu g;
	struct usb_redir_start_interrupt_receiving_header start = {
		.endpoint = CCID_EP_INTR_IN,
	};
	ccid_slot *slot;

	served_init(&s, 500);
	connect_pair(&s, &g);
	fake_qemu_set_configuration(&g, 1);
	usbredirparser_send_start_interrupt_receiving(g.parser, 0, &start);
	ck_assert(fake_qemu_spin(&g, fake_qemu_intr_n, GUINT_TO_POINTER(1),
				 2000));
	ck_assert(g.have_intr_status);
	ck_assert_int_eq(g.intr_status.status, usb_redir_success);
	/* RDR_to_PC_NotifySlotChange: slot 0 present + changed */
	ck_assert_int_eq(g.intr_len[0], 2);
	ck_assert_int_eq(g.intr[0][0], 0x50);
	ck_assert_int_eq(g.intr[0][1], 0x03);
	slot = ccid_dev_get_slot(ccid_bridge_get_dev(s.bridge), 0);
	ccid_slot_card_removed(slot);
	ck_assert(fake_qemu_spin(&g, fake_qemu_intr_n, GUINT_TO_POINTER(2),
				 2000));
	/* absent + changed */
	ck_assert_int_eq(g.intr[1][1], 0x02);
	ccid_slot_card_inserted(slot);
	ck_assert(fake_qemu_spin(&g, fake_qemu_intr_n, GUINT_TO_POINTER(3),
				 2000));
	ck_assert_int_eq(g.intr[2][1], 0x03);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_apdus_echo_and_64k_response)
{
	struct served s;
	struct fake_qemu g;
	static uint8_t msg[80000];
	/* ECHO: 80 01 00 00 Lc=03 'a' 'b' 'c' */
	const uint8_t echo[] = { 0x80, 0x01, 0x00, 0x00, 0x03, 'a', 'b', 'c' };
	/* PATTERN with extended Le 00 00 00 = 65536 bytes */
	const uint8_t pattern[] = { 0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00 };
	struct fake_qemu_reply *r;
	uint32_t n, dw;

	served_init(&s, 500);
	connect_pair(&s, &g);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_power_on(&g, 1);

	n = fake_qemu_xfr_block(msg, 2, echo, sizeof(echo));
	fake_qemu_bulk_out(&g, msg, n);
	r = fake_qemu_bulk_in(&g, 65536 + 100, 2000);
	ck_assert_int_eq(r->len, 10 + 5);
	ck_assert_int_eq(r->data[0], 0x80);
	ck_assert_int_eq(r->data[6], 2);
	ck_assert_mem_eq(r->data + 10, "abc\x90\x00", 5);

	n = fake_qemu_xfr_block(msg, 3, pattern, sizeof(pattern));
	fake_qemu_bulk_out(&g, msg, n);
	r = fake_qemu_bulk_in(&g, 70000, 5000);
	ck_assert_int_eq(r->len, 10 + 65536 + 2);
	dw = (uint32_t)r->data[1] | (uint32_t)r->data[2] << 8 |
	     (uint32_t)r->data[3] << 16 | (uint32_t)r->data[4] << 24;
	ck_assert_uint_eq(dw, 65538);
	for (uint32_t i = 0; i < 65536; i++)
		if (r->data[10 + i] != ccid_card_loopback_pattern_byte(i))
			ck_abort_msg("pattern byte %u differs", i);
	ck_assert_int_eq(r->data[10 + 65536], 0x90);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_small_bulk_in_requests_split_message)
{
	struct served s;
	struct fake_qemu g;
	static uint8_t m[100];
	/* ECHO of 60 bytes: the reply is 10 + 62 = 72 bytes, read as 64 + 8 */
	uint8_t echo[65] = { 0x80, 0x01, 0x00, 0x00, 60 };
	uint8_t whole[72];
	struct fake_qemu_reply *r;
	uint32_t n;

	for (int i = 0; i < 60; i++)
		echo[5 + i] = (uint8_t)i;
	served_init(&s, 500);
	connect_pair(&s, &g);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_power_on(&g, 1);
	/* 75 bytes out: one full 64-byte packet then a short one. */
	n = fake_qemu_xfr_block(m, 5, echo, sizeof(echo));
	fake_qemu_bulk_out(&g, m, n);
	r = fake_qemu_bulk_in(&g, 64, 2000);
	ck_assert_int_eq(r->len, 64);
	memcpy(whole, r->data, 64);
	r = fake_qemu_bulk_in(&g, 64, 2000);
	ck_assert_int_eq(r->len, 8);
	memcpy(whole + 64, r->data, 8);
	ck_assert_int_eq(whole[6], 5);
	ck_assert_int_eq(whole[10 + 59], 59);
	ck_assert_int_eq(whole[10 + 60], 0x90);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_time_extension_through_bridge)
{
	struct served s;
	struct fake_qemu g;
	static uint8_t msg[100];
	/* DELAY 300 ms: 80 03 00 00 04 00 00 01 2C */
	const uint8_t delay[] = { 0x80, 0x03, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, 0x2C };
	struct fake_qemu_reply *r;
	uint32_t n;

	served_init(&s, 100);   /* time extension every 100 ms */
	connect_pair(&s, &g);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_power_on(&g, 1);
	n = fake_qemu_xfr_block(msg, 9, delay, sizeof(delay));
	fake_qemu_bulk_out(&g, msg, n);
	r = fake_qemu_bulk_in(&g, 65600, 2000);
	/* First a DataBlock with bStatus = time extension (0x80), same bSeq */
	ck_assert_int_eq(r->len, 10);
	ck_assert_int_eq(r->data[0], 0x80);
	ck_assert_int_eq(r->data[6], 9);
	ck_assert_int_eq(r->data[7], 0x80);
	ck_assert_int_eq(r->data[8], 1);
	/* Keep reading: more extensions, then the answer 90 00. */
	for (int i = 0; i < 20; i++) {
		r = fake_qemu_bulk_in(&g, 65600, 2000);
		if (r->data[7] != 0x80)
			break;
	}
	ck_assert_int_eq(r->len, 12);
	ck_assert_int_eq(r->data[7], 0x00);
	ck_assert_int_eq(r->data[10], 0x90);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* The bridge handles a peer's packets in order: once a GET_STATUS sent
 * after them is answered, they have all been handled.  What has no answer
 * by then has none coming (no fixed sleep decides it). */
static void barrier(struct fake_qemu *g)
{
	struct fake_qemu_reply *r = fake_qemu_control_in(g, 0x80, 0x00, 0, 0, 2);

	ck_assert_int_eq(r->len, 2);
}

static bool output_drained(struct fake_qemu *g, void *arg)
{
	struct ccid_bridge_stats st;

	ccid_bridge_get_stats(((struct served *)arg)->bridge, &st);
	return st.output_queued == 0 && st.reading;
}

START_TEST(test_cancel_pending_bulk_in)
{
	struct served s;
	struct fake_qemu g;
	struct ccid_bridge_stats st;
	uint64_t id;

	served_init(&s, 500);
	connect_pair(&s, &g);
	fake_qemu_set_configuration(&g, 1);
	id = fake_qemu_bulk_in_request(&g, 64);
	barrier(&g);
	ck_assert(!g.bulk[id % 8].done);   /* nothing to say: stays pending */
	usbredirparser_send_cancel_data_packet(g.parser, id);
	ck_assert(fake_qemu_spin(&g, fake_qemu_bulk_done, GUINT_TO_POINTER(id),
				 2000));
	ck_assert_int_eq(g.bulk[id % 8].status, usb_redir_cancelled);
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert_uint_eq(st.cancelled, 1);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

static bool detached(struct fake_qemu *g, void *arg)
{
	return ((struct served *)arg)->detached > 0;
}

START_TEST(test_reconnect_keeps_card)
{
	struct served s;
	struct fake_qemu g;
	GError *error = NULL;
	int sv[2];

	served_init(&s, 500);
	connect_pair(&s, &g);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_power_on(&g, 1);
	/* A second peer while one is attached is refused. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert(!ccid_bridge_attach_fd(s.bridge, sv[0], "second", &error));
	ck_assert(g_error_matches(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_BUSY));
	g_clear_error(&error);
	close(sv[1]);
	/* QEMU dies: the bridge notices and keeps running. */
	fake_qemu_fini(&g);
	ck_assert(fake_qemu_spin(&g, detached, &s, 2000));
	ck_assert(!ccid_bridge_is_attached(s.bridge));
	/* QEMU comes back: the device is offered again, card still in. */
	connect_pair(&s, &g);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_power_on(&g, 7);
	ck_assert_uint_eq(s.attached, 2);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_detach_sends_device_disconnect)
{
	struct served s;
	struct fake_qemu g;

	served_init(&s, 500);
	connect_pair(&s, &g);
	ccid_bridge_detach(s.bridge, 1000);
	ck_assert(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 2000));
	ck_assert(!ccid_bridge_is_attached(s.bridge));
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

/* Address vectors: spec, valid?, kind, host/path, port. */
static const struct {
	const char *spec;
	bool ok;
	enum ccid_bridge_addr_kind kind;
	const char *where;
	unsigned port;
} addr_vectors[] = {
	{ "unix:/tmp/x.sock", true, CCID_ADDR_UNIX, "/tmp/x.sock", 0 },
	{ "tcp:127.0.0.1:4000", true, CCID_ADDR_TCP, "127.0.0.1", 4000 },
	{ "tcp:localhost:1", true, CCID_ADDR_TCP, "localhost", 1 },
	{ "tcp:[::1]:65535", true, CCID_ADDR_TCP, "::1", 65535 },
	{ "unix:", false, 0, NULL, 0 },                 /* empty path */
	{ "tcp:127.0.0.1", false, 0, NULL, 0 },         /* no port */
	{ "tcp:127.0.0.1:0", false, 0, NULL, 0 },       /* port 0 */
	{ "tcp:127.0.0.1:65536", false, 0, NULL, 0 },   /* port too big */
	{ "tcp:127.0.0.1:12ab", false, 0, NULL, 0 },    /* junk */
	{ "tcp::4000", false, 0, NULL, 0 },             /* empty host */
	{ "tcp:[::1:4000", false, 0, NULL, 0 },         /* unclosed bracket */
	{ "tcp:::1:4000", false, 0, NULL, 0 },          /* IPv6 without brackets */
	{ "tcp:0tcp:[::]:7", false, 0, NULL, 0 },       /* brackets inside a host */
	{ "udp:1.2.3.4:5", false, 0, NULL, 0 },         /* unknown kind */
	{ "", false, 0, NULL, 0 },
};

START_TEST(test_address_parse)
{
	for (size_t i = 0; i < G_N_ELEMENTS(addr_vectors); i++) {
		struct ccid_bridge_addr a;
		GError *error = NULL;
		bool ok = ccid_bridge_addr_parse(addr_vectors[i].spec, &a, &error);

		ck_assert_msg(ok == addr_vectors[i].ok, "%s", addr_vectors[i].spec);
		if (!ok) {
			/* The message names what was wrong with which input. */
			ck_assert_ptr_nonnull(error);
			ck_assert_ptr_nonnull(strstr(error->message,
						     addr_vectors[i].spec[0] ?
						     addr_vectors[i].spec : "empty"));
			g_clear_error(&error);
			continue;
		}
		ck_assert_int_eq(a.kind, addr_vectors[i].kind);
		ck_assert_str_eq(a.kind == CCID_ADDR_UNIX ? a.path : a.host,
				 addr_vectors[i].where);
		ck_assert_uint_eq(a.port, addr_vectors[i].port);
		ccid_bridge_addr_clear(&a);
	}
}
END_TEST

static bool attached_n(struct fake_qemu *g, void *arg)
{
	return ((struct served *)arg)->attached > 0 && g->connected;
}

START_TEST(test_listen_unix_busy_and_connect)
{
	struct served s, s2;
	struct fake_qemu g;
	g_autofree char *dir = g_dir_make_tmp("ccid-bridge-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "sub", "r.sock", NULL);
	g_autofree char *spec = g_strdup_printf("unix:%s", path);
	struct ccid_bridge_addr a;
	ccid_bridge_endpoint *ep, *ep2;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	GError *error = NULL;
	int fd;

	served_init(&s, 500);
	served_init(&s2, 500);
	ck_assert(ccid_bridge_addr_parse(spec, &a, NULL));
	ep = ccid_bridge_listen(s.bridge, &a, &error);
	ck_assert_msg(ep != NULL, "%s", error ? error->message : "");
	/* A second agent on the same path is refused with a clear error. */
	ep2 = ccid_bridge_listen(s2.bridge, &a, &error);
	ck_assert_ptr_null(ep2);
	ck_assert(g_error_matches(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_BUSY));
	ck_assert_ptr_nonnull(strstr(error->message, path));
	g_clear_error(&error);
	/* QEMU (client mode) connects and gets the device. */
	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	fake_qemu_init(&g, fd);
	ck_assert(fake_qemu_spin(&g, attached_n, &s, 2000));
	fake_qemu_fini(&g);
	ccid_bridge_endpoint_free(ep);
	/* The socket file we made is removed when we stop listening. */
	ck_assert(!g_file_test(path, G_FILE_TEST_EXISTS));
	ccid_bridge_addr_clear(&a);
	served_fini(&s);
	served_fini(&s2);
}
END_TEST


START_TEST(test_usb_reset_cancels_and_unconfigures)
{
	struct served s;
	struct fake_qemu g;
	uint64_t id;

	served_init(&s, 500);
	connect_pair(&s, &g);
	fake_qemu_set_configuration(&g, 1);
	id = fake_qemu_bulk_in_request(&g, 64);
	barrier(&g);
	ck_assert(!g.bulk[id % FAKE_QEMU_BULK_SLOTS].done);
	usbredirparser_send_reset(g.parser);
	/* The pending bulk-IN is answered "cancelled"... */
	ck_assert(fake_qemu_spin(&g, fake_qemu_bulk_done, (void *)(uintptr_t)id,
				 2000));
	ck_assert_int_eq(g.bulk[id % FAKE_QEMU_BULK_SLOTS].status,
			 usb_redir_cancelled);
	/* ... and the device is back in the address state. */
	g.have_cfg_status = false;
	usbredirparser_send_get_configuration(g.parser, g.next_id++);
	ck_assert(fake_qemu_spin(&g, fake_qemu_cfg_done, NULL, 2000));
	ck_assert_int_eq(g.cfg_status.configuration, 0);
	/* It comes back after configuring again, with the card powered off. */
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_power_on(&g, 3);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

static gboolean tick_cb(gpointer data)
{
	(*(unsigned *)data)++;
	return G_SOURCE_CONTINUE;
}

/* A QEMU that sends requests but never reads the answers: the bridge
 * stops reading from it once 4 MiB of answers are queued, memory stays
 * bounded, and the main loop (other readers, the control socket, timers)
 * keeps running.  When the peer reads again, everything flows. */
START_TEST(test_stuck_peer_backpressure)
{
	struct served s;
	struct fake_qemu g;
	struct ccid_bridge_stats st;
	static uint8_t msg[64];
	/* PATTERN, extended Le 00 00 00 = 65536 bytes: 65548-byte answers */
	const uint8_t pattern[] = { 0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00 };
	unsigned ticks = 0, sent = 0;
	guint tick;
	gint64 end;
	uint32_t n;

	served_init(&s, 500);
	connect_pair(&s, &g);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_power_on(&g, 1);
	tick = g_timeout_add(10, tick_cb, &ticks);
	n = fake_qemu_xfr_block(msg, 0, pattern, sizeof(pattern));
	end = g_get_monotonic_time() + 1500 * 1000;
	while (g_get_monotonic_time() < end) {
		struct usb_redir_bulk_packet_header h = {
			.endpoint = CCID_EP_BULK_OUT, .length = (uint16_t)n,
		};
		struct usb_redir_bulk_packet_header in = {
			.endpoint = CCID_EP_BULK_IN, .length = 0,
			.length_high = 2,   /* 131072 bytes */
		};

		/* Write only: one XfrBlock and one bulk-IN request a turn. */
		if (sent < 200) {
			msg[6] = (uint8_t)sent;
			usbredirparser_send_bulk_packet(g.parser, g.next_id++, &h,
							msg, (int)n);
			usbredirparser_send_bulk_packet(g.parser, g.next_id++, &in,
							NULL, 0);
			sent++;
		}
		usbredirparser_do_write(g.parser);
		while (g_main_context_iteration(NULL, FALSE))
			;
		g_usleep(1000);
	}
	ccid_bridge_get_stats(s.bridge, &st);
	/* Bounded: at most the high-water mark plus what was in flight. */
	ck_assert_uint_le(st.output_queued, 4u * 1024 * 1024 + 2 * 65548 + 4096);
	ck_assert_uint_ge(st.output_queued, 4u * 1024 * 1024);
	ck_assert(!st.reading);
	/* 1.5 s of 10 ms ticks: the loop was never blocked for long. */
	ck_assert_uint_ge(ticks, 75);
	g_source_remove(tick);
	/* The peer reads again: every answer it asked for arrives. */
	ck_assert_msg(fake_qemu_spin(&g, output_drained, &s, 10000),
		      "the queued output did not drain");
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert_uint_eq(st.output_queued, 0);
	ck_assert(st.reading);
	fake_qemu_fini(&g);
	served_fini(&s);
}
END_TEST

static Suite *bridge_suite(void)
{
	Suite *s = suite_create("bridge");
	TCase *tc = tcase_create("usbredir");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_handshake_order_and_identity);
	tcase_add_test(tc, test_control_descriptors_and_stall);
	tcase_add_test(tc, test_configuration_resends_info);
	tcase_add_test(tc, test_interrupt_notify_and_card_events);
	tcase_add_test(tc, test_apdus_echo_and_64k_response);
	tcase_add_test(tc, test_small_bulk_in_requests_split_message);
	tcase_add_test(tc, test_time_extension_through_bridge);
	tcase_add_test(tc, test_cancel_pending_bulk_in);
	tcase_add_test(tc, test_reconnect_keeps_card);
	tcase_add_test(tc, test_detach_sends_device_disconnect);
	tcase_add_test(tc, test_usb_reset_cancels_and_unconfigures);
	tcase_add_test(tc, test_stuck_peer_backpressure);
	tcase_add_test(tc, test_address_parse);
	tcase_add_test(tc, test_listen_unix_busy_and_connect);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(bridge_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
