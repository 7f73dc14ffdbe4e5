/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The usb-host side of one usbredir connection, glued to a ccid_dev.
 *
 * Facts about QEMU's usb-redir (7.2) this code relies on:
 *  - every usbredirparser callback must be set: the parser calls them
 *    without checking for NULL;
 *  - interface_info and ep_info must precede device_connect, and be sent
 *    again before each configuration / alt-setting status;
 *  - SET_ADDRESS never reaches us; SET/GET_CONFIGURATION and
 *    SET/GET_INTERFACE arrive as their own packets, everything else as a
 *    control packet;
 *  - a bulk-IN packet is a request that stays pending until the device has
 *    data (or the peer cancels it); interrupt data is pushed after
 *    start_interrupt_receiving.
 *
 * The interrupt data path (docs/architecture.md, "usb-redir data path")
 * relies on more of QEMU's hw/usb/redirect.c than the descriptors promise:
 *  - usbredir_handle_data() picks the path from the ep_info type we send,
 *    not from the descriptors the guest reads, and a new ep_info replaces
 *    the types at once; bulk-IN goes from bulk back to interrupt only
 *    with no bulk-IN packet of QEMU's outstanding, or usb_handle_packet's
 *    pipelining assertion aborts QEMU (pipelining stays on once set);
 *  - an interrupt-OUT transfer completes at once, successfully, whatever
 *    we answer; its 16-bit length limits it to 65535 bytes (a longer one
 *    never reaches us: QEMU's parser refuses to send it), so bulk-OUT goes
 *    as interrupt only when asked, and is safe only from a reader whose
 *    dwMaxCCIDMessageLength keeps every command transfer within it (UHCI
 *    and EHCI's companions hand us one TD of <= wMaxPacketSize each, xHCI
 *    a whole transfer).  It is not the default because the guest can then
 *    post its read (a start after a stop) while the answer is still on its
 *    way to QEMU: a stop and start in that window leaves a tail of the
 *    answer queued in front of the copy pushed again (docs/serve.md);
 *  - interrupt-IN data is buffered per endpoint (bufpq) only between
 *    start_interrupt_receiving and stop; packets arriving outside that are
 *    freed, the queue is freed on stop (UHCI: an endpoint unseen for 32
 *    frames; EHCI: an idle queue; xHCI: stop/reset endpoint), and above
 *    2000 queued packets QEMU drops down to 1000;
 *  - each queued packet completes exactly one guest transfer, babbling if
 *    it is larger than the guest's TD: so pieces are <= wMaxPacketSize and
 *    a short or zero-length piece ends each message, as on a real bus.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
#include <usbredirfilter.h>
#include <usbredirparser.h>

#include "ccid_bridge.h"
#include <ccid_le.h>

/* Bulk-IN requests the peer may have outstanding; QEMU pipelines a few. */
#define BRIDGE_PENDING_IN_MAX  64u
/* Stop reading from a peer that does not read our replies once this much
 * output is queued, so a stuck QEMU cannot make us buffer without bound. */
#define BRIDGE_OUTPUT_HIGH_WATER (4u * 1024u * 1024u)
#define BRIDGE_CONTROL_BUF      4096u
#define BRIDGE_VERSION          "ccid-emu " CCID_EMU_VERSION

#ifndef CCID_EMU_VERSION
#define CCID_EMU_VERSION "0"
#endif

/* QEMU's usb-redir buffers at most 2 * 1000 interrupt packets per
 * endpoint before it drops some; one message must stay well below that. */
#define BRIDGE_QEMU_INTR_TARGET 1000u
#define BRIDGE_QEMU_VERSION_PREFIX "qemu usb-redir guest "
/* How long a command's completion waits for a reply that a card computes
 * on another thread (NSS, PIV, PC/SC): long enough for a signature, short
 * enough that a long operation soon gets its time extensions. */
#define BRIDGE_FENCE_MAX_US (50 * G_TIME_SPAN_MILLISECOND)

struct bridge_pending_in {
	uint64_t id;
	uint32_t len;
};

struct ccid_bridge {
	ccid_dev *dev;
	struct ccid_bridge_callbacks cbs;
	void *user;
	GMainContext *ctx;
	guint timer_id;
	GSource *pump_source;

	/* Session: all of this is reset when the peer goes away. */
	struct usbredirparser *parser;
	int fd;
	char *peer;
	GSource *io_source;    /* one per session; its condition is modified */
	gpointer io_tag;
	GIOCondition io_cond;
	bool dead;             /* I/O failed: tear down outside the parser */
	bool shown;            /* device_connect sent */
	bool intr_started;
	uint64_t intr_id;
	/* Interrupt-IN notification last pushed in this started period: QEMU
	 * may free it unread on stop, so it goes again on the next start. */
	uint8_t notify_last[CCID_INTR_MAX_PACKET];
	int notify_last_len;
	bool notify_unsure;

	/* The data path of this session (see the comment at the top). */
	enum ccid_bridge_data_path want_path;
	bool intr_path;          /* bulk-IN announced as interrupt */
	bool intr_out;           /* bulk-OUT too (CCID_BRIDGE_PATH_INTERRUPT_BOTH) */
	bool intr_out_offered;   /* ... at some point this session */
	bool intr_path_rejected; /* the peer rejected it once: bulk from now */
	/* dwMaxCCIDMessageLength <= CCID_BRIDGE_INTR_OUT_MAX_MSG: no command
	 * transfer can exceed the interrupt length of interrupt-both. */
	bool out_fits_intr;
	bool data_started;       /* start_interrupt_receiving on bulk-IN */
	/* Bulk-IN announced as bulk again, for now: the reply to the last
	 * command was not ready when the command completed (see
	 * bridge_fence_fill()). */
	bool in_bulk;
	/* The completion of the command's last bulk-OUT packet, held back
	 * until its reply is ready or BRIDGE_FENCE_MAX_US passed. */
	bool fence_held;
	bool in_fence;           /* pumping inside that fence */
	uint64_t fence_id;
	struct usb_redir_bulk_packet_header fence_reply;
	gint64 fence_deadline;   /* g_get_monotonic_time() */
	/* start_interrupt_receiving came, and no piece that ends a message
	 * went since: the guest's read is posted and stays until we end it,
	 * so QEMU cannot stop the endpoint under a reply pushed now. */
	bool read_posted;
	/* The last command came as interrupt-OUT (interrupt-both): QEMU
	 * completed it before we saw it, there is no fence, and its replies
	 * are pushed whenever they are ready (docs/serve.md). */
	bool cmd_unfenced;
	unsigned maxp;           /* bulk wMaxPacketSize */
	/* The message being pushed on the interrupt path.  It stays here,
	 * rewound on every stop, until the guest's next command shows it
	 * was read: QEMU gives no other sign that the guest consumed it. */
	size_t held_len;         /* bytes pulled from the device */
	size_t held_sent;        /* bytes pushed to the peer */
	bool held_done;          /* ended by a short or zero-length piece */
	bool held_term_sent;     /* that ending piece was pushed */

	struct bridge_pending_in pending[BRIDGE_PENDING_IN_MAX];
	unsigned pending_head, pending_count;
	uint8_t *in_buf;
	size_t in_buf_len;

	struct ccid_bridge_stats stats;
};

G_DEFINE_QUARK(ccid-bridge-error-quark, ccid_bridge_error)

static void bridge_log(ccid_bridge *b, enum ccid_log_level level,
		       const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void bridge_log(ccid_bridge *b, enum ccid_log_level level,
		       const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	if (!b->cbs.log)
		return;
	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	b->cbs.log(b->user, level, msg);
}

static void bridge_event(ccid_bridge *b, enum ccid_bridge_event ev)
{
	if (b->cbs.event)
		b->cbs.event(b->user, ev, b->peer);
}

/* ---- transport ops for the device model ------------------------------ */

static gboolean bridge_pump_cb(gpointer data);

static void bridge_schedule_pump(ccid_bridge *b)
{
	/* Deferred rather than inline: the device calls us from deep inside
	 * its own state changes, and the pump pulls from it.  The source
	 * lives as long as the bridge; arming it costs no allocation. */
	if (b->parser)
		g_source_set_ready_time(b->pump_source, 0);
}

static void bridge_tops_ready(void *user)
{
	bridge_schedule_pump(user);
}

static uint64_t bridge_tops_now(void *user)
{
	return (uint64_t)(g_get_monotonic_time() / 1000);
}

static gboolean bridge_timer_cb(gpointer data)
{
	ccid_bridge *b = data;

	b->timer_id = 0;
	ccid_dev_timer_expired(b->dev);
	return G_SOURCE_REMOVE;
}

static void bridge_tops_timer(void *user, int64_t deadline)
{
	ccid_bridge *b = user;
	int64_t delay;
	GSource *src;

	if (b->timer_id) {
		GSource *old = g_main_context_find_source_by_id(b->ctx, b->timer_id);

		if (old)
			g_source_destroy(old);
		b->timer_id = 0;
	}
	if (deadline < 0)
		return;
	delay = deadline - (int64_t)bridge_tops_now(b);
	src = g_timeout_source_new((guint)CLAMP(delay, 0, G_MAXINT));
	g_source_set_callback(src, bridge_timer_cb, b, NULL);
	b->timer_id = g_source_attach(src, b->ctx);
	g_source_unref(src);
}

static void bridge_tops_log(void *user, enum ccid_log_level level,
			    const char *msg)
{
	ccid_bridge *b = user;

	if (b->cbs.log)
		b->cbs.log(b->user, level, msg);
}

static const struct ccid_transport_ops bridge_tops = {
	.bulk_in_ready = bridge_tops_ready,
	.intr_in_ready = bridge_tops_ready,
	.now_ms = bridge_tops_now,
	.timer_update = bridge_tops_timer,
	.log = bridge_tops_log,
};

/* ---- socket I/O ------------------------------------------------------- */

static int bridge_read(void *priv, uint8_t *data, int count)
{
	ccid_bridge *b = priv;
	ssize_t n;

	do
		n = read(b->fd, data, (size_t)count);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return (int)n;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	/* A peer that leaves before the device was shown is a probe (another
	 * agent checking whether the socket is in use), not a QEMU. */
	if (n == 0 || !b->shown)
		bridge_log(b, b->shown ? CCID_LOG_INFO : CCID_LOG_DEBUG,
			   "usbredir peer %s closed the connection%s%s", b->peer,
			   n < 0 ? ": " : "", n < 0 ? g_strerror(errno) : "");
	else
		bridge_log(b, CCID_LOG_WARNING, "usbredir read from %s: %s",
			   b->peer, g_strerror(errno));
	b->dead = true;
	return -1;
}

static int bridge_write(void *priv, uint8_t *data, int count)
{
	ccid_bridge *b = priv;
	ssize_t n;

	do
		n = send(b->fd, data, (size_t)count, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	bridge_log(b, CCID_LOG_WARNING, "usbredir write to %s: %s", b->peer,
		   g_strerror(errno));
	b->dead = true;
	return -1;
}

static void bridge_parser_log(void *priv, int level, const char *msg)
{
	ccid_bridge *b = priv;
	enum ccid_log_level l;

	/* Packet dumps carry the guest's APDUs, PINs included: never logged,
	 * at any level. */
	if (level >= usbredirparser_debug_data)
		return;
	switch (level) {
	case usbredirparser_error:   l = CCID_LOG_ERR; break;
	case usbredirparser_warning: l = CCID_LOG_WARNING; break;
	case usbredirparser_info:    l = CCID_LOG_INFO; break;
	default:                     l = CCID_LOG_DEBUG; break;
	}
	bridge_log(b, l, "usbredirparser: %s", msg);
}

/* ---- what we tell the peer about the device ----------------------------- */

static void bridge_send_interface_info(ccid_bridge *b)
{
	struct usb_redir_interface_info_header info;

	memset(&info, 0, sizeof(info));
	info.interface_count = 1;
	info.interface[0] = 0;
	info.interface_class[0] = CCID_INTERFACE_CLASS;
	info.interface_subclass[0] = 0;
	info.interface_protocol[0] = 0;
	usbredirparser_send_interface_info(b->parser, &info);
}

/* usbredir endpoint index: OUT endpoints 0..15, IN endpoints 16..31. */
static unsigned bridge_ep_index(uint8_t ep)
{
	return ((ep & 0x80u) >> 3) | (ep & 0x0Fu);
}

static void bridge_send_ep_info(ccid_bridge *b)
{
	struct usb_redir_ep_info_header info;
	size_t len;
	const uint8_t *cfg = ccid_dev_config_descriptor(b->dev, &len);

	memset(&info, 0, sizeof(info));
	memset(info.type, usb_redir_type_invalid, sizeof(info.type));
	info.type[0] = info.type[16] = usb_redir_type_control;
	info.max_packet_size[0] = info.max_packet_size[16] = 64;
	/* Walk the generated configuration descriptor so this can never
	 * disagree with what the guest reads. */
	for (size_t off = 0; off + 2 <= len && cfg[off] >= 2; off += cfg[off]) {
		unsigned i;

		if (cfg[off + 1] != USB_DT_ENDPOINT || off + USB_DT_ENDPOINT_LEN > len)
			continue;
		i = bridge_ep_index(cfg[off + 2]);
		info.type[i] = (cfg[off + 3] & 0x03) == USB_EP_XFER_INT ?
			       usb_redir_type_interrupt : usb_redir_type_bulk;
		info.interval[i] = cfg[off + 6];
		info.interface[i] = 0;
		info.max_packet_size[i] = ccid_le16_load(cfg + off + 4);
		/* Only QEMU sees this; the guest keeps reading bulk
		 * descriptors.  QEMU rejects an interrupt endpoint with
		 * interval 0 (bulk descriptors carry 0).  Bulk-OUT only
		 * when intr_out says so: QEMU's interrupt-OUT length is 16
		 * bits and xHCI hands it a whole transfer, so a command over
		 * 65535 bytes would vanish (QEMU completes interrupt OUT
		 * before we see it, and its parser refuses the packet). */
		if (b->intr_path && info.type[i] == usb_redir_type_bulk &&
		    ((cfg[off + 2] & 0x80) ? !b->in_bulk : b->intr_out)) {
			info.type[i] = usb_redir_type_interrupt;
			info.interval[i] = 1;
		}
	}
	usbredirparser_send_ep_info(b->parser, &info);
}

static void bridge_send_device_connect(ccid_bridge *b)
{
	struct usb_redir_device_connect_header conn;
	size_t len;
	const uint8_t *d = ccid_dev_device_descriptor(b->dev, &len);

	memset(&conn, 0, sizeof(conn));
	conn.speed = usb_redir_speed_full;
	conn.device_class = d[4];
	conn.device_subclass = d[5];
	conn.device_protocol = d[6];
	conn.vendor_id = ccid_le16_load(d + 8);
	conn.product_id = ccid_le16_load(d + 10);
	conn.device_version_bcd = ccid_le16_load(d + 12);
	bridge_send_interface_info(b);
	bridge_send_ep_info(b);
	usbredirparser_send_device_connect(b->parser, &conn);
	b->shown = true;
	bridge_log(b, CCID_LOG_INFO, "device %04x:%04x offered to %s",
		   conn.vendor_id, conn.product_id, b->peer);
}

/* ---- data pumps ---------------------------------------------------------- */

static void bridge_held_clear(ccid_bridge *b)
{
	b->held_len = b->held_sent = 0;
	b->held_done = b->held_term_sent = false;
}

/* QEMU freed whatever it still buffered: push the held message again from
 * its first byte when the guest next polls. */
static void bridge_held_rewind(ccid_bridge *b)
{
	if (b->held_sent || b->held_term_sent)
		b->stats.resent++;
	b->held_sent = 0;
	b->held_term_sent = false;
}

/* The guest sends a command only after reading or abandoning the reply to
 * the previous one: the held message is no longer needed, unless part of
 * it is already out and the rest must follow to keep the stream framed. */
static void bridge_held_commit(ccid_bridge *b)
{
	if (b->held_done && (b->held_sent == 0 || b->held_term_sent))
		bridge_held_clear(b);
}

/* A bulk-OUT packet larger than wMaxPacketSize: the controller hands QEMU
 * whole transfers (xHCI; UHCI and EHCI's companions send one TD of at most
 * wMaxPacketSize each).  There bulk transfers complete as soon as our
 * answer arrives, and the interrupt path only splits large replies into
 * 64-byte completions, so bulk-IN goes back to bulk.  Safe at this point:
 * the guest has read the last reply (it sent a command), QEMU never queues
 * interrupt-IN packets, and this ep_info reaches QEMU before our answer to
 * this OUT, so the guest's next read is already a bulk one. */
static void bridge_whole_transfer_seen(ccid_bridge *b, uint32_t len)
{
	if (!b->intr_path || b->intr_out || len <= b->maxp || b->held_len ||
	    b->held_done)
		return;
	bridge_log(b, CCID_LOG_INFO,
		   "%u-byte bulk-OUT packet from %s: its controller passes whole "
		   "transfers; bulk-IN back on the bulk path", len, b->peer);
	b->intr_path = false;
	b->in_bulk = false;
	b->stats.interrupt_path = FALSE;
	b->stats.in_to_bulk++;
	b->data_started = false;
	bridge_send_ep_info(b);
}

/* Bulk-IN announced as bulk (@bulk) or back as interrupt.  QEMU reads our
 * ep_info in stream order, so it takes effect before anything we send
 * after it, and for the guest's next read. */
static void bridge_set_in_bulk(ccid_bridge *b, bool bulk)
{
	b->in_bulk = bulk;
	if (bulk)
		b->stats.in_flips++;
	bridge_send_ep_info(b);
}

/*
 * The fence.  The guest posts the read for a reply only after QEMU
 * completes the command, and QEMU reads our stream in order: every piece
 * pushed before the completion is in QEMU before the guest can read.  A
 * stop of the endpoint (UHCI: 32 idle frames) then frees whole pieces we
 * know about, never the middle of a reply still on its way.  So the
 * completion of a command's last bulk-OUT packet waits (up to
 * BRIDGE_FENCE_MAX_US) for its reply, as for one the card computes on
 * another thread.
 *
 * A reply that comes later still (a long operation: time extensions, then
 * the answer) has no fence: pushed while the guest is between reads, a
 * stop and start could fall in the middle of it, QEMU would keep the tail
 * arriving after the start, and nothing in usbredir tells us which pieces
 * it kept.  Such replies go on the bulk path: bulk-IN is announced as bulk
 * again (QEMU then asks for each read, with an id, and gets exactly the
 * bytes of one message) until a command whose reply is ready in its fence.
 * The previous reply is read by then (the guest sent a command); at most a
 * time extension of ours can still sit in QEMU, which a driver skips
 * (libccid: an older bSeq is a duplicate, and a time extension means
 * "read again").
 */
static void bridge_pump_data(ccid_bridge *b);

/* Nothing of ours is half-pushed: bulk-IN may change path now. */
static bool bridge_held_idle(const ccid_bridge *b)
{
	return b->held_len == 0 || b->held_term_sent;
}

/* Pushes what is ready, inside the fence; says whether the completion may
 * go now. */
static bool bridge_fence_fill(ccid_bridge *b)
{
	if (ccid_dev_bulk_in_ready(b->dev)) {
		if (b->in_bulk && b->pending_count == 0)
			bridge_set_in_bulk(b, false);
		b->in_fence = true;
		bridge_pump_data(b);
		b->in_fence = false;
		/* A time extension went: the answer comes later. */
		if (!b->in_bulk && ccid_dev_reply_pending(b->dev) &&
		    bridge_held_idle(b))
			bridge_set_in_bulk(b, true);
		return true;
	}
	/* Nothing due (part of a command, or an answer-less one), or on the
	 * bulk path already: complete now. */
	return !ccid_dev_reply_pending(b->dev) || b->in_bulk;
}

static void bridge_fence_release(ccid_bridge *b)
{
	b->fence_held = false;
	if (b->parser && !b->dead)
		usbredirparser_send_bulk_packet(b->parser, b->fence_id,
						&b->fence_reply, NULL, 0);
}

/* The reply came, or the wait is over (@now: end it whatever is ready:
 * another packet came, or the peer cancelled the command). */
static void bridge_fence_check(ccid_bridge *b, bool now)
{
	if (!b->fence_held)
		return;
	if (!bridge_fence_fill(b)) {
		if (!now && g_get_monotonic_time() < b->fence_deadline) {
			g_source_set_ready_time(b->pump_source, b->fence_deadline);
			return;
		}
		if (!now)
			b->stats.fence_timeouts++;
		if (bridge_held_idle(b))
			bridge_set_in_bulk(b, true);
	}
	bridge_fence_release(b);
}

static void bridge_send_data_piece(ccid_bridge *b, const uint8_t *data,
				   size_t n)
{
	struct usb_redir_interrupt_packet_header hdr = {
		.endpoint = CCID_EP_BULK_IN,
		.status = usb_redir_success,
		.length = (uint16_t)n,
	};

	usbredirparser_send_interrupt_packet(b->parser, b->intr_id++, &hdr,
					     (uint8_t *)data, (int)n);
	b->stats.data_pieces++;
}

/* Interrupt data path: pull the device's next message into the held buffer
 * piece by piece (the pull already ends it with a short or zero-length
 * piece), and push pieces while QEMU is receiving. */
static void bridge_pump_intr_data(ccid_bridge *b)
{
	for (;;) {
		size_t left;

		/* A new message outside a fence, while the guest may be
		 * between reads: the bulk path (see bridge_fence_fill()).
		 * interrupt-both has no fence at all and keeps pushing. */
		if ((b->held_len == 0 || (b->held_term_sent && b->held_done)) &&
		    b->data_started && !b->in_fence && !b->read_posted &&
		    !b->cmd_unfenced && ccid_dev_bulk_in_ready(b->dev)) {
			bridge_held_clear(b);
			bridge_set_in_bulk(b, true);
			return;
		}

		if (b->held_term_sent && b->held_done) {
			/* Fully pushed: a newer message supersedes it (the
			 * answer after a time extension, or a reply to a
			 * command sent after the guest abandoned this one). */
			uint8_t first[64];
			int n = ccid_dev_bulk_in_pull(b->dev, first,
						      MIN(sizeof(first), b->maxp));

			if (n == CCID_PULL_NONE)
				break;
			bridge_held_clear(b);
			memcpy(b->in_buf, first, (size_t)n);
			b->held_len = (size_t)n;
			b->held_done = (unsigned)n < b->maxp;
		}
		while (!b->held_done) {
			size_t room = b->in_buf_len - b->held_len;
			int n;

			if (room == 0) {
				/* The device never makes a message larger than
				 * its dwMaxCCIDMessageLength; be safe anyway. */
				bridge_log(b, CCID_LOG_WARNING,
					   "bulk-IN message larger than %zu bytes "
					   "cut short", b->in_buf_len);
				b->held_done = true;
				break;
			}
			n = ccid_dev_bulk_in_pull(b->dev, b->in_buf + b->held_len,
						  MIN((size_t)b->maxp, room));
			if (n == CCID_PULL_NONE)
				break;
			b->held_len += (size_t)n;
			if ((unsigned)n < b->maxp)
				b->held_done = true;
		}
		if (!b->data_started || b->held_term_sent)
			break;
		left = b->held_len - b->held_sent;
		if (left >= b->maxp) {
			bridge_send_data_piece(b, b->in_buf + b->held_sent, b->maxp);
			b->held_sent += b->maxp;
		} else if (b->held_done) {
			bridge_send_data_piece(b, b->in_buf + b->held_sent, left);
			b->held_sent += left;
			b->held_term_sent = true;
			b->read_posted = false;
		} else {
			break;
		}
	}
}

static void bridge_send_notify(ccid_bridge *b, const uint8_t *buf, int n)
{
	struct usb_redir_interrupt_packet_header hdr = {
		.endpoint = CCID_EP_INTR_IN,
		.status = usb_redir_success,
		.length = (uint16_t)n,
	};

	usbredirparser_send_interrupt_packet(b->parser, b->intr_id++, &hdr,
					     (uint8_t *)buf, n);
	b->stats.intr_in++;
}

/* Replies: pushed on the interrupt path, or into bulk-IN requests. */
static void bridge_pump_data(ccid_bridge *b)
{
	if (b->intr_path && !b->in_bulk)
		bridge_pump_intr_data(b);
	while (b->pending_count && (!b->intr_path || b->in_bulk)) {
		struct bridge_pending_in *p = &b->pending[b->pending_head];
		struct usb_redir_bulk_packet_header hdr;
		size_t cap = MIN((size_t)p->len, b->in_buf_len);
		int n;

		if (cap == 0) {
			n = 0;
		} else {
			n = ccid_dev_bulk_in_pull(b->dev, b->in_buf, cap);
			if (n == CCID_PULL_NONE)
				break;
		}
		memset(&hdr, 0, sizeof(hdr));
		hdr.endpoint = CCID_EP_BULK_IN;
		hdr.status = usb_redir_success;
		hdr.length = (uint16_t)n;
		hdr.length_high = (uint16_t)((unsigned)n >> 16);
		usbredirparser_send_bulk_packet(b->parser, p->id, &hdr, b->in_buf, n);
		b->pending_head = (b->pending_head + 1) % BRIDGE_PENDING_IN_MAX;
		b->pending_count--;
		b->stats.bulk_in++;
	}
}

static void bridge_pump(ccid_bridge *b)
{
	if (!b->parser || b->dead)
		return;
	bridge_fence_check(b, false);
	if (!b->fence_held)
		bridge_pump_data(b);
	while (b->intr_started) {
		uint8_t buf[CCID_INTR_MAX_PACKET];
		int n = ccid_dev_intr_in_pull(b->dev, buf, sizeof(buf));

		if (n == CCID_PULL_NONE)
			break;
		bridge_send_notify(b, buf, n);
		memcpy(b->notify_last, buf, (size_t)n);
		b->notify_last_len = n;
		b->notify_unsure = true;
	}
}

static void bridge_cancel_all_in(ccid_bridge *b, uint8_t status)
{
	while (b->pending_count) {
		struct bridge_pending_in *p = &b->pending[b->pending_head];
		struct usb_redir_bulk_packet_header hdr;

		memset(&hdr, 0, sizeof(hdr));
		hdr.endpoint = CCID_EP_BULK_IN;
		hdr.status = status;
		if (b->parser && !b->dead)
			usbredirparser_send_bulk_packet(b->parser, p->id, &hdr,
							NULL, 0);
		b->pending_head = (b->pending_head + 1) % BRIDGE_PENDING_IN_MAX;
		b->pending_count--;
	}
	b->pending_head = 0;
}

/* ---- usb-host role callbacks --------------------------------------------- */

/* Whether this session can announce the bulk endpoints as interrupt
 * endpoints; says why not in @why. */
static bool bridge_intr_path_fits(ccid_bridge *b,
				  const struct usb_redir_hello_header *h,
				  const char **why)
{
	size_t pieces = b->in_buf_len / b->maxp + 2;

	*why = NULL;
	if (b->want_path == CCID_BRIDGE_PATH_BULK)
		*why = "bulk path requested";
	else if (b->intr_path_rejected)
		*why = "the peer rejected the interrupt path";
	else if (b->want_path == CCID_BRIDGE_PATH_AUTO &&
		 strncmp(h->version, BRIDGE_QEMU_VERSION_PREFIX,
			 strlen(BRIDGE_QEMU_VERSION_PREFIX)) != 0)
		*why = "the peer is not QEMU's usb-redir";
	else if (pieces + 2 > 2 * BRIDGE_QEMU_INTR_TARGET)
		/* a largest reply plus a time extension must stay below the
		 * point where QEMU starts dropping */
		*why = "a largest message needs more interrupt packets than QEMU buffers";
	return *why == NULL;
}

static void bridge_hello(void *priv, struct usb_redir_hello_header *h)
{
	ccid_bridge *b = priv;
	const char *why;

	/* The parser NUL-terminates the version it hands us. */
	bridge_log(b, CCID_LOG_INFO, "usbredir peer %s says hello: %.*s", b->peer,
		   (int)sizeof(h->version), h->version);
	b->intr_path = bridge_intr_path_fits(b, h, &why);
	b->intr_out = b->intr_path &&
		      b->want_path == CCID_BRIDGE_PATH_INTERRUPT_BOTH;
	if (b->intr_out && !b->out_fits_intr)
		bridge_log(b, CCID_LOG_WARNING,
			   "interrupt-both with a dwMaxCCIDMessageLength over %u: "
			   "behind xHCI a first command over 65535 bytes would "
			   "be lost", CCID_BRIDGE_INTR_OUT_MAX_MSG);
	b->intr_out_offered = b->intr_out;
	b->stats.interrupt_path = b->intr_path;
	b->stats.interrupt_out = b->intr_out;
	bridge_log(b, CCID_LOG_INFO, "%s data path for %s%s%s",
		   b->intr_path ? "interrupt" : "bulk", b->peer,
		   why ? ": " : "", why ? why : "");
	if (!usbredirparser_peer_has_cap(b->parser, usb_redir_cap_64bits_ids) ||
	    !usbredirparser_peer_has_cap(b->parser, usb_redir_cap_32bits_bulk_length))
		bridge_log(b, CCID_LOG_WARNING,
			   "peer %s lacks 64-bit ids or 32-bit bulk lengths; "
			   "extended APDUs larger than 64 KiB-1 per packet will fail",
			   b->peer);
	bridge_send_device_connect(b);
	bridge_event(b, CCID_BRIDGE_EVENT_DEVICE_SHOWN);
}

static void bridge_reset(void *priv)
{
	ccid_bridge *b = priv;

	bridge_log(b, CCID_LOG_DEBUG, "USB reset from %s", b->peer);
	bridge_cancel_all_in(b, usb_redir_cancelled);
	b->intr_started = false;
	b->data_started = false;
	b->notify_unsure = false;
	/* A held completion goes now; QEMU ignores it if it cancelled. */
	if (b->fence_held)
		bridge_fence_release(b);
	/* Back to the session's own path; the ep_info before the next
	 * configuration status says so. */
	b->in_bulk = false;
	b->read_posted = false;
	/* The reset drops the device's pending replies; so goes ours. */
	bridge_held_clear(b);
	ccid_dev_reset(b->dev);
}

static int bridge_std_request(ccid_bridge *b, uint8_t type, uint8_t request,
			      uint16_t value, uint16_t index)
{
	uint8_t setup[8] = { type, request };

	ccid_le16_store(setup + 2, value);
	ccid_le16_store(setup + 4, index);

	return ccid_dev_control(b->dev, setup, NULL, 0);
}

static void bridge_set_configuration(void *priv, uint64_t id,
				     struct usb_redir_set_configuration_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_configuration_status_header st;
	int rc = bridge_std_request(b, 0x00, USB_REQ_SET_CONFIGURATION,
				    h->configuration, 0);

	if (rc >= 0) {
		bridge_cancel_all_in(b, usb_redir_cancelled);
		/* QEMU stopped every endpoint before asking (usbredir_set_config) */
		if (b->fence_held)
			bridge_fence_release(b);
		bridge_held_clear(b);
		b->data_started = b->intr_started = false;
		b->in_bulk = b->read_posted = false;
	}
	bridge_send_interface_info(b);
	bridge_send_ep_info(b);
	st.status = rc < 0 ? usb_redir_stall : usb_redir_success;
	st.configuration = ccid_dev_is_configured(b->dev) ? 1 : 0;
	usbredirparser_send_configuration_status(b->parser, id, &st);
	bridge_schedule_pump(b);
}

static void bridge_get_configuration(void *priv, uint64_t id)
{
	ccid_bridge *b = priv;
	struct usb_redir_configuration_status_header st = {
		.status = usb_redir_success,
		.configuration = ccid_dev_is_configured(b->dev) ? 1 : 0,
	};

	usbredirparser_send_configuration_status(b->parser, id, &st);
}

static void bridge_set_alt_setting(void *priv, uint64_t id,
				   struct usb_redir_set_alt_setting_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_alt_setting_status_header st;
	int rc = bridge_std_request(b, 0x01, USB_REQ_SET_INTERFACE, h->alt,
				    h->interface);

	bridge_send_interface_info(b);
	bridge_send_ep_info(b);
	st.status = rc < 0 ? usb_redir_stall : usb_redir_success;
	st.interface = h->interface;
	st.alt = rc < 0 ? 0xFF : h->alt;
	usbredirparser_send_alt_setting_status(b->parser, id, &st);
}

static void bridge_get_alt_setting(void *priv, uint64_t id,
				   struct usb_redir_get_alt_setting_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_alt_setting_status_header st = {
		.status = h->interface == 0 ? usb_redir_success : usb_redir_inval,
		.interface = h->interface,
		.alt = h->interface == 0 ? 0 : 0xFF,
	};

	usbredirparser_send_alt_setting_status(b->parser, id, &st);
}

/* No isochronous endpoints, streams or buffered bulk receiving: say so
 * with a status the peer handles, never by ignoring the request. */
static void bridge_start_iso_stream(void *priv, uint64_t id,
				    struct usb_redir_start_iso_stream_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_iso_stream_status_header st = {
		.status = usb_redir_stall, .endpoint = h->endpoint,
	};

	usbredirparser_send_iso_stream_status(b->parser, id, &st);
}

static void bridge_stop_iso_stream(void *priv, uint64_t id,
				   struct usb_redir_stop_iso_stream_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_iso_stream_status_header st = {
		.status = usb_redir_stall, .endpoint = h->endpoint,
	};

	usbredirparser_send_iso_stream_status(b->parser, id, &st);
}

static void bridge_start_interrupt_receiving(void *priv, uint64_t id,
	struct usb_redir_start_interrupt_receiving_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_interrupt_receiving_status_header st = {
		.status = usb_redir_success, .endpoint = h->endpoint,
	};

	if (h->endpoint == CCID_EP_INTR_IN) {
		b->intr_started = true;
		/* QEMU may have freed the last notification unread. */
		if (b->notify_unsure && b->notify_last_len > 0)
			bridge_send_notify(b, b->notify_last, b->notify_last_len);
		b->notify_unsure = false;
	} else if (h->endpoint == CCID_EP_BULK_IN && b->intr_path) {
		b->data_started = true;
		b->read_posted = true;
	} else {
		st.status = usb_redir_inval;
	}
	usbredirparser_send_interrupt_receiving_status(b->parser, id, &st);
	bridge_schedule_pump(b);
}

static void bridge_stop_interrupt_receiving(void *priv, uint64_t id,
	struct usb_redir_stop_interrupt_receiving_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_interrupt_receiving_status_header st = {
		.status = usb_redir_success, .endpoint = h->endpoint,
	};

	if (h->endpoint == CCID_EP_INTR_IN) {
		b->intr_started = false;
	} else if (h->endpoint == CCID_EP_BULK_IN && b->intr_path) {
		/* QEMU freed what it buffered (usbredir_stop_ep), and drops
		 * what arrives until it starts again: whatever of the held
		 * message the guest did not take goes again from the start
		 * (unless the guest's next command comes first and shows it
		 * was read).  A guest that reads without a command after
		 * reading it all gets a copy with the same bSeq, which
		 * libccid discards as older than expected ("Duplicate frame
		 * detected"); a lost reply would hang the host instead. */
		b->data_started = false;
		b->read_posted = false;
		bridge_held_rewind(b);
	} else {
		st.status = usb_redir_inval;
	}
	usbredirparser_send_interrupt_receiving_status(b->parser, id, &st);
}

static void bridge_alloc_bulk_streams(void *priv, uint64_t id,
	struct usb_redir_alloc_bulk_streams_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_bulk_streams_status_header st = {
		.endpoints = h->endpoints, .no_streams = 0,
		.status = usb_redir_stall,
	};

	usbredirparser_send_bulk_streams_status(b->parser, id, &st);
}

static void bridge_free_bulk_streams(void *priv, uint64_t id,
	struct usb_redir_free_bulk_streams_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_bulk_streams_status_header st = {
		.endpoints = h->endpoints, .no_streams = 0,
		.status = usb_redir_stall,
	};

	usbredirparser_send_bulk_streams_status(b->parser, id, &st);
}

static void bridge_start_bulk_receiving(void *priv, uint64_t id,
	struct usb_redir_start_bulk_receiving_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_bulk_receiving_status_header st = {
		.stream_id = h->stream_id, .endpoint = h->endpoint,
		.status = usb_redir_stall,
	};

	usbredirparser_send_bulk_receiving_status(b->parser, id, &st);
}

static void bridge_stop_bulk_receiving(void *priv, uint64_t id,
	struct usb_redir_stop_bulk_receiving_header *h)
{
	ccid_bridge *b = priv;
	struct usb_redir_bulk_receiving_status_header st = {
		.stream_id = h->stream_id, .endpoint = h->endpoint,
		.status = usb_redir_success,
	};

	usbredirparser_send_bulk_receiving_status(b->parser, id, &st);
}

static void bridge_cancel_data_packet(void *priv, uint64_t id)
{
	ccid_bridge *b = priv;

	if (b->fence_held && b->fence_id == id) {
		b->fence_reply.status = usb_redir_cancelled;
		bridge_fence_check(b, true);
		return;
	}

	for (unsigned k = 0; k < b->pending_count; k++) {
		unsigned i = (b->pending_head + k) % BRIDGE_PENDING_IN_MAX;
		struct usb_redir_bulk_packet_header hdr;

		if (b->pending[i].id != id)
			continue;
		memset(&hdr, 0, sizeof(hdr));
		hdr.endpoint = CCID_EP_BULK_IN;
		hdr.status = usb_redir_cancelled;
		usbredirparser_send_bulk_packet(b->parser, id, &hdr, NULL, 0);
		/* Close the gap, keeping the order of the others. */
		for (unsigned m = k; m + 1 < b->pending_count; m++) {
			unsigned dst = (b->pending_head + m) % BRIDGE_PENDING_IN_MAX;
			unsigned src = (b->pending_head + m + 1) % BRIDGE_PENDING_IN_MAX;

			b->pending[dst] = b->pending[src];
		}
		b->pending_count--;
		b->stats.cancelled++;
		return;
	}
	/* Already answered: the peer will match the answer to nothing. */
}

static void bridge_control_packet(void *priv, uint64_t id,
				  struct usb_redir_control_packet_header *h,
				  uint8_t *data, int data_len)
{
	ccid_bridge *b = priv;
	struct usb_redir_control_packet_header reply = *h;
	uint8_t setup[8] = { h->requesttype, h->request };
	uint8_t buf[BRIDGE_CONTROL_BUF];
	bool in = h->requesttype & USB_DIR_IN;
	int rc;

	ccid_le16_store(setup + 2, h->value);
	ccid_le16_store(setup + 4, h->index);
	ccid_le16_store(setup + 6, h->length);
	b->stats.control++;
	if (in) {
		rc = data_len ? CCID_CONTROL_STALL :
		     ccid_dev_control(b->dev, setup, buf, sizeof(buf));
	} else if (data_len != h->length || data_len > (int)sizeof(buf)) {
		rc = CCID_CONTROL_STALL;
	} else {
		if (data_len)
			memcpy(buf, data, (size_t)data_len);
		rc = ccid_dev_control(b->dev, setup, buf, (size_t)data_len);
	}
	if (data)
		usbredirparser_free_packet_data(b->parser, data);
	reply.status = rc < 0 ? usb_redir_stall : usb_redir_success;
	if (in) {
		reply.length = (uint16_t)(rc < 0 ? 0 : rc);
		usbredirparser_send_control_packet(b->parser, id, &reply,
						   rc > 0 ? buf : NULL,
						   rc > 0 ? rc : 0);
	} else {
		usbredirparser_send_control_packet(b->parser, id, &reply, NULL, 0);
	}
	/* SET_CONFIGURATION(0) or CLEAR_FEATURE may have changed what can be
	 * pulled. */
	bridge_schedule_pump(b);
}

static void bridge_bulk_packet(void *priv, uint64_t id,
			       struct usb_redir_bulk_packet_header *h,
			       uint8_t *data, int data_len)
{
	ccid_bridge *b = priv;
	struct usb_redir_bulk_packet_header reply = *h;
	uint32_t len = (uint32_t)h->length | (uint32_t)h->length_high << 16;

	/* QEMU pipelines bulk-OUT: the last packet is no longer last. */
	bridge_fence_check(b, true);
	if (h->endpoint == CCID_EP_BULK_OUT && (uint32_t)data_len == len) {
		b->stats.bulk_out++;
		b->cmd_unfenced = false;
		bridge_held_commit(b);
		bridge_whole_transfer_seen(b, len);
		ccid_dev_bulk_out(b->dev, data, (size_t)data_len);
		reply.status = usb_redir_success;
		if (b->intr_path && !bridge_fence_fill(b)) {
			b->fence_held = true;
			b->fence_id = id;
			b->fence_reply = reply;
			b->fence_deadline = g_get_monotonic_time() +
					    BRIDGE_FENCE_MAX_US;
			g_source_set_ready_time(b->pump_source, b->fence_deadline);
			if (data)
				usbredirparser_free_packet_data(b->parser, data);
			return;
		}
	} else if (h->endpoint == CCID_EP_BULK_IN && data_len == 0 &&
		   (!b->intr_path || b->in_bulk) &&
		   b->pending_count < BRIDGE_PENDING_IN_MAX) {
		/* (On the interrupt path replies are pushed: a bulk-IN
		 * request is the peer's mistake and is refused below,
		 * except while bulk-IN is announced as bulk again.) */
		unsigned i = (b->pending_head + b->pending_count) % BRIDGE_PENDING_IN_MAX;

		b->pending[i].id = id;
		b->pending[i].len = len;
		b->pending_count++;
		if (data)
			usbredirparser_free_packet_data(b->parser, data);
		bridge_schedule_pump(b);
		return;
	} else {
		bridge_log(b, CCID_LOG_WARNING,
			   "bulk packet for ep %02x with %d of %u bytes refused",
			   h->endpoint, data_len, len);
		reply.status = h->endpoint == CCID_EP_BULK_OUT ||
			       h->endpoint == CCID_EP_BULK_IN ?
			       usb_redir_inval : usb_redir_stall;
		/* An IN answer's length is the data it carries: with the
		 * length asked for and no data, usbredirparser would refuse
		 * to send it, and the request would stay open for ever. */
		if (h->endpoint & 0x80) {
			reply.length = 0;
			reply.length_high = 0;
		}
	}
	if (data)
		usbredirparser_free_packet_data(b->parser, data);
	/* An OUT completion reports how much was taken; no data goes back. */
	usbredirparser_send_bulk_packet(b->parser, id, &reply, NULL, 0);
}

static void bridge_iso_packet(void *priv, uint64_t id,
			      struct usb_redir_iso_packet_header *h,
			      uint8_t *data, int data_len)
{
	ccid_bridge *b = priv;
	struct usb_redir_iso_packet_header reply = *h;

	if (data)
		usbredirparser_free_packet_data(b->parser, data);
	reply.status = usb_redir_stall;
	reply.length = 0;
	usbredirparser_send_iso_packet(b->parser, id, &reply, NULL, 0);
}

static void bridge_interrupt_packet(void *priv, uint64_t id,
				    struct usb_redir_interrupt_packet_header *h,
				    uint8_t *data, int data_len)
{
	ccid_bridge *b = priv;
	struct usb_redir_interrupt_packet_header reply = *h;

	/* On the interrupt path the bulk-OUT endpoint's transfers come here,
	 * one guest TD each; QEMU has already completed them to the guest
	 * and only logs our status. */
	if (b->intr_out_offered && h->endpoint == CCID_EP_BULK_OUT &&
	    data_len == (int)h->length) {
		b->stats.intr_out++;
		b->cmd_unfenced = true;
		bridge_held_commit(b);
		ccid_dev_bulk_out(b->dev, data, (size_t)data_len);
		reply.status = usb_redir_success;
		bridge_schedule_pump(b);
		if (b->intr_out && (unsigned)data_len > b->maxp) {
			/* UHCI (and EHCI's companions) hand QEMU one TD of at
			 * most wMaxPacketSize; a larger packet means a
			 * controller that hands it whole transfers (xHCI),
			 * where a command over 65535 bytes would not fit the
			 * 16-bit length.  Bulk-OUT goes back to bulk: safe
			 * now, as QEMU completed every interrupt OUT at once
			 * and has none queued. */
			bridge_log(b, CCID_LOG_INFO,
				   "%d-byte interrupt-OUT packet from %s: its "
				   "controller passes whole transfers; bulk-OUT "
				   "back on the bulk path", data_len, b->peer);
			b->intr_out = false;
			b->stats.interrupt_out = FALSE;
			b->stats.out_to_bulk++;
			bridge_send_ep_info(b);
		}
	} else {
		/* The notification endpoint is IN; its data flows by
		 * start_interrupt_receiving. */
		reply.status = usb_redir_stall;
	}
	if (data)
		usbredirparser_free_packet_data(b->parser, data);
	usbredirparser_send_interrupt_packet(b->parser, id, &reply, NULL, 0);
}

static void bridge_buffered_bulk_packet(void *priv, uint64_t id,
	struct usb_redir_buffered_bulk_packet_header *h, uint8_t *data,
	int data_len)
{
	ccid_bridge *b = priv;

	/* Only a usb-host sends these. */
	if (data)
		usbredirparser_free_packet_data(b->parser, data);
}

static void bridge_filter_reject(void *priv)
{
	ccid_bridge *b = priv;

	if (b->intr_path && b->shown) {
		/* A QEMU that does not take our interrupt endpoints: offer
		 * the same device again, bulk all the way (QEMU accepts a new
		 * device_connect once it has detached the rejected one). */
		bridge_log(b, CCID_LOG_WARNING,
			   "peer %s rejected the interrupt data path; offering "
			   "the device again on the bulk path", b->peer);
		b->intr_path = b->intr_out = b->intr_out_offered = false;
		if (b->fence_held)
			bridge_fence_release(b);
		b->in_bulk = b->read_posted = false;
		b->intr_path_rejected = true;
		b->stats.interrupt_path = b->stats.interrupt_out = FALSE;
		b->stats.fallbacks++;
		bridge_held_clear(b);
		b->data_started = false;
		bridge_send_device_connect(b);
		return;
	}
	bridge_log(b, CCID_LOG_WARNING,
		   "peer %s rejected the device by its usbredir filter", b->peer);
	b->shown = false;
}

static void bridge_filter_filter(void *priv, struct usbredirfilter_rule *rules,
				 int rules_count)
{
	ccid_bridge *b = priv;
	size_t len;
	const uint8_t *d = ccid_dev_device_descriptor(b->dev, &len);
	uint8_t cls = CCID_INTERFACE_CLASS, sub = 0, proto = 0;

	if (usbredirfilter_check(rules, rules_count, d[4], d[5], d[6], &cls, &sub,
				 &proto, 1, ccid_le16_load(d + 8),
				 ccid_le16_load(d + 10),
				 ccid_le16_load(d + 12), 0) != 0)
		bridge_log(b, CCID_LOG_WARNING,
			   "peer %s's usb-redir filter does not accept this "
			   "reader; it will reject it", b->peer);
	free(rules);
}

static void bridge_device_disconnect_ack(void *priv)
{
	ccid_bridge *b = priv;

	bridge_log(b, CCID_LOG_DEBUG, "peer %s acknowledged the disconnect",
		   b->peer);
}

/* usb-guest role callbacks: a peer that sends these is not a usb-guest;
 * log and ignore. */
static void bridge_unexpected(ccid_bridge *b, const char *what)
{
	bridge_log(b, CCID_LOG_WARNING, "peer %s sent %s, which only a usb-host "
		   "sends; ignored", b->peer, what);
}

static void bridge_g_device_connect(void *priv,
				    struct usb_redir_device_connect_header *h)
{
	bridge_unexpected(priv, "device_connect");
}

static void bridge_g_device_disconnect(void *priv)
{
	bridge_unexpected(priv, "device_disconnect");
}

static void bridge_g_interface_info(void *priv,
				    struct usb_redir_interface_info_header *h)
{
	bridge_unexpected(priv, "interface_info");
}

static void bridge_g_ep_info(void *priv, struct usb_redir_ep_info_header *h)
{
	bridge_unexpected(priv, "ep_info");
}

static void bridge_g_configuration_status(void *priv, uint64_t id,
	struct usb_redir_configuration_status_header *h)
{
	bridge_unexpected(priv, "configuration_status");
}

static void bridge_g_alt_setting_status(void *priv, uint64_t id,
	struct usb_redir_alt_setting_status_header *h)
{
	bridge_unexpected(priv, "alt_setting_status");
}

static void bridge_g_iso_stream_status(void *priv, uint64_t id,
	struct usb_redir_iso_stream_status_header *h)
{
	bridge_unexpected(priv, "iso_stream_status");
}

static void bridge_g_interrupt_receiving_status(void *priv, uint64_t id,
	struct usb_redir_interrupt_receiving_status_header *h)
{
	bridge_unexpected(priv, "interrupt_receiving_status");
}

static void bridge_g_bulk_streams_status(void *priv, uint64_t id,
	struct usb_redir_bulk_streams_status_header *h)
{
	bridge_unexpected(priv, "bulk_streams_status");
}

static void bridge_g_bulk_receiving_status(void *priv, uint64_t id,
	struct usb_redir_bulk_receiving_status_header *h)
{
	bridge_unexpected(priv, "bulk_receiving_status");
}

/* ---- session lifetime ---------------------------------------------------- */

static gboolean bridge_io_cb(gint fd, GIOCondition cond, gpointer data);

/* A socket source whose condition changes in place: toggling G_IO_OUT
 * after every APDU must not cost a new GSource. */
struct bridge_io_source {
	GSource base;
	ccid_bridge *bridge;
};

static gboolean bridge_io_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
	struct bridge_io_source *io = (struct bridge_io_source *)src;
	ccid_bridge *b = io->bridge;

	return bridge_io_cb(b->fd, g_source_query_unix_fd(src, b->io_tag), b);
}

static GSourceFuncs bridge_io_funcs = {
	.dispatch = bridge_io_dispatch,
};

static void bridge_update_io(ccid_bridge *b)
{
	GIOCondition want = 0;

	if (!b->parser)
		return;
	if (usbredirparser_get_bufferered_output_size(b->parser) <
	    BRIDGE_OUTPUT_HIGH_WATER)
		want |= G_IO_IN;
	if (usbredirparser_has_data_to_write(b->parser))
		want |= G_IO_OUT;
	if (!b->io_source) {
		b->io_source = g_source_new(&bridge_io_funcs,
					    sizeof(struct bridge_io_source));
		((struct bridge_io_source *)b->io_source)->bridge = b;
		b->io_tag = g_source_add_unix_fd(b->io_source, b->fd,
						 want | G_IO_HUP | G_IO_ERR);
		g_source_attach(b->io_source, b->ctx);
	} else if (want != b->io_cond) {
		g_source_modify_unix_fd(b->io_source, b->io_tag,
					want | G_IO_HUP | G_IO_ERR);
	}
	b->io_cond = want;
}

static void bridge_session_end(ccid_bridge *b)
{
	if (!b->parser)
		return;
	if (b->io_source) {
		g_source_destroy(b->io_source);
		g_source_unref(b->io_source);
		b->io_source = NULL;
	}
	g_source_set_ready_time(b->pump_source, -1);
	b->pending_count = 0;
	b->pending_head = 0;
	usbredirparser_destroy(b->parser);
	b->parser = NULL;
	close(b->fd);
	b->fd = -1;
	b->intr_started = false;
	b->data_started = false;
	b->notify_unsure = false;
	b->intr_path = b->intr_out = b->intr_out_offered = false;
	b->in_bulk = b->read_posted = b->fence_held = b->cmd_unfenced = false;
	b->stats.interrupt_path = b->stats.interrupt_out = FALSE;
	bridge_held_clear(b);
	b->shown = false;
	b->dead = false;
	/* The next peer enumerates a fresh device; the cards stay. */
	ccid_dev_reset(b->dev);
	bridge_log(b, CCID_LOG_INFO, "usbredir peer %s detached", b->peer);
	bridge_event(b, CCID_BRIDGE_EVENT_DETACHED);
	g_clear_pointer(&b->peer, g_free);
}

/* Writes what can be written now; ends the session if the peer is gone. */
static void bridge_flush(ccid_bridge *b)
{
	if (!b->parser)
		return;
	if (!b->dead && usbredirparser_has_data_to_write(b->parser))
		usbredirparser_do_write(b->parser);
	if (b->dead) {
		bridge_session_end(b);
		return;
	}
	bridge_update_io(b);
}

static gboolean bridge_pump_dispatch(GSource *src, GSourceFunc cb, gpointer data)
{
	return cb(data);
}

static GSourceFuncs bridge_pump_funcs = {
	.dispatch = bridge_pump_dispatch,
};

static gboolean bridge_pump_cb(gpointer data)
{
	ccid_bridge *b = data;

	g_source_set_ready_time(b->pump_source, -1);
	bridge_pump(b);
	bridge_flush(b);
	return G_SOURCE_CONTINUE;
}

static gboolean bridge_io_cb(gint fd, GIOCondition cond, gpointer data)
{
	ccid_bridge *b = data;

	if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
		int rc = usbredirparser_do_read(b->parser);

		if (rc == usbredirparser_read_parse_error) {
			/* The parser skips the bad packet; a peer that sends
			 * malformed packets is not QEMU, so drop it. */
			bridge_log(b, CCID_LOG_WARNING,
				   "malformed usbredir packet from %s, dropping it",
				   b->peer);
			b->dead = true;
		} else if (rc < 0 && !b->dead) {
			b->dead = true;
		}
	}
	if (!b->dead)
		bridge_pump(b);
	/* bridge_flush may end the session and destroy this source. */
	bridge_flush(b);
	return G_SOURCE_CONTINUE;
}

static void bridge_parser_setup(ccid_bridge *b)
{
	struct usbredirparser *p = b->parser;
	uint32_t caps[USB_REDIR_CAPS_SIZE] = { 0 };

	p->priv = b;
	p->log_func = bridge_parser_log;
	p->read_func = bridge_read;
	p->write_func = bridge_write;
	p->hello_func = bridge_hello;
	p->reset_func = bridge_reset;
	p->set_configuration_func = bridge_set_configuration;
	p->get_configuration_func = bridge_get_configuration;
	p->set_alt_setting_func = bridge_set_alt_setting;
	p->get_alt_setting_func = bridge_get_alt_setting;
	p->start_iso_stream_func = bridge_start_iso_stream;
	p->stop_iso_stream_func = bridge_stop_iso_stream;
	p->start_interrupt_receiving_func = bridge_start_interrupt_receiving;
	p->stop_interrupt_receiving_func = bridge_stop_interrupt_receiving;
	p->alloc_bulk_streams_func = bridge_alloc_bulk_streams;
	p->free_bulk_streams_func = bridge_free_bulk_streams;
	p->start_bulk_receiving_func = bridge_start_bulk_receiving;
	p->stop_bulk_receiving_func = bridge_stop_bulk_receiving;
	p->cancel_data_packet_func = bridge_cancel_data_packet;
	p->control_packet_func = bridge_control_packet;
	p->bulk_packet_func = bridge_bulk_packet;
	p->iso_packet_func = bridge_iso_packet;
	p->interrupt_packet_func = bridge_interrupt_packet;
	p->buffered_bulk_packet_func = bridge_buffered_bulk_packet;
	p->filter_reject_func = bridge_filter_reject;
	p->filter_filter_func = bridge_filter_filter;
	p->device_disconnect_ack_func = bridge_device_disconnect_ack;
	p->device_connect_func = bridge_g_device_connect;
	p->device_disconnect_func = bridge_g_device_disconnect;
	p->interface_info_func = bridge_g_interface_info;
	p->ep_info_func = bridge_g_ep_info;
	p->configuration_status_func = bridge_g_configuration_status;
	p->alt_setting_status_func = bridge_g_alt_setting_status;
	p->iso_stream_status_func = bridge_g_iso_stream_status;
	p->interrupt_receiving_status_func = bridge_g_interrupt_receiving_status;
	p->bulk_streams_status_func = bridge_g_bulk_streams_status;
	p->bulk_receiving_status_func = bridge_g_bulk_receiving_status;

	usbredirparser_caps_set_cap(caps, usb_redir_cap_connect_device_version);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_filter);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_device_disconnect_ack);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_ep_info_max_packet_size);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_64bits_ids);
	usbredirparser_caps_set_cap(caps, usb_redir_cap_32bits_bulk_length);
	usbredirparser_init(p, BRIDGE_VERSION, caps, USB_REDIR_CAPS_SIZE,
			    usbredirparser_fl_usb_host);
}

gboolean ccid_bridge_attach_fd(ccid_bridge *b, int fd, const char *peer,
			       GError **error)
{
	g_autoptr(GError) local = NULL;

	if (b->parser) {
		close(fd);
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_BUSY,
			    "already serving %s; one usbredir peer at a time",
			    b->peer);
		return FALSE;
	}
	if (!g_unix_set_fd_nonblocking(fd, TRUE, &local)) {
		close(fd);
		g_propagate_prefixed_error(error, g_steal_pointer(&local),
					   "cannot make the socket non-blocking: ");
		return FALSE;
	}
	b->parser = usbredirparser_create();
	if (!b->parser) {
		close(fd);
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_SOCKET,
			    "cannot create a usbredir parser");
		return FALSE;
	}
	b->fd = fd;
	b->peer = g_strdup(peer ? peer : "peer");
	b->dead = false;
	b->shown = false;
	b->intr_started = false;
	b->data_started = false;
	b->notify_unsure = false;
	b->intr_path = b->intr_out = b->intr_out_offered = false;
	b->in_bulk = b->read_posted = b->fence_held = b->cmd_unfenced = false;
	b->intr_path_rejected = false;
	bridge_held_clear(b);
	b->pending_head = b->pending_count = 0;
	b->stats.sessions++;
	ccid_dev_reset(b->dev);
	bridge_parser_setup(b);
	bridge_log(b, CCID_LOG_INFO, "usbredir peer %s attached", b->peer);
	bridge_event(b, CCID_BRIDGE_EVENT_ATTACHED);
	bridge_flush(b);
	return TRUE;
}

gboolean ccid_bridge_is_attached(const ccid_bridge *b)
{
	return b->parser != NULL;
}

void ccid_bridge_detach(ccid_bridge *b, unsigned flush_timeout_ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)flush_timeout_ms * 1000;

	if (!b->parser)
		return;
	if (b->shown && !b->dead) {
		bridge_cancel_all_in(b, usb_redir_cancelled);
		usbredirparser_send_device_disconnect(b->parser);
		b->shown = false;
	}
	/* Shutdown path only: a bounded blocking flush so QEMU learns the
	 * device is gone before the socket closes. */
	while (!b->dead && usbredirparser_has_data_to_write(b->parser)) {
		struct pollfd pfd = { .fd = b->fd, .events = POLLOUT };
		gint64 left = (end - g_get_monotonic_time()) / 1000;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, (int)left) <= 0)
			break;
		usbredirparser_do_write(b->parser);
	}
	bridge_session_end(b);
}

ccid_bridge *ccid_bridge_new(const struct ccid_config *cfg,
			     const struct ccid_bridge_callbacks *cbs, void *user,
			     GError **error)
{
	ccid_bridge *b = g_new0(ccid_bridge, 1);
	const char *err = NULL;

	if (cbs)
		b->cbs = *cbs;
	b->user = user;
	b->fd = -1;
	b->ctx = g_main_context_ref_thread_default();
	b->dev = ccid_dev_new(cfg, &bridge_tops, b, &err);
	if (!b->dev) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_CONFIG,
			    "invalid reader configuration: %s", err);
		g_main_context_unref(b->ctx);
		g_free(b);
		return NULL;
	}
	b->pump_source = g_source_new(&bridge_pump_funcs, sizeof(GSource));
	g_source_set_priority(b->pump_source, G_PRIORITY_HIGH);
	g_source_set_callback(b->pump_source, bridge_pump_cb, b, NULL);
	g_source_set_ready_time(b->pump_source, -1);
	g_source_attach(b->pump_source, b->ctx);
	/* Room for the largest message the device can produce. */
	b->in_buf_len = CCID_EMU_DEFAULT_MAX_MSG;
	b->in_buf = g_malloc(b->in_buf_len);
	b->maxp = cfg && cfg->bulk_max_packet ? cfg->bulk_max_packet : 64;
	b->out_fits_intr = (cfg ? cfg->max_message_len :
			    CCID_EMU_DEFAULT_MAX_MSG) <= CCID_BRIDGE_INTR_OUT_MAX_MSG;
	b->want_path = CCID_BRIDGE_PATH_AUTO;
	return b;
}

void ccid_bridge_config_init(struct ccid_config *cfg)
{
	ccid_config_init(cfg);
	cfg->max_message_len = CCID_BRIDGE_INTR_OUT_MAX_MSG;
}

void ccid_bridge_set_data_path(ccid_bridge *b, enum ccid_bridge_data_path path)
{
	b->want_path = path;
}

gboolean ccid_bridge_data_path_parse(const char *text,
				     enum ccid_bridge_data_path *path,
				     GError **error)
{
	static const struct {
		const char *name;
		enum ccid_bridge_data_path path;
	} names[] = {
		{ "auto", CCID_BRIDGE_PATH_AUTO },
		{ "bulk", CCID_BRIDGE_PATH_BULK },
		{ "interrupt", CCID_BRIDGE_PATH_INTERRUPT },
		{ "interrupt-both", CCID_BRIDGE_PATH_INTERRUPT_BOTH },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		if (g_strcmp0(text, names[i].name) == 0) {
			*path = names[i].path;
			return TRUE;
		}
	}
	g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_CONFIG,
		    "unknown data path '%s': use auto, bulk, interrupt or "
		    "interrupt-both",
		    text ? text : "");
	return FALSE;
}

void ccid_bridge_free(ccid_bridge *b)
{
	if (!b)
		return;
	bridge_session_end(b);
	/* The device may still call timer_update while it is freed. */
	ccid_dev_free(b->dev);
	b->dev = NULL;
	if (b->timer_id) {
		GSource *src = g_main_context_find_source_by_id(b->ctx, b->timer_id);

		if (src)
			g_source_destroy(src);
	}
	g_source_destroy(b->pump_source);
	g_source_unref(b->pump_source);
	g_free(b->in_buf);
	g_main_context_unref(b->ctx);
	g_free(b);
}

ccid_dev *ccid_bridge_get_dev(ccid_bridge *b)
{
	return b->dev;
}

void ccid_bridge_get_stats(const ccid_bridge *b, struct ccid_bridge_stats *stats)
{
	*stats = b->stats;
	stats->output_queued = b->parser ?
		usbredirparser_get_bufferered_output_size(b->parser) : 0;
	stats->reading = b->parser && (b->io_cond & G_IO_IN);
}
