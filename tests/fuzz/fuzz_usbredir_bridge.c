/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_usbredir_bridge: the usbredir bridge (usbredir-bridge/ccid_bridge.c)
 * in-process, behind a socket pair, against a peer built on the real
 * usbredirparser in the usb-guest role (what QEMU's usb-redir is).  The
 * fuzz input chooses the peer's hello (version, capabilities), the
 * bridge's data path, then a script of packets the peer sends: control,
 * bulk, interrupt, iso and buffered-bulk packets with any endpoint, length
 * and id, cancels, resets, configuration and alt-setting requests,
 * (interrupt|bulk) receiving start/stop, bulk streams, filters, packets a
 * guest never sends (device_connect, ep_info, ...), raw bytes on the wire
 * (any header, any length), a peer that stops reading, the socket dropped
 * and a new peer.
 *
 * Input: byte 0 = peer capabilities (bit i announces the i-th entry of
 * peer_caps[]); byte 1 = data path (& 3) and, bit 2, a hello version of
 * input bytes; then ops, each an op byte (% OP_COUNT) plus arguments read
 * by fz_u8/fz_u16/fz_u32 (past the end they read zeros).
 *
 * Checks, beyond the sanitizers: every bulk-IN reply carries at most the
 * length asked for and every control IN reply at most wLength; the bridge
 * never writes a packet the peer's parser rejects as malformed
 * (usbredirparser logs an error and the peer would drop the connection).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>
#include <usbredirfilter.h>
#include <usbredirparser.h>

#include "ccid_bridge.h"
#include "ccid_card_loopback.h"
#include "fuzz_harness.h"

enum {
	OP_CONTROL, OP_BULK, OP_INTERRUPT, OP_CANCEL, OP_RESET, OP_SET_CONFIG,
	OP_GET_CONFIG, OP_SET_ALT, OP_GET_ALT, OP_INTR_RECV, OP_BULK_RECV,
	OP_STREAMS, OP_ISO, OP_BUFFERED, OP_FILTER, OP_HOST_ONLY, OP_RAW,
	OP_PUMP, OP_READING, OP_DROP, OP_DETACH, OP_CCID_CMD,
	OP_COUNT
};

static const int peer_caps[] = {
	usb_redir_cap_64bits_ids, usb_redir_cap_32bits_bulk_length,
	usb_redir_cap_ep_info_max_packet_size, usb_redir_cap_connect_device_version,
	usb_redir_cap_filter, usb_redir_cap_bulk_receiving,
	usb_redir_cap_bulk_streams, usb_redir_cap_device_disconnect_ack,
};

/* Control requests by packet id modulo this: how many are unanswered and
 * the largest length they asked for (ids may repeat while a request with
 * the same id is still unanswered). */
#define ASKED_SLOTS 64u
/* Bulk-IN requests not yet answered, oldest first (ids may repeat). */
#define ASKED_BULK 512u

struct peer {
	struct usbredirparser *p;
	int fd;
	bool eof, reading, parse_error;
	bool in_read;     /* inside usbredirparser_do_read() */
	struct { uint64_t id; uint32_t len; } bulk[ASKED_BULK];
	unsigned n_bulk;
	uint16_t ctrl_asked[ASKED_SLOTS];
	unsigned ctrl_pending[ASKED_SLOTS];
};

struct fz_bridge {
	ccid_bridge *bridge;
	ccid_card_loopback *card;
	guint card_timer;
	struct peer peer;
	uint8_t caps_mask;
	bool custom_version;
	char version[64];
};

/* ---- the loopback card's timer (a real GLib timeout) ------------------- */

static gboolean card_timer_cb(gpointer data)
{
	struct fz_bridge *f = data;

	f->card_timer = 0;
	ccid_card_loopback_timer_fired(f->card);
	return G_SOURCE_REMOVE;
}

static void card_timer_arm(void *user, uint32_t ms)
{
	struct fz_bridge *f = user;

	if (f->card_timer)
		g_source_remove(f->card_timer);
	f->card_timer = g_timeout_add(ms, card_timer_cb, f);
}

static void card_timer_disarm(void *user)
{
	struct fz_bridge *f = user;

	if (f->card_timer)
		g_source_remove(f->card_timer);
	f->card_timer = 0;
}

static const struct ccid_card_loopback_timer_ops card_timer_ops = {
	.arm = card_timer_arm, .disarm = card_timer_disarm,
};

/* ---- the peer (usb-guest role) ------------------------------------------ */

static int peer_read(void *priv, uint8_t *data, int count)
{
	struct peer *g = priv;
	ssize_t n;

	if (!g->reading)
		return 0;
	n = read(g->fd, data, (size_t)count);
	if (n > 0)
		return (int)n;
	if (n < 0 && errno == EAGAIN)
		return 0;
	g->eof = true;
	return -1;
}

static int peer_write(void *priv, uint8_t *data, int count)
{
	struct peer *g = priv;
	ssize_t n = send(g->fd, data, (size_t)count, MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n >= 0)
		return (int)n;
	return errno == EAGAIN ? 0 : -1;
}

static void peer_log(void *priv, int level, const char *msg)
{
	struct peer *g = priv;

	fz_trace("  peer log %d: %s", level, msg);
	/* Only what the peer receives counts: sending a packet its role
	 * forbids is logged as an error too, and that is the fuzzer's doing. */
	if (level <= usbredirparser_error && g->in_read)
		g->parse_error = true;
}

#define FREE_DATA(priv, data) \
	usbredirparser_free_packet_data(((struct peer *)(priv))->p, (data))

static void peer_hello(void *priv, struct usb_redir_hello_header *h) { }
static void peer_device_connect(void *priv, struct usb_redir_device_connect_header *h) { }
static void peer_device_disconnect(void *priv) { }
static void peer_interface_info(void *priv, struct usb_redir_interface_info_header *h) { }
static void peer_ep_info(void *priv, struct usb_redir_ep_info_header *h) { }
static void peer_configuration_status(void *priv, uint64_t id,
				      struct usb_redir_configuration_status_header *h) { }
static void peer_alt_setting_status(void *priv, uint64_t id,
				    struct usb_redir_alt_setting_status_header *h) { }
static void peer_iso_stream_status(void *priv, uint64_t id,
				   struct usb_redir_iso_stream_status_header *h) { }
static void peer_interrupt_receiving_status(void *priv, uint64_t id,
					    struct usb_redir_interrupt_receiving_status_header *h) { }
static void peer_bulk_streams_status(void *priv, uint64_t id,
				     struct usb_redir_bulk_streams_status_header *h) { }
static void peer_bulk_receiving_status(void *priv, uint64_t id,
				       struct usb_redir_bulk_receiving_status_header *h) { }

static void peer_control_packet(void *priv, uint64_t id,
				struct usb_redir_control_packet_header *h,
				uint8_t *data, int len)
{
	struct peer *g = priv;
	unsigned slot = (unsigned)(id % ASKED_SLOTS);

	if (h->requesttype & 0x80)
		FZ_CHECK(len <= (int)g->ctrl_asked[slot],
			 "control IN reply of %d bytes, %u asked", len,
			 g->ctrl_asked[slot]);
	else
		FZ_CHECK(len == 0, "control OUT reply carries %d bytes", len);
	if (g->ctrl_pending[slot] > 0 && --g->ctrl_pending[slot] == 0)
		g->ctrl_asked[slot] = 0;
	FREE_DATA(priv, data);
}

static void peer_bulk_packet(void *priv, uint64_t id,
			     struct usb_redir_bulk_packet_header *h,
			     uint8_t *data, int len)
{
	struct peer *g = priv;

	if (h->endpoint == CCID_EP_BULK_IN) {
		/* The oldest request with this id is the one answered. */
		unsigned i = 0;

		while (i < g->n_bulk && g->bulk[i].id != id)
			i++;
		fz_trace("  peer: bulk-IN reply id %llu status %u, %d bytes; "
			 "%u requests open, this one asked %u",
			 (unsigned long long)id, h->status, len, g->n_bulk,
			 i < g->n_bulk ? g->bulk[i].len : 0u);
		if (i < g->n_bulk) {
			FZ_CHECK((uint32_t)len <= g->bulk[i].len,
				 "bulk-IN reply of %d bytes, %u asked", len,
				 g->bulk[i].len);
			memmove(&g->bulk[i], &g->bulk[i + 1],
				(g->n_bulk - i - 1) * sizeof(g->bulk[0]));
			g->n_bulk--;
		} else {
			FZ_CHECK(len == 0, "bulk-IN reply of %d bytes to id %llu, "
				 "never asked", len, (unsigned long long)id);
		}
	} else
		FZ_CHECK(len == 0, "bulk reply for ep %02x carries %d bytes",
			 h->endpoint, len);
	FREE_DATA(priv, data);
}

static void peer_iso_packet(void *priv, uint64_t id,
			    struct usb_redir_iso_packet_header *h,
			    uint8_t *data, int len)
{
	FREE_DATA(priv, data);
}

static void peer_interrupt_packet(void *priv, uint64_t id,
				  struct usb_redir_interrupt_packet_header *h,
				  uint8_t *data, int len)
{
	FZ_CHECK(len <= 64, "interrupt packet of %d bytes from the bridge", len);
	FREE_DATA(priv, data);
}

static void peer_buffered_bulk_packet(void *priv, uint64_t id,
				      struct usb_redir_buffered_bulk_packet_header *h,
				      uint8_t *data, int len)
{
	FREE_DATA(priv, data);
}

static void peer_open(struct fz_bridge *f, int fd)
{
	uint32_t caps[USB_REDIR_CAPS_SIZE] = { 0 };
	struct peer *g = &f->peer;
	struct usbredirparser *p;

	memset(g, 0, sizeof(*g));
	g->fd = fd;
	g->reading = true;
	g_unix_set_fd_nonblocking(fd, TRUE, NULL);
	p = g->p = usbredirparser_create();
	p->priv = g;
	p->log_func = peer_log;
	p->read_func = peer_read;
	p->write_func = peer_write;
	p->hello_func = peer_hello;
	p->device_connect_func = peer_device_connect;
	p->device_disconnect_func = peer_device_disconnect;
	p->interface_info_func = peer_interface_info;
	p->ep_info_func = peer_ep_info;
	p->configuration_status_func = peer_configuration_status;
	p->alt_setting_status_func = peer_alt_setting_status;
	p->iso_stream_status_func = peer_iso_stream_status;
	p->interrupt_receiving_status_func = peer_interrupt_receiving_status;
	p->bulk_streams_status_func = peer_bulk_streams_status;
	p->bulk_receiving_status_func = peer_bulk_receiving_status;
	p->control_packet_func = peer_control_packet;
	p->bulk_packet_func = peer_bulk_packet;
	p->iso_packet_func = peer_iso_packet;
	p->interrupt_packet_func = peer_interrupt_packet;
	p->buffered_bulk_packet_func = peer_buffered_bulk_packet;
	for (size_t i = 0; i < G_N_ELEMENTS(peer_caps); i++)
		if (f->caps_mask & (1u << i))
			usbredirparser_caps_set_cap(caps, peer_caps[i]);
	usbredirparser_init(p, f->custom_version ? f->version : "qemu usb-redir guest 7.2.0",
			    caps, USB_REDIR_CAPS_SIZE, 0);
}

static void peer_close(struct peer *g)
{
	if (g->p)
		usbredirparser_destroy(g->p);
	g->p = NULL;
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
}

/* Moves bytes both ways and runs what the bridge has to run, without
 * blocking: a handful of rounds settle any exchange. */
static void pump(struct fz_bridge *f, unsigned rounds)
{
	struct peer *g = &f->peer;

	for (unsigned r = 0; r < rounds; r++) {
		unsigned spins = 0;

		if (g->p && usbredirparser_has_data_to_write(g->p))
			usbredirparser_do_write(g->p);
		while (spins++ < 256 && g_main_context_iteration(NULL, FALSE))
			;
		if (g->p && !g->eof && g->reading) {
			g->in_read = true;
			usbredirparser_do_read(g->p);
			g->in_read = false;
		}
	}
	FZ_CHECK(!g->parse_error, "the peer's usbredirparser rejected what the bridge sent");
}

static void attach_new_peer(struct fz_bridge *f)
{
	int sv[2];

	FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
		 "socketpair: %s", g_strerror(errno));
	FZ_CHECK(ccid_bridge_attach_fd(f->bridge, sv[0], "fuzz", NULL),
		 "attach refused");
	peer_open(f, sv[1]);
	pump(f, 3);
}

static uint64_t read_id(struct fz_in *in)
{
	uint8_t sel = fz_u8(in);

	/* Mostly small ids, so replies, cancels and reuse meet. */
	if (sel < 0xf0)
		return sel & 0x0f;
	return (uint64_t)fz_u32(in) << 32 | fz_u32(in);
}

/* The id as it goes on the wire: usbredirparser sends 32-bit ids unless
 * both sides have the 64-bit ids capability, so replies come back with
 * the low half only. */
static uint64_t wire_id(struct fz_bridge *f, uint64_t id)
{
	bool id64 = usbredirparser_peer_has_cap(f->peer.p, usb_redir_cap_64bits_ids) &&
		    (f->caps_mask & 1);

	return id64 ? id : (id & 0xffffffffu);
}

/* usbredirparser's MAX_BULK_TRANSFER_SIZE (private to usbredirparser.c):
 * it refuses to send a bulk packet whose length on the wire is larger. */
#define USBREDIR_MAX_BULK_LEN (128u * 1024u * 1024u)

/* A bulk packet's length as it goes on the wire: its high 16 bits travel
 * only when both sides have the 32-bit bulk length capability. */
static uint32_t wire_bulk_len(struct fz_bridge *f, uint32_t len)
{
	bool len32 = usbredirparser_peer_has_cap(f->peer.p,
						 usb_redir_cap_32bits_bulk_length) &&
		     (f->caps_mask & 2);   /* peer_caps[1] */

	return len32 ? len : (len & 0xffffu);
}

/* Endpoints: mostly the CCID ones, sometimes anything. */
static uint8_t read_ep(struct fz_in *in)
{
	static const uint8_t eps[] = { CCID_EP_BULK_OUT, CCID_EP_BULK_IN,
				       CCID_EP_INTR_IN, 0x00, 0x80 };
	uint8_t v = fz_u8(in);

	return v < 0xc0 ? eps[v % sizeof(eps)] : v;
}

static void op_bulk(struct fz_bridge *f, struct fz_in *in, bool ccid_cmd)
{
	struct usb_redir_bulk_packet_header h = { 0 };
	static uint8_t data[70000];
	uint64_t id = read_id(in);
	uint32_t len, dlen;

	if (ccid_cmd) {
		/* A well-formed CCID command header with a payload. */
		dlen = 10u + fz_u16(in) % 1014u;
		data[0] = fz_u8(in);
		data[1] = (uint8_t)(dlen - 10);
		data[2] = (uint8_t)((dlen - 10) >> 8);
		data[3] = data[4] = 0;
		data[5] = fz_u8(in) & 1;
		data[6] = fz_u8(in);
		fz_bytes(in, data + 7, dlen - 7);
		h.endpoint = CCID_EP_BULK_OUT;
		len = dlen;
	} else {
		uint8_t mode = fz_u8(in);

		h.endpoint = read_ep(in);
		h.status = fz_u8(in) & 0x0f ? 0 : fz_u8(in);
		len = fz_u32(in);
		if (mode & 1)
			len &= 0xffff;
		if (mode & 2)
			len %= 70000;
		dlen = fz_u16(in);
		if (mode & 4)
			dlen = len;
		dlen %= sizeof(data);
		fz_bytes(in, data, dlen);
	}
	if (h.endpoint == CCID_EP_BULK_IN && dlen)
		dlen = 0;   /* usbredirparser refuses IN data from a guest */
	h.length = (uint16_t)len;
	h.length_high = (uint16_t)(len >> 16);
	h.stream_id = 0;
	/* Only what usbredirparser sends is asked for: it refuses (sends
	 * nothing for) a length over its limit. */
	if (h.endpoint == CCID_EP_BULK_IN && f->peer.n_bulk < ASKED_BULK &&
	    wire_bulk_len(f, len) <= USBREDIR_MAX_BULK_LEN) {
		f->peer.bulk[f->peer.n_bulk].id = wire_id(f, id);
		f->peer.bulk[f->peer.n_bulk].len = wire_bulk_len(f, len);
		f->peer.n_bulk++;
	}
	fz_trace("bulk ep %02x id %llu len %u data %u", h.endpoint,
		 (unsigned long long)id, len, dlen);
	usbredirparser_send_bulk_packet(f->peer.p, id, &h, dlen ? data : NULL,
					(int)dlen);
}

static void op_control(struct fz_bridge *f, struct fz_in *in)
{
	struct usb_redir_control_packet_header h = { 0 };
	uint8_t data[512];
	uint64_t id = read_id(in);
	unsigned dlen;

	h.endpoint = fz_u8(in) & 0x80;
	h.requesttype = fz_u8(in);
	h.request = fz_u8(in);
	h.status = 0;
	h.value = fz_u16(in);
	h.index = fz_u16(in);
	h.length = fz_u16(in);
	h.endpoint = h.requesttype & 0x80;
	dlen = fz_u8(in);
	if (dlen == 0xff)
		dlen = h.length % sizeof(data);
	if (h.requesttype & 0x80)
		dlen = 0;   /* the parser refuses IN data from a guest */
	fz_bytes(in, data, dlen);
	/* usbredirparser refuses (sends nothing for) an OUT request whose data
	 * is not wLength long; only what is sent is asked for. */
	if ((h.endpoint & 0x80) || dlen == h.length) {
		unsigned slot = (unsigned)(wire_id(f, id) % ASKED_SLOTS);

		f->peer.ctrl_pending[slot]++;
		f->peer.ctrl_asked[slot] = MAX(f->peer.ctrl_asked[slot],
					       h.length);
	}
	fz_trace("control %02x %02x v %04x i %04x l %u data %u", h.requesttype,
		 h.request, h.value, h.index, h.length, dlen);
	usbredirparser_send_control_packet(f->peer.p, id, &h, dlen ? data : NULL,
					   (int)dlen);
}

static void op_interrupt(struct fz_bridge *f, struct fz_in *in)
{
	struct usb_redir_interrupt_packet_header h = { 0 };
	uint8_t data[1024];
	uint64_t id = read_id(in);
	unsigned dlen;

	h.endpoint = read_ep(in);
	h.length = fz_u16(in);
	dlen = fz_u16(in) % sizeof(data);
	if (fz_u8(in) & 1)
		dlen = h.length % sizeof(data);
	if (h.endpoint & 0x80)
		dlen = 0;
	fz_bytes(in, data, dlen);
	fz_trace("interrupt ep %02x len %u data %u", h.endpoint, h.length, dlen);
	usbredirparser_send_interrupt_packet(f->peer.p, id, &h, dlen ? data : NULL,
					     (int)dlen);
}

/* A packet with any type, header length and payload, framed by hand: the
 * bridge's parser sees lengths and types usbredirparser would never send. */
static void op_raw(struct fz_bridge *f, struct fz_in *in)
{
	uint8_t buf[4096];
	uint32_t type = fz_u8(in);
	uint32_t len = fz_u16(in);
	unsigned n = fz_u16(in) % (sizeof(buf) - 16);
	bool id64 = usbredirparser_peer_has_cap(f->peer.p, usb_redir_cap_64bits_ids) &&
		    (f->caps_mask & 1);
	unsigned hl = id64 ? 16 : 12;

	if (type >= 0x80)
		type = 100 + (type & 0x0f);   /* the data packets live at 100.. */
	memcpy(buf, &type, 4);
	memcpy(buf + 4, &len, 4);
	memset(buf + 8, 0, 8);
	buf[8] = fz_u8(in);
	fz_bytes(in, buf + hl, n);
	/* Whatever the parser had queued goes first, or we would split it. */
	while (usbredirparser_has_data_to_write(f->peer.p) &&
	       usbredirparser_do_write(f->peer.p) == 0)
		;
	fz_trace("raw type %u len %u bytes %u", type, len, n);
	(void)!send(f->peer.fd, buf, hl + n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void op_host_only(struct fz_bridge *f, struct fz_in *in)
{
	struct usbredirparser *p = f->peer.p;
	uint64_t id = read_id(in);

	/* Packets only a usb-host sends: the guest-role parser refuses to
	 * send most, so they go through op_raw too; these it does send. */
	switch (fz_u8(in) % 4) {
	case 0:
		usbredirparser_send_device_disconnect(p);
		break;
	case 1: {
		struct usb_redir_start_iso_stream_header h = {
			.endpoint = fz_u8(in), .pkts_per_urb = fz_u8(in),
			.no_urbs = fz_u8(in) };
		usbredirparser_send_start_iso_stream(p, id, &h);
		break;
	}
	case 2: {
		struct usb_redir_stop_iso_stream_header h = { .endpoint = fz_u8(in) };
		usbredirparser_send_stop_iso_stream(p, id, &h);
		break;
	}
	default:
		usbredirparser_send_reset(p);
		break;
	}
}

static void op_filter(struct fz_bridge *f, struct fz_in *in)
{
	struct usbredirfilter_rule rules[4];
	unsigned n = fz_u8(in) % 5;

	if (fz_u8(in) & 1) {
		usbredirparser_send_filter_reject(f->peer.p);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		rules[i].device_class = (int)fz_u16(in) - 1;
		rules[i].vendor_id = (int)fz_u32(in) % 0x10001 - 1;
		rules[i].product_id = (int)fz_u32(in) % 0x10001 - 1;
		rules[i].device_version_bcd = (int)fz_u32(in) % 0x10001 - 1;
		rules[i].allow = fz_u8(in) & 1;
	}
	usbredirparser_send_filter_filter(f->peer.p, rules, (int)n);
}

static void run_op(struct fz_bridge *f, struct fz_in *in)
{
	struct usbredirparser *p = f->peer.p;
	uint8_t op = fz_u8(in) % OP_COUNT;

	switch (op) {
	case OP_CONTROL:
		op_control(f, in);
		break;
	case OP_BULK:
	case OP_CCID_CMD:
		op_bulk(f, in, op == OP_CCID_CMD);
		break;
	case OP_INTERRUPT:
		op_interrupt(f, in);
		break;
	case OP_CANCEL:
		usbredirparser_send_cancel_data_packet(p, read_id(in));
		break;
	case OP_RESET:
		usbredirparser_send_reset(p);
		break;
	case OP_SET_CONFIG: {
		struct usb_redir_set_configuration_header h = {
			.configuration = fz_u8(in) % 3 ? 1 : fz_u8(in) };
		usbredirparser_send_set_configuration(p, read_id(in), &h);
		break;
	}
	case OP_GET_CONFIG:
		usbredirparser_send_get_configuration(p, read_id(in));
		break;
	case OP_SET_ALT: {
		struct usb_redir_set_alt_setting_header h = {
			.interface = fz_u8(in), .alt = fz_u8(in) };
		usbredirparser_send_set_alt_setting(p, read_id(in), &h);
		break;
	}
	case OP_GET_ALT: {
		struct usb_redir_get_alt_setting_header h = { .interface = fz_u8(in) };
		usbredirparser_send_get_alt_setting(p, read_id(in), &h);
		break;
	}
	case OP_INTR_RECV: {
		uint8_t ep = read_ep(in);

		if (fz_u8(in) & 1) {
			struct usb_redir_start_interrupt_receiving_header h = { .endpoint = ep };
			usbredirparser_send_start_interrupt_receiving(p, read_id(in), &h);
		} else {
			struct usb_redir_stop_interrupt_receiving_header h = { .endpoint = ep };
			usbredirparser_send_stop_interrupt_receiving(p, read_id(in), &h);
		}
		break;
	}
	case OP_BULK_RECV: {
		uint8_t ep = read_ep(in);

		if (fz_u8(in) & 1) {
			struct usb_redir_start_bulk_receiving_header h = {
				.stream_id = fz_u32(in), .bytes_per_transfer = fz_u32(in),
				.endpoint = ep, .no_transfers = fz_u8(in) };
			usbredirparser_send_start_bulk_receiving(p, read_id(in), &h);
		} else {
			struct usb_redir_stop_bulk_receiving_header h = {
				.stream_id = fz_u32(in), .endpoint = ep };
			usbredirparser_send_stop_bulk_receiving(p, read_id(in), &h);
		}
		break;
	}
	case OP_STREAMS:
		if (fz_u8(in) & 1) {
			struct usb_redir_alloc_bulk_streams_header h = {
				.endpoints = fz_u32(in), .no_streams = fz_u32(in) };
			usbredirparser_send_alloc_bulk_streams(p, read_id(in), &h);
		} else {
			struct usb_redir_free_bulk_streams_header h = { .endpoints = fz_u32(in) };
			usbredirparser_send_free_bulk_streams(p, read_id(in), &h);
		}
		break;
	case OP_ISO: {
		struct usb_redir_iso_packet_header h = {
			.endpoint = read_ep(in), .status = 0, .length = fz_u16(in) % 512 };
		uint8_t data[512];

		if (h.endpoint & 0x80)
			h.length = 0;
		fz_bytes(in, data, h.length);
		usbredirparser_send_iso_packet(p, read_id(in), &h,
					       h.length ? data : NULL, h.length);
		break;
	}
	case OP_BUFFERED: {
		/* A host-only packet: usbredirparser does not send it from a
		 * guest, so it is framed by hand. */
		op_raw(f, in);
		break;
	}
	case OP_FILTER:
		op_filter(f, in);
		break;
	case OP_HOST_ONLY:
		op_host_only(f, in);
		break;
	case OP_RAW:
		op_raw(f, in);
		break;
	case OP_PUMP:
		pump(f, 1 + fz_u8(in) % 8);
		break;
	case OP_READING:
		/* A peer that stops reading: the bridge's output backs up. */
		f->peer.reading = !f->peer.reading;
		break;
	case OP_DROP:
		/* The socket dropped under the bridge: it must notice on its
		 * own and be ready for the next peer. */
		fz_trace("drop");
		peer_close(&f->peer);
		for (unsigned i = 0; i < 64 && ccid_bridge_is_attached(f->bridge); i++)
			g_main_context_iteration(NULL, FALSE);
		FZ_CHECK(!ccid_bridge_is_attached(f->bridge),
			 "bridge still attached after its socket closed");
		attach_new_peer(f);
		break;
	case OP_DETACH:
		fz_trace("detach");
		ccid_bridge_detach(f->bridge, 0);
		FZ_CHECK(!ccid_bridge_is_attached(f->bridge), "still attached after detach");
		peer_close(&f->peer);
		attach_new_peer(f);
		break;
	}
}

static void quiet_log(const gchar *domain, GLogLevelFlags level,
		      const gchar *msg, gpointer user)
{
	fz_trace("  glib: %s", msg);
}

static void bridge_log(void *user, enum ccid_log_level level, const char *msg)
{
	fz_trace("  bridge: %s", msg);
}

static const struct ccid_bridge_callbacks bridge_cbs = { .log = bridge_log };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct fz_bridge f;
	struct ccid_config cfg;
	ccid_slot *slot;
	uint8_t mode;
	unsigned ops = 0;

	g_log_set_default_handler(quiet_log, NULL);
	memset(&f, 0, sizeof(f));
	f.peer.fd = -1;
	f.caps_mask = fz_u8(&in);
	mode = fz_u8(&in);
	if (mode & 4) {
		f.custom_version = true;
		fz_bytes(&in, (uint8_t *)f.version, sizeof(f.version) - 1);
	}
	ccid_config_init(&cfg);
	f.bridge = ccid_bridge_new(&cfg, &bridge_cbs, &f, NULL);
	FZ_CHECK(f.bridge != NULL, "default config refused");
	ccid_bridge_set_data_path(f.bridge, (enum ccid_bridge_data_path)(mode & 3));
	slot = ccid_dev_get_slot(ccid_bridge_get_dev(f.bridge), 0);
	f.card = ccid_card_loopback_new(slot, &card_timer_ops, &f);
	ccid_slot_set_card(slot, ccid_card_loopback_ops(), f.card, true);
	attach_new_peer(&f);

	while (fz_more(&in) && ops++ < 256) {
		run_op(&f, &in);
		pump(&f, 2);
	}
	pump(&f, 4);

	ccid_bridge_free(f.bridge);
	peer_close(&f.peer);
	card_timer_disarm(&f);
	ccid_card_loopback_free(f.card);
	/* Sources the bridge removed are freed on the next iteration. */
	while (g_main_context_iteration(NULL, FALSE))
		;
	return 0;
}
