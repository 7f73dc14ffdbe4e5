/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fake QEMU usb-redir peer (see fake_qemu.h).
 */
#include "fake_qemu.h"

#include <check.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>

#include <ccid-emu/ccid_emu.h>

static void guest_event(struct fake_qemu *g, const char *what)
{
	if (g->n_events < FAKE_QEMU_MAX_EVENTS)
		g_strlcpy(g->events[g->n_events++], what, sizeof(g->events[0]));
}

static int guest_read(void *priv, uint8_t *data, int count)
{
	struct fake_qemu *g = priv;
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
	struct fake_qemu *g = priv;
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
	struct fake_qemu *g = priv;

	g->conn = *h;
	g->connected = true;
	g->n_connects++;
	guest_event(g, "device_connect");
}
static void g_device_disconnect(void *priv)
{
	struct fake_qemu *g = priv;

	g->disconnected = true;
	guest_event(g, "device_disconnect");
}
static void g_interface_info(void *priv, struct usb_redir_interface_info_header *h)
{
	guest_event(priv, "interface_info");
}
static void g_ep_info(void *priv, struct usb_redir_ep_info_header *h)
{
	struct fake_qemu *g = priv;

	g->ep = *h;
	g->have_ep = true;
	guest_event(g, "ep_info");
}
static void g_configuration_status(void *priv, uint64_t id,
				   struct usb_redir_configuration_status_header *h)
{
	struct fake_qemu *g = priv;

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
	struct fake_qemu *g = priv;

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
	struct fake_qemu *g = priv;

	g->ctrl.done = true;
	g->ctrl.status = h->status;
	g->ctrl.len = len;
	if (len > 0 && (size_t)len <= sizeof(g->ctrl.data))
		memcpy(g->ctrl.data, data, (size_t)len);
	usbredirparser_free_packet_data(g->parser, data);
}
static void g_bulk_packet(void *priv, uint64_t id,
			  struct usb_redir_bulk_packet_header *h,
			  uint8_t *data, int len)
{
	struct fake_qemu *g = priv;
	struct fake_qemu_reply *r = &g->bulk[id % FAKE_QEMU_BULK_SLOTS];

	r->done = true;
	r->status = h->status;
	r->data_count = g->data_count;
	r->len = len;
	if (len > 0 && (size_t)len <= sizeof(r->data))
		memcpy(r->data, data, (size_t)len);
	usbredirparser_free_packet_data(g->parser, data);
}
static void g_iso_packet(void *priv, uint64_t id, struct usb_redir_iso_packet_header *h,
			 uint8_t *data, int len)
{
	usbredirparser_free_packet_data(((struct fake_qemu *)priv)->parser, data);
}
static void g_interrupt_packet(void *priv, uint64_t id,
			       struct usb_redir_interrupt_packet_header *h,
			       uint8_t *data, int len)
{
	struct fake_qemu *g = priv;

	if (h->endpoint == CCID_EP_BULK_IN) {
		unsigned i = (g->data_head + g->data_count) % FAKE_QEMU_MAX_PIECES;

		if (g->ep.type[16 | (CCID_EP_BULK_IN & 0x0F)] !=
		    usb_redir_type_interrupt) {
			/* QEMU: "received int packet for non interrupt
			 * endpoint", freed */
			g->data_wrong_type++;
		} else if (!g->data_started) {
			g->data_dropped++;
		} else {
			ck_assert_msg(g->data_count < FAKE_QEMU_MAX_PIECES,
				      "more interrupt packets than QEMU buffers");
			ck_assert_int_le(len, 64);
			if (g->data_fill + (uint32_t)len > FAKE_QEMU_DATA_BYTES)
				g->data_fill = 0;   /* ring: old pieces were read */
			memcpy(g->data + g->data_fill, data, (size_t)len);
			g->data_off[i] = g->data_fill;
			g->data_len[i] = len;
			g->data_fill += (uint32_t)len;
			g->data_count++;
		}
		usbredirparser_free_packet_data(g->parser, data);
		return;
	}
	if (g->n_intr < FAKE_QEMU_MAX_INTR && len <= 8) {
		memcpy(g->intr[g->n_intr], data, (size_t)len);
		g->intr_len[g->n_intr++] = len;
	}
	usbredirparser_free_packet_data(g->parser, data);
}
static void g_buffered_bulk_packet(void *priv, uint64_t id,
	struct usb_redir_buffered_bulk_packet_header *h, uint8_t *data, int len)
{
	usbredirparser_free_packet_data(((struct fake_qemu *)priv)->parser, data);
}

void fake_qemu_init(struct fake_qemu *g, int fd)
{
	fake_qemu_init_version(g, fd, "fake-qemu");
}

void fake_qemu_init_version(struct fake_qemu *g, int fd, const char *version)
{
	uint32_t caps[USB_REDIR_CAPS_SIZE] = { 0 };
	struct usbredirparser *p;

	memset(g, 0, sizeof(*g));
	g->fd = fd;
	g->next_id = 100;
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
	usbredirparser_init(p, version, caps, USB_REDIR_CAPS_SIZE, 0);
}

void fake_qemu_fini(struct fake_qemu *g)
{
	if (g->parser)
		usbredirparser_destroy(g->parser);
	g->parser = NULL;
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
}

/* Sleeps until our socket or a source of the default main context (a
 * bridge in this process) has something, or @left_us pass: one round of
 * GLib's prepare / query / poll / check / dispatch with our fd added. */
static void spin_wait(struct fake_qemu *g, gint64 left_us)
{
	GMainContext *ctx = g_main_context_default();
	gboolean acquired = g_main_context_acquire(ctx);
	g_autofree GPollFD *fds = NULL;
	gint max_prio, timeout, n, room = 16;
	gint64 ms = left_us / 1000 + 1;

	g_main_context_prepare(ctx, &max_prio);
	for (;;) {
		g_free(fds);
		fds = g_new0(GPollFD, room + 1);
		n = g_main_context_query(ctx, max_prio, &timeout, fds + 1, room);
		if (n <= room)
			break;
		room = n;
	}
	fds[0].fd = -1;
	if (g->parser != NULL && g->fd >= 0) {
		fds[0].fd = g->fd;
		fds[0].events = (gushort)((g->eof ? 0 : G_IO_IN) |
			(usbredirparser_has_data_to_write(g->parser) ? G_IO_OUT : 0));
	}
	if (timeout >= 0 && timeout < ms)
		ms = timeout;
	g_poll(fds, (guint)n + 1, (gint)MIN(ms, G_MAXINT));
	if (g_main_context_check(ctx, max_prio, fds + 1, n))
		g_main_context_dispatch(ctx);
	if (acquired)
		g_main_context_release(ctx);
}

bool fake_qemu_spin(struct fake_qemu *g, fake_qemu_done_fn done, void *arg,
		    unsigned timeout_ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	for (;;) {
		gint64 left;

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
		left = end - g_get_monotonic_time();
		if (left <= 0)
			break;
		spin_wait(g, left);
	}
	return done ? done(g, arg) : true;
}

bool fake_qemu_is_connected(struct fake_qemu *g, void *arg)
{
	return g->connected;
}

bool fake_qemu_is_disconnected(struct fake_qemu *g, void *arg)
{
	return g->disconnected;
}

bool fake_qemu_ctrl_done(struct fake_qemu *g, void *arg)
{
	return g->ctrl.done;
}

bool fake_qemu_cfg_done(struct fake_qemu *g, void *arg)
{
	return g->have_cfg_status;
}

bool fake_qemu_bulk_done(struct fake_qemu *g, void *arg)
{
	return g->bulk[GPOINTER_TO_UINT(arg) % FAKE_QEMU_BULK_SLOTS].done;
}

bool fake_qemu_intr_n(struct fake_qemu *g, void *arg)
{
	return g->n_intr >= GPOINTER_TO_UINT(arg);
}

struct fake_qemu_reply *fake_qemu_control_in(struct fake_qemu *g, uint8_t type,
					     uint8_t req, uint16_t value,
					     uint16_t index, uint16_t len)
{
	struct usb_redir_control_packet_header h = {
		.endpoint = 0x80, .request = req, .requesttype = type,
		.value = value, .index = index, .length = len,
	};

	memset(&g->ctrl, 0, sizeof(g->ctrl));
	usbredirparser_send_control_packet(g->parser, g->next_id++, &h, NULL, 0);
	ck_assert_msg(fake_qemu_spin(g, fake_qemu_ctrl_done, NULL, 2000),
		      "control transfer got no answer");
	return &g->ctrl;
}

void fake_qemu_set_configuration(struct fake_qemu *g, uint8_t value)
{
	struct usb_redir_set_configuration_header h = { .configuration = value };

	g->have_cfg_status = false;
	usbredirparser_send_set_configuration(g->parser, g->next_id++, &h);
	ck_assert_msg(fake_qemu_spin(g, fake_qemu_cfg_done, NULL, 2000),
		      "no configuration_status");
}

static bool intr_status_done(struct fake_qemu *g, void *arg)
{
	return g->have_intr_status;
}

void fake_qemu_start_interrupt(struct fake_qemu *g)
{
	struct usb_redir_start_interrupt_receiving_header start = {
		.endpoint = CCID_EP_INTR_IN,
	};
	g->have_intr_status = false;
	usbredirparser_send_start_interrupt_receiving(g->parser, g->next_id++,
						      &start);
	ck_assert_msg(fake_qemu_spin(g, intr_status_done, NULL, 2000),
		      "no interrupt_receiving_status");
	ck_assert_int_eq(g->intr_status.status, usb_redir_success);
}

uint64_t fake_qemu_bulk_out_tds(struct fake_qemu *g, const uint8_t *msg,
				uint32_t len, unsigned td)
{
	uint64_t last;

	uint32_t off = 0;

	/* One bulk packet per TD, as QEMU sends them behind UHCI. */
	do {
		uint32_t n = MIN(td, len - off);

		last = g->next_id;
		fake_qemu_bulk_out(g, msg + off, n);
		off += n;
	} while (off < len);
	return last;
}

void fake_qemu_bulk_out(struct fake_qemu *g, const uint8_t *msg, uint32_t len)
{
	struct usb_redir_bulk_packet_header h = {
		.endpoint = CCID_EP_BULK_OUT, .length = (uint16_t)len,
		.length_high = (uint16_t)(len >> 16),
	};
	uint64_t id = g->next_id++;

	g->bulk[id % FAKE_QEMU_BULK_SLOTS].done = false;
	usbredirparser_send_bulk_packet(g->parser, id, &h, (uint8_t *)msg, (int)len);
	ck_assert_msg(fake_qemu_spin(g, fake_qemu_bulk_done,
				     GUINT_TO_POINTER(id), 2000),
		      "bulk-OUT not acknowledged");
	ck_assert_int_eq(g->bulk[id % FAKE_QEMU_BULK_SLOTS].status,
			 usb_redir_success);
}

uint64_t fake_qemu_bulk_in_request(struct fake_qemu *g, uint32_t len)
{
	struct usb_redir_bulk_packet_header h = {
		.endpoint = CCID_EP_BULK_IN, .length = (uint16_t)len,
		.length_high = (uint16_t)(len >> 16),
	};
	uint64_t id = g->next_id++;

	g->bulk[id % FAKE_QEMU_BULK_SLOTS].done = false;
	usbredirparser_send_bulk_packet(g->parser, id, &h, NULL, 0);
	return id;
}

struct fake_qemu_reply *fake_qemu_bulk_in(struct fake_qemu *g, uint32_t len,
					  unsigned timeout_ms)
{
	uint64_t id = fake_qemu_bulk_in_request(g, len);

	ck_assert_msg(fake_qemu_spin(g, fake_qemu_bulk_done,
				     GUINT_TO_POINTER(id), timeout_ms),
		      "bulk-IN got no answer");
	return &g->bulk[id % FAKE_QEMU_BULK_SLOTS];
}

uint32_t fake_qemu_xfr_block(uint8_t *msg, uint8_t seq, const uint8_t *apdu,
			     uint32_t len)
{
	msg[0] = CCID_PC_TO_RDR_XFR_BLOCK;
	msg[1] = (uint8_t)len; msg[2] = (uint8_t)(len >> 8);
	msg[3] = (uint8_t)(len >> 16); msg[4] = (uint8_t)(len >> 24);
	msg[5] = 0; msg[6] = seq; msg[7] = 0; msg[8] = 0; msg[9] = 0;
	memcpy(msg + 10, apdu, len);
	return 10 + len;
}

void fake_qemu_power_on(struct fake_qemu *g, uint8_t seq)
{
	/* PC_to_RDR_IccPowerOn: dwLength 0, slot 0, bSeq, bPowerSelect auto */
	const uint8_t msg[10] = {
		CCID_PC_TO_RDR_ICC_POWER_ON, 0, 0, 0, 0, 0, seq, 0, 0, 0
	};
	struct fake_qemu_reply *r;

	fake_qemu_bulk_out(g, msg, sizeof(msg));
	r = fake_qemu_bulk_in(g, 65536 + 100, 2000);
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_ge(r->len, 12);
	ck_assert_int_eq(r->data[0], CCID_RDR_TO_PC_DATA_BLOCK);
	ck_assert_int_eq(r->data[6], seq);
	ck_assert_int_eq(r->data[7], 0x00);      /* OK, card active */
	ck_assert_int_eq(r->data[10], 0x3B);     /* ATR TS */
}

void fake_qemu_data_start(struct fake_qemu *g)
{
	struct usb_redir_start_interrupt_receiving_header start = {
		.endpoint = CCID_EP_BULK_IN,
	};

	g->have_intr_status = false;
	g->data_started = true;
	usbredirparser_send_start_interrupt_receiving(g->parser, g->next_id++,
						      &start);
	ck_assert_msg(fake_qemu_spin(g, intr_status_done, NULL, 2000),
		      "no interrupt_receiving_status for bulk-IN");
	ck_assert_int_eq(g->intr_status.status, usb_redir_success);
}

/* Everything queued went out on the socket. */
static bool all_written(struct fake_qemu *g, void *arg)
{
	return g->parser == NULL || !usbredirparser_has_data_to_write(g->parser);
}

void fake_qemu_data_stop(struct fake_qemu *g)
{
	struct usb_redir_stop_interrupt_receiving_header stop = {
		.endpoint = CCID_EP_BULK_IN,
	};

	/* QEMU frees its queue and sends stop in the same call; the
	 * status that follows is not waited for. */
	g->data_started = false;
	g->data_head = g->data_count = 0;
	g->data_fill = 0;
	usbredirparser_send_stop_interrupt_receiving(g->parser, g->next_id++,
						     &stop);
	ck_assert_msg(fake_qemu_spin(g, all_written, NULL, 2000),
		      "the peer's socket took nothing for 2 s");
}

static bool bulk_in_is_bulk(const struct fake_qemu *g)
{
	return g->ep.type[16 | (CCID_EP_BULK_IN & 0x0F)] == usb_redir_type_bulk;
}

static bool data_piece_ready(struct fake_qemu *g, void *arg)
{
	return g->data_count > 0 || bulk_in_is_bulk(g);
}

uint32_t fake_qemu_data_read(struct fake_qemu *g, uint8_t *buf, uint32_t cap,
			     unsigned td, unsigned max_pieces,
			     unsigned timeout_ms)
{
	uint32_t got = 0;
	unsigned pieces = 0;

	for (;;) {
		unsigned want = MIN(td, cap - got);
		int len;

		ck_assert_msg(fake_qemu_spin(g, data_piece_ready, NULL, timeout_ms),
			      "no interrupt piece after %u bytes", got);
		if (g->data_count == 0) {
			/* bulk-IN is bulk now: the rest of this transfer */
			uint32_t rest = cap - got;
			struct fake_qemu_reply *r;

			if (max_pieces)
				rest = MIN(rest, (max_pieces - pieces) * td);
			ck_assert_uint_le(rest, sizeof(r->data));
			r = fake_qemu_bulk_in(g, rest, timeout_ms);
			ck_assert_int_eq(r->status, usb_redir_success);
			ck_assert_uint_le((uint32_t)r->len, rest);
			memcpy(buf + got, r->data, (size_t)r->len);
			g->data_bulk_reads++;
			return got + (uint32_t)r->len;
		}
		len = g->data_len[g->data_head];
		ck_assert_msg((unsigned)len <= want,
			      "babble: %d-byte piece for a %u-byte TD", len, want);
		memcpy(buf + got, g->data + g->data_off[g->data_head], (size_t)len);
		g->data_head = (g->data_head + 1) % FAKE_QEMU_MAX_PIECES;
		g->data_count--;
		got += (uint32_t)len;
		pieces++;
		if ((unsigned)len < td || (max_pieces && pieces == max_pieces))
			return got;
	}
}

void fake_qemu_intr_out(struct fake_qemu *g, const uint8_t *msg, uint32_t len,
			unsigned td)
{
	uint32_t off = 0;

	do {
		uint32_t n = MIN(td, len - off);
		struct usb_redir_interrupt_packet_header h = {
			.endpoint = CCID_EP_BULK_OUT, .length = (uint16_t)n,
		};

		usbredirparser_send_interrupt_packet(g->parser, g->next_id++, &h,
						     (uint8_t *)msg + off, (int)n);
		off += n;
	} while (off < len);
	ck_assert_msg(fake_qemu_spin(g, all_written, NULL, 2000),
		      "the peer's socket took nothing for 2 s");
}
