/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The usbredir bridge against a peer that speaks the usb-guest role with
 * the real usbredirparser, exactly as QEMU's usb-redir does, over a socket
 * pair: handshake order, endpoint info, control, bulk and interrupt
 * traffic, time extension, cancel, disconnect and reconnect, addresses.
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

/* ---- the fake usb-guest (what QEMU does) ------------------------------- */

#define MAX_EVENTS 64

struct reply {
	bool done;
	uint8_t status;
	uint8_t data[70000];
	int len;
};

struct guest {
	struct usbredirparser *parser;
	int fd;
	bool eof;
	/* Order in which session packets arrived, for the ordering rules. */
	char events[MAX_EVENTS][32];
	unsigned n_events;
	struct usb_redir_device_connect_header conn;
	struct usb_redir_ep_info_header ep;
	bool have_ep, connected, disconnected;
	struct usb_redir_configuration_status_header cfg_status;
	bool have_cfg_status;
	struct usb_redir_interrupt_receiving_status_header intr_status;
	bool have_intr_status;
	uint8_t intr[16][8];
	int intr_len[16];
	unsigned n_intr;
	struct reply ctrl, bulk[8];  /* bulk replies indexed by id % 8 */
};

static void guest_event(struct guest *g, const char *what)
{
	if (g->n_events < MAX_EVENTS)
		g_strlcpy(g->events[g->n_events++], what, sizeof(g->events[0]));
}

static int guest_read(void *priv, uint8_t *data, int count)
{
	struct guest *g = priv;
	ssize_t n = read(g->fd, data, (size_t)count);

	if (n > 0)
		return (int)n;
	if (n < 0 && errno == EAGAIN)
		return 0;
	g->eof = true;
	return -1;
}

static int guest_write(void *priv, uint8_t *data, int count)
{
	struct guest *g = priv;
	ssize_t n = send(g->fd, data, (size_t)count, MSG_NOSIGNAL);

	if (n >= 0)
		return (int)n;
	return errno == EAGAIN ? 0 : -1;
}

static void g_log_cb(void *priv, int level, const char *msg) { }
static void g_hello(void *priv, struct usb_redir_hello_header *h)
{
	guest_event(priv, "hello");
}
static void g_device_connect(void *priv, struct usb_redir_device_connect_header *h)
{
	struct guest *g = priv;

	g->conn = *h;
	g->connected = true;
	guest_event(g, "device_connect");
}
static void g_device_disconnect(void *priv)
{
	struct guest *g = priv;

	g->disconnected = true;
	guest_event(g, "device_disconnect");
}
static void g_interface_info(void *priv, struct usb_redir_interface_info_header *h)
{
	guest_event(priv, "interface_info");
}
static void g_ep_info(void *priv, struct usb_redir_ep_info_header *h)
{
	struct guest *g = priv;

	g->ep = *h;
	g->have_ep = true;
	guest_event(g, "ep_info");
}
static void g_configuration_status(void *priv, uint64_t id,
				   struct usb_redir_configuration_status_header *h)
{
	struct guest *g = priv;

	g->cfg_status = *h;
	g->have_cfg_status = true;
	guest_event(g, "configuration_status");
}
static void g_alt_setting_status(void *priv, uint64_t id,
				 struct usb_redir_alt_setting_status_header *h)
{
	guest_event(priv, "alt_setting_status");
}
static void g_iso_stream_status(void *priv, uint64_t id,
				struct usb_redir_iso_stream_status_header *h) { }
static void g_interrupt_receiving_status(void *priv, uint64_t id,
	struct usb_redir_interrupt_receiving_status_header *h)
{
	struct guest *g = priv;

	g->intr_status = *h;
	g->have_intr_status = true;
}
static void g_bulk_streams_status(void *priv, uint64_t id,
				  struct usb_redir_bulk_streams_status_header *h) { }
static void g_bulk_receiving_status(void *priv, uint64_t id,
				    struct usb_redir_bulk_receiving_status_header *h) { }
static void g_control_packet(void *priv, uint64_t id,
			     struct usb_redir_control_packet_header *h,
			     uint8_t *data, int len)
{
	struct guest *g = priv;

	g->ctrl.done = true;
	g->ctrl.status = h->status;
	g->ctrl.len = len;
	if (len)
		memcpy(g->ctrl.data, data, (size_t)len);
	usbredirparser_free_packet_data(g->parser, data);
}
static void g_bulk_packet(void *priv, uint64_t id,
			  struct usb_redir_bulk_packet_header *h,
			  uint8_t *data, int len)
{
	struct guest *g = priv;
	struct reply *r = &g->bulk[id % 8];

	r->done = true;
	r->status = h->status;
	r->len = len;
	if (len)
		memcpy(r->data, data, (size_t)len);
	usbredirparser_free_packet_data(g->parser, data);
}
static void g_iso_packet(void *priv, uint64_t id, struct usb_redir_iso_packet_header *h,
			 uint8_t *data, int len)
{
	usbredirparser_free_packet_data(((struct guest *)priv)->parser, data);
}
static void g_interrupt_packet(void *priv, uint64_t id,
			       struct usb_redir_interrupt_packet_header *h,
			       uint8_t *data, int len)
{
	struct guest *g = priv;

	if (g->n_intr < 16 && len <= 8) {
		memcpy(g->intr[g->n_intr], data, (size_t)len);
		g->intr_len[g->n_intr++] = len;
	}
	usbredirparser_free_packet_data(g->parser, data);
}
static void g_buffered_bulk_packet(void *priv, uint64_t id,
	struct usb_redir_buffered_bulk_packet_header *h, uint8_t *data, int len)
{
	usbredirparser_free_packet_data(((struct guest *)priv)->parser, data);
}

static void guest_init(struct guest *g, int fd)
{
	uint32_t caps[USB_REDIR_CAPS_SIZE] = { 0 };
	struct usbredirparser *p;

	memset(g, 0, sizeof(*g));
	g->fd = fd;
	g_unix_set_fd_nonblocking(fd, TRUE, NULL);
	p = g->parser = usbredirparser_create();
	p->priv = g;
	p->log_func = g_log_cb;
	p->read_func = guest_read;
	p->write_func = guest_write;
	p->hello_func = g_hello;
	p->device_connect_func = g_device_connect;
	p->device_disconnect_func = g_device_disconnect;
	p->interface_info_func = g_interface_info;
	p->ep_info_func = g_ep_info;
	p->configuration_status_func = g_configuration_status;
	p->alt_setting_status_func = g_alt_setting_status;
	p->iso_stream_status_func = g_iso_stream_status;
	p->interrupt_receiving_status_func = g_interrupt_receiving_status;
	p->bulk_streams_status_func = g_bulk_streams_status;
	p->bulk_receiving_status_func = g_bulk_receiving_status;
	p->control_packet_func = g_control_packet;
	p->bulk_packet_func = g_bulk_packet;
	p->iso_packet_func = g_iso_packet;
	p->interrupt_packet_func = g_interrupt_packet;
	p->buffered_bulk_packet_func = g_buffered_bulk_packet;
	/* The same capabilities QEMU 7.2 announces. */
	usbredirparser_caps_set_cap(caps, usb_redir_cap_connect_device_version);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_filter);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_ep_info_max_packet_size);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_64bits_ids);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_32bits_bulk_length);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_bulk_receiving);
	usbredirparser_init(p, "fake-qemu", caps, USB_REDIR_CAPS_SIZE, 0);
}

static void guest_fini(struct guest *g)
{
	if (g->parser)
		usbredirparser_destroy(g->parser);
	g->parser = NULL;
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
}

/* Runs both sides until @done says so or @timeout_ms pass. */
static bool spin(struct guest *g, bool (*done)(struct guest *, void *), void *arg,
		 unsigned timeout_ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	while (g_get_monotonic_time() < end) {
		if (g->parser) {
			if (usbredirparser_has_data_to_write(g->parser))
				usbredirparser_do_write(g->parser);
			if (!g->eof)
				usbredirparser_do_read(g->parser);
		}
		while (g_main_context_iteration(NULL, FALSE))
			;
		if (done && done(g, arg))
			return true;
		g_usleep(200);
	}
	return done ? done(g, arg) : true;
}

static bool is_connected(struct guest *g, void *arg) { return g->connected; }
static bool ctrl_done(struct guest *g, void *arg) { return g->ctrl.done; }
static bool cfg_done(struct guest *g, void *arg) { return g->have_cfg_status; }
static bool bulk_done(struct guest *g, void *arg)
{
	return g->bulk[GPOINTER_TO_UINT(arg) % 8].done;
}
static bool intr_n(struct guest *g, void *arg)
{
	return g->n_intr >= GPOINTER_TO_UINT(arg);
}

/* ---- the served side --------------------------------------------------- */

struct served {
	ccid_bridge *bridge;
	ccid_card_loopback *card;
	guint card_timer;
	unsigned attached, detached;
};

static gboolean card_timer_cb(gpointer data)
{
	struct served *s = data;

	s->card_timer = 0;
	ccid_card_loopback_timer_fired(s->card);
	return G_SOURCE_REMOVE;
}

static void card_timer_arm(void *user, uint32_t ms)
{
	struct served *s = user;

	if (s->card_timer)
		g_source_remove(s->card_timer);
	s->card_timer = g_timeout_add(ms, card_timer_cb, s);
}

static void card_timer_disarm(void *user)
{
	struct served *s = user;

	if (s->card_timer)
		g_source_remove(s->card_timer);
	s->card_timer = 0;
}

static const struct ccid_card_loopback_timer_ops card_timer_ops = {
	.arm = card_timer_arm, .disarm = card_timer_disarm,
};

static void served_event(void *user, enum ccid_bridge_event ev, const char *peer)
{
	struct served *s = user;

	if (ev == CCID_BRIDGE_EVENT_ATTACHED)
		s->attached++;
	if (ev == CCID_BRIDGE_EVENT_DETACHED)
		s->detached++;
}

static const struct ccid_bridge_callbacks served_cbs = { .event = served_event };

static void served_init(struct served *s, uint32_t te_ms)
{
	struct ccid_config cfg;
	ccid_slot *slot;

	memset(s, 0, sizeof(*s));
	ccid_config_init(&cfg);
	cfg.time_extension_ms = te_ms;
	s->bridge = ccid_bridge_new(&cfg, &served_cbs, s, NULL);
	ck_assert_ptr_nonnull(s->bridge);
	slot = ccid_dev_get_slot(ccid_bridge_get_dev(s->bridge), 0);
	s->card = ccid_card_loopback_new(slot, &card_timer_ops, s);
	ccid_slot_set_card(slot, ccid_card_loopback_ops(), s->card, true);
}

static void served_fini(struct served *s)
{
	ccid_bridge_free(s->bridge);
	card_timer_disarm(s);
	ccid_card_loopback_free(s->card);
}

static void connect_pair(struct served *s, struct guest *g)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert(ccid_bridge_attach_fd(s->bridge, sv[0], "test", NULL));
	guest_init(g, sv[1]);
	ck_assert_msg(spin(g, is_connected, NULL, 2000), "no device_connect");
}

/* ---- helpers that act like the guest's USB stack ----------------------- */

static uint64_t next_id = 100;

static struct reply *control_in(struct guest *g, uint8_t type, uint8_t req,
				uint16_t value, uint16_t index, uint16_t len)
{
	struct usb_redir_control_packet_header h = {
		.endpoint = 0x80, .request = req, .requesttype = type,
		.value = value, .index = index, .length = len,
	};

	memset(&g->ctrl, 0, sizeof(g->ctrl));
	usbredirparser_send_control_packet(g->parser, next_id++, &h, NULL, 0);
	ck_assert(spin(g, ctrl_done, NULL, 2000));
	return &g->ctrl;
}

static void set_configuration(struct guest *g, uint8_t value)
{
	struct usb_redir_set_configuration_header h = { .configuration = value };

	g->have_cfg_status = false;
	usbredirparser_send_set_configuration(g->parser, next_id++, &h);
	ck_assert(spin(g, cfg_done, NULL, 2000));
}

static void bulk_out(struct guest *g, const uint8_t *msg, uint32_t len)
{
	struct usb_redir_bulk_packet_header h = {
		.endpoint = CCID_EP_BULK_OUT, .length = (uint16_t)len,
		.length_high = (uint16_t)(len >> 16),
	};
	uint64_t id = next_id++;

	g->bulk[id % 8].done = false;
	usbredirparser_send_bulk_packet(g->parser, id, &h, (uint8_t *)msg, (int)len);
	ck_assert(spin(g, bulk_done, GUINT_TO_POINTER(id), 2000));
	ck_assert_int_eq(g->bulk[id % 8].status, usb_redir_success);
}

static uint64_t bulk_in_request(struct guest *g, uint32_t len)
{
	struct usb_redir_bulk_packet_header h = {
		.endpoint = CCID_EP_BULK_IN, .length = (uint16_t)len,
		.length_high = (uint16_t)(len >> 16),
	};
	uint64_t id = next_id++;

	g->bulk[id % 8].done = false;
	usbredirparser_send_bulk_packet(g->parser, id, &h, NULL, 0);
	return id;
}

static struct reply *bulk_in(struct guest *g, uint32_t len, unsigned timeout_ms)
{
	uint64_t id = bulk_in_request(g, len);

	ck_assert_msg(spin(g, bulk_done, GUINT_TO_POINTER(id), timeout_ms),
		      "bulk-IN got no answer");
	return &g->bulk[id % 8];
}

/* PC_to_RDR_XfrBlock, slot 0, wLevelParameter 0, around @apdu. */
static uint32_t xfr_block(uint8_t *msg, uint8_t seq, const uint8_t *apdu,
			  uint32_t len)
{
	msg[0] = CCID_PC_TO_RDR_XFR_BLOCK;
	msg[1] = (uint8_t)len; msg[2] = (uint8_t)(len >> 8);
	msg[3] = (uint8_t)(len >> 16); msg[4] = (uint8_t)(len >> 24);
	msg[5] = 0; msg[6] = seq; msg[7] = 0; msg[8] = 0; msg[9] = 0;
	memcpy(msg + 10, apdu, len);
	return 10 + len;
}

static void power_on(struct guest *g, uint8_t seq)
{
	/* PC_to_RDR_IccPowerOn: dwLength 0, slot 0, bSeq, bPowerSelect auto */
	const uint8_t msg[10] = { 0x62, 0, 0, 0, 0, 0, seq, 0, 0, 0 };
	struct reply *r;

	bulk_out(g, msg, sizeof(msg));
	r = bulk_in(g, 65536 + 100, 2000);
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_ge(r->len, 12);
	ck_assert_int_eq(r->data[0], CCID_RDR_TO_PC_DATA_BLOCK);
	ck_assert_int_eq(r->data[6], seq);
	ck_assert_int_eq(r->data[7], 0x00);      /* OK, card active */
	ck_assert_int_eq(r->data[10], 0x3B);     /* ATR TS */
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(test_handshake_order_and_identity)
{
	struct served s;
	struct guest g;
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
	ck_assert_uint_eq(g.conn.vendor_id, 0x1209);
	ck_assert_uint_eq(g.conn.product_id, 0xCC1D);
	ck_assert_uint_eq(g.conn.device_version_bcd, 0x0100);
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
	guest_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_control_descriptors_and_stall)
{
	struct served s;
	struct guest g;
	struct reply *r;
	size_t len;
	const uint8_t *dd;

	served_init(&s, 500);
	connect_pair(&s, &g);
	dd = ccid_dev_device_descriptor(ccid_bridge_get_dev(s.bridge), &len);
	/* GET_DESCRIPTOR(DEVICE), wLength 18 */
	r = control_in(&g, 0x80, 0x06, 0x0100, 0, 18);
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_eq(r->len, 18);
	ck_assert_mem_eq(r->data, dd, 18);
	/* GET_DESCRIPTOR(CONFIG), wLength 9: just the header, wTotalLength 93 */
	r = control_in(&g, 0x80, 0x06, 0x0200, 0, 9);
	ck_assert_int_eq(r->len, 9);
	ck_assert_int_eq(r->data[2] | r->data[3] << 8, 93);
	/* GET_DESCRIPTOR(DEVICE_QUALIFIER) on a full-speed device stalls */
	r = control_in(&g, 0x80, 0x06, 0x0600, 0, 10);
	ck_assert_int_eq(r->status, usb_redir_stall);
	/* CCID GET_DATA_RATES: one dword, 10752 bps */
	r = control_in(&g, 0xA1, 0x03, 0, 0, 4);
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_eq(r->len, 4);
	ck_assert_int_eq(r->data[0] | r->data[1] << 8, 10752);
	guest_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_configuration_resends_info)
{
	struct served s;
	struct guest g;
	unsigned before;
	int i_ep = -1, i_status = -1;

	served_init(&s, 500);
	connect_pair(&s, &g);
	before = g.n_events;
	set_configuration(&g, 1);
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
	set_configuration(&g, 2);
	ck_assert_int_eq(g.cfg_status.status, usb_redir_stall);
	guest_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_interrupt_notify_and_card_events)
{
	struct served s;
	struct guest g;
	struct usb_redir_start_interrupt_receiving_header start = {
		.endpoint = CCID_EP_INTR_IN,
	};
	ccid_slot *slot;

	served_init(&s, 500);
	connect_pair(&s, &g);
	set_configuration(&g, 1);
	usbredirparser_send_start_interrupt_receiving(g.parser, 0, &start);
	ck_assert(spin(&g, intr_n, GUINT_TO_POINTER(1), 2000));
	ck_assert(g.have_intr_status);
	ck_assert_int_eq(g.intr_status.status, usb_redir_success);
	/* RDR_to_PC_NotifySlotChange: slot 0 present + changed */
	ck_assert_int_eq(g.intr_len[0], 2);
	ck_assert_int_eq(g.intr[0][0], 0x50);
	ck_assert_int_eq(g.intr[0][1], 0x03);
	slot = ccid_dev_get_slot(ccid_bridge_get_dev(s.bridge), 0);
	ccid_slot_card_removed(slot);
	ck_assert(spin(&g, intr_n, GUINT_TO_POINTER(2), 2000));
	/* absent + changed */
	ck_assert_int_eq(g.intr[1][1], 0x02);
	ccid_slot_card_inserted(slot);
	ck_assert(spin(&g, intr_n, GUINT_TO_POINTER(3), 2000));
	ck_assert_int_eq(g.intr[2][1], 0x03);
	guest_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_apdus_echo_and_64k_response)
{
	struct served s;
	struct guest g;
	static uint8_t msg[80000];
	/* ECHO: 80 01 00 00 Lc=03 'a' 'b' 'c' */
	const uint8_t echo[] = { 0x80, 0x01, 0x00, 0x00, 0x03, 'a', 'b', 'c' };
	/* PATTERN with extended Le 00 00 00 = 65536 bytes */
	const uint8_t pattern[] = { 0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00 };
	struct reply *r;
	uint32_t n, dw;

	served_init(&s, 500);
	connect_pair(&s, &g);
	set_configuration(&g, 1);
	power_on(&g, 1);

	n = xfr_block(msg, 2, echo, sizeof(echo));
	bulk_out(&g, msg, n);
	r = bulk_in(&g, 65536 + 100, 2000);
	ck_assert_int_eq(r->len, 10 + 5);
	ck_assert_int_eq(r->data[0], 0x80);
	ck_assert_int_eq(r->data[6], 2);
	ck_assert_mem_eq(r->data + 10, "abc\x90\x00", 5);

	n = xfr_block(msg, 3, pattern, sizeof(pattern));
	bulk_out(&g, msg, n);
	r = bulk_in(&g, 70000, 5000);
	ck_assert_int_eq(r->len, 10 + 65536 + 2);
	dw = (uint32_t)r->data[1] | (uint32_t)r->data[2] << 8 |
	     (uint32_t)r->data[3] << 16 | (uint32_t)r->data[4] << 24;
	ck_assert_uint_eq(dw, 65538);
	for (uint32_t i = 0; i < 65536; i++)
		if (r->data[10 + i] != ccid_card_loopback_pattern_byte(i))
			ck_abort_msg("pattern byte %u differs", i);
	ck_assert_int_eq(r->data[10 + 65536], 0x90);
	guest_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_small_bulk_in_requests_split_message)
{
	struct served s;
	struct guest g;
	static uint8_t m[100];
	/* ECHO of 60 bytes: the reply is 10 + 62 = 72 bytes, read as 64 + 8 */
	uint8_t echo[65] = { 0x80, 0x01, 0x00, 0x00, 60 };
	uint8_t whole[72];
	struct reply *r;
	uint32_t n;

	for (int i = 0; i < 60; i++)
		echo[5 + i] = (uint8_t)i;
	served_init(&s, 500);
	connect_pair(&s, &g);
	set_configuration(&g, 1);
	power_on(&g, 1);
	/* 75 bytes out: one full 64-byte packet then a short one. */
	n = xfr_block(m, 5, echo, sizeof(echo));
	bulk_out(&g, m, n);
	r = bulk_in(&g, 64, 2000);
	ck_assert_int_eq(r->len, 64);
	memcpy(whole, r->data, 64);
	r = bulk_in(&g, 64, 2000);
	ck_assert_int_eq(r->len, 8);
	memcpy(whole + 64, r->data, 8);
	ck_assert_int_eq(whole[6], 5);
	ck_assert_int_eq(whole[10 + 59], 59);
	ck_assert_int_eq(whole[10 + 60], 0x90);
	guest_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_time_extension_through_bridge)
{
	struct served s;
	struct guest g;
	static uint8_t msg[100];
	/* DELAY 300 ms: 80 03 00 00 04 00 00 01 2C */
	const uint8_t delay[] = { 0x80, 0x03, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, 0x2C };
	struct reply *r;
	uint32_t n;

	served_init(&s, 100);   /* time extension every 100 ms */
	connect_pair(&s, &g);
	set_configuration(&g, 1);
	power_on(&g, 1);
	n = xfr_block(msg, 9, delay, sizeof(delay));
	bulk_out(&g, msg, n);
	r = bulk_in(&g, 65600, 2000);
	/* First a DataBlock with bStatus = time extension (0x80), same bSeq */
	ck_assert_int_eq(r->len, 10);
	ck_assert_int_eq(r->data[0], 0x80);
	ck_assert_int_eq(r->data[6], 9);
	ck_assert_int_eq(r->data[7], 0x80);
	ck_assert_int_eq(r->data[8], 1);
	/* Keep reading: more extensions, then the answer 90 00. */
	for (int i = 0; i < 20; i++) {
		r = bulk_in(&g, 65600, 2000);
		if (r->data[7] != 0x80)
			break;
	}
	ck_assert_int_eq(r->len, 12);
	ck_assert_int_eq(r->data[7], 0x00);
	ck_assert_int_eq(r->data[10], 0x90);
	guest_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_cancel_pending_bulk_in)
{
	struct served s;
	struct guest g;
	struct ccid_bridge_stats st;
	uint64_t id;

	served_init(&s, 500);
	connect_pair(&s, &g);
	set_configuration(&g, 1);
	id = bulk_in_request(&g, 64);
	spin(&g, NULL, NULL, 50);
	ck_assert(!g.bulk[id % 8].done);   /* nothing to say: stays pending */
	usbredirparser_send_cancel_data_packet(g.parser, id);
	ck_assert(spin(&g, bulk_done, GUINT_TO_POINTER(id), 2000));
	ck_assert_int_eq(g.bulk[id % 8].status, usb_redir_cancelled);
	ccid_bridge_get_stats(s.bridge, &st);
	ck_assert_uint_eq(st.cancelled, 1);
	guest_fini(&g);
	served_fini(&s);
}
END_TEST

static bool detached(struct guest *g, void *arg)
{
	return ((struct served *)arg)->detached > 0;
}

START_TEST(test_reconnect_keeps_card)
{
	struct served s;
	struct guest g;
	GError *error = NULL;
	int sv[2];

	served_init(&s, 500);
	connect_pair(&s, &g);
	set_configuration(&g, 1);
	power_on(&g, 1);
	/* A second peer while one is attached is refused. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert(!ccid_bridge_attach_fd(s.bridge, sv[0], "second", &error));
	ck_assert(g_error_matches(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_BUSY));
	g_clear_error(&error);
	close(sv[1]);
	/* QEMU dies: the bridge notices and keeps running. */
	guest_fini(&g);
	ck_assert(spin(&g, detached, &s, 2000));
	ck_assert(!ccid_bridge_is_attached(s.bridge));
	/* QEMU comes back: the device is offered again, card still in. */
	connect_pair(&s, &g);
	set_configuration(&g, 1);
	power_on(&g, 7);
	ck_assert_uint_eq(s.attached, 2);
	guest_fini(&g);
	served_fini(&s);
}
END_TEST

START_TEST(test_detach_sends_device_disconnect)
{
	struct served s;
	struct guest g;

	served_init(&s, 500);
	connect_pair(&s, &g);
	ccid_bridge_detach(s.bridge, 1000);
	spin(&g, NULL, NULL, 100);
	ck_assert(g.disconnected);
	ck_assert(!ccid_bridge_is_attached(s.bridge));
	guest_fini(&g);
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

static bool attached_n(struct guest *g, void *arg)
{
	return ((struct served *)arg)->attached > 0 && g->connected;
}

START_TEST(test_listen_unix_busy_and_connect)
{
	struct served s, s2;
	struct guest g;
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
	guest_init(&g, fd);
	ck_assert(spin(&g, attached_n, &s, 2000));
	guest_fini(&g);
	ccid_bridge_endpoint_free(ep);
	/* The socket file we made is removed when we stop listening. */
	ck_assert(!g_file_test(path, G_FILE_TEST_EXISTS));
	ccid_bridge_addr_clear(&a);
	served_fini(&s);
	served_fini(&s2);
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
