/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The miniature host driver (see agent_host.h).
 */
#include "agent_host.h"

#include <ccid-emu/ccid_proto.h>
#include <ccid_le.h>
#include <string.h>

G_DEFINE_QUARK(agent-host-error-quark, agent_host_error)

struct agent_host {
	agent_transport *t;
	ccid_dev *dev;
	guint8 seq;
	gsize xfer_size;
	guint timeout_ms;
	guint32 max_msg;
	guint packet;                 /* bulk wMaxPacketSize */
	guint8 *xfer;                 /* one bulk-IN transfer */
	GByteArray *msg;              /* one outgoing message */
};

agent_host *agent_host_new(agent_transport *t)
{
	agent_host *h = g_new0(agent_host, 1);

	h->t = t;
	h->dev = agent_transport_get_dev(t);
	h->xfer_size = 4096;
	h->timeout_ms = 10000;
	h->max_msg = CCID_EMU_DEFAULT_MAX_MSG;
	h->packet = 64;
	h->xfer = g_malloc(h->xfer_size);
	h->msg = g_byte_array_new();
	return h;
}

void agent_host_free(agent_host *h)
{
	if (h == NULL)
		return;
	g_free(h->xfer);
	g_byte_array_unref(h->msg);
	g_free(h);
}

void agent_reply_clear(struct agent_reply *r)
{
	if (r->data != NULL)
		g_byte_array_unref(r->data);
	memset(r, 0, sizeof(*r));
}

void agent_host_set_transfer_size(agent_host *h, gsize size)
{
	g_return_if_fail(size >= 64 && size % 64 == 0);
	h->xfer_size = size;
	h->xfer = g_realloc(h->xfer, size);
}

void agent_host_set_timeout_ms(agent_host *h, guint ms)
{
	h->timeout_ms = ms;
}

void agent_host_set_max_message(agent_host *h, guint32 max_msg)
{
	h->max_msg = max_msg;
}

void agent_host_set_bulk_packet(agent_host *h, guint packet)
{
	g_return_if_fail(packet == 8 || packet == 16 || packet == 32 ||
			 packet == 64);
	h->packet = packet;
}

/* --- waiting ------------------------------------------------------------- */

static gboolean set_flag(gpointer data)
{
	*(gboolean *)data = TRUE;
	return G_SOURCE_REMOVE;
}

typedef int (*pull_fn)(ccid_dev *dev, uint8_t *buf, size_t cap);

/* Pulls one transfer, iterating the context until the device has one. */
static gboolean pull_wait(agent_host *h, pull_fn pull, guint8 *buf, gsize cap,
			  int *got, const char *what, GError **error)
{
	GMainContext *ctx = agent_transport_get_context(h->t);
	gboolean timed_out = FALSE;
	GSource *to = NULL;
	int n;

	while ((n = pull(h->dev, buf, cap)) == CCID_PULL_NONE) {
		if (to == NULL) {
			to = g_timeout_source_new(h->timeout_ms);
			g_source_set_callback(to, set_flag, &timed_out, NULL);
			g_source_attach(to, ctx);
		}
		if (timed_out)
			break;
		g_main_context_iteration(ctx, TRUE);
	}
	if (to != NULL) {
		g_source_destroy(to);
		g_source_unref(to);
	}
	if (n == CCID_PULL_NONE) {
		g_set_error(error, AGENT_HOST_ERROR, AGENT_HOST_ERROR_TIMEOUT,
			    "no %s answer within %u ms", what, h->timeout_ms);
		return FALSE;
	}
	*got = n;
	return TRUE;
}

/* --- control ------------------------------------------------------------- */

static void make_setup(guint8 setup[8], guint8 rt, guint8 req, guint16 value,
		       guint16 index, guint16 length)
{
	setup[0] = rt;
	setup[1] = req;
	ccid_le16_store(setup + 2, value);
	ccid_le16_store(setup + 4, index);
	ccid_le16_store(setup + 6, length);
}

gboolean agent_host_control_in(agent_host *h, guint8 request_type,
			       guint8 request, guint16 value, guint16 index,
			       guint16 length, GByteArray *out, GError **error)
{
	guint8 setup[8];
	int n;

	make_setup(setup, request_type | USB_DIR_IN, request, value, index,
		   length);
	g_byte_array_set_size(out, length);
	n = ccid_dev_control(h->dev, setup, out->data, length);
	if (n == CCID_CONTROL_STALL) {
		g_byte_array_set_size(out, 0);
		g_set_error(error, AGENT_HOST_ERROR, AGENT_HOST_ERROR_STALL,
			    "control request %02x/%02x wValue %04x stalled",
			    request_type, request, value);
		return FALSE;
	}
	if (n < 0 || n > length) {
		g_set_error(error, AGENT_HOST_ERROR, AGENT_HOST_ERROR_PROTOCOL,
			    "control request returned %d bytes for wLength %u",
			    n, length);
		return FALSE;
	}
	g_byte_array_set_size(out, (guint)n);
	return TRUE;
}

gboolean agent_host_control_out(agent_host *h, guint8 request_type,
				guint8 request, guint16 value, guint16 index,
				const guint8 *data, guint16 length,
				GError **error)
{
	guint8 setup[8];
	g_autofree guint8 *copy = length ? g_memdup2(data, length) : NULL;
	int n;

	make_setup(setup, request_type & ~USB_DIR_IN, request, value, index,
		   length);
	n = ccid_dev_control(h->dev, setup, copy, length);
	if (n == CCID_CONTROL_STALL) {
		g_set_error(error, AGENT_HOST_ERROR, AGENT_HOST_ERROR_STALL,
			    "control request %02x/%02x wValue %04x stalled",
			    request_type, request, value);
		return FALSE;
	}
	return TRUE;
}

gboolean agent_host_get_descriptor(agent_host *h, guint8 type, guint8 index,
				   guint16 length, GByteArray *out,
				   GError **error)
{
	return agent_host_control_in(h, USB_TYPE_STANDARD | USB_RECIP_DEVICE,
				     USB_REQ_GET_DESCRIPTOR,
				     (guint16)(type << 8 | index), 0, length,
				     out, error);
}

gboolean agent_host_set_configuration(agent_host *h, guint8 value,
				      GError **error)
{
	return agent_host_control_out(h, USB_TYPE_STANDARD | USB_RECIP_DEVICE,
				      USB_REQ_SET_CONFIGURATION, value, 0,
				      NULL, 0, error);
}

/* --- interrupt ----------------------------------------------------------- */

gboolean agent_host_read_intr(agent_host *h, GByteArray *out, GError **error)
{
	guint8 buf[CCID_INTR_MAX_PACKET];
	int n;

	if (!pull_wait(h, ccid_dev_intr_in_pull, buf, sizeof(buf), &n,
		       "interrupt-IN", error))
		return FALSE;
	g_byte_array_set_size(out, 0);
	g_byte_array_append(out, buf, (guint)n);
	return TRUE;
}

/* --- bulk ---------------------------------------------------------------- */

void agent_host_send_raw(agent_host *h, const guint8 *msg, gsize len)
{
	/* One transfer; the device ends the message at dwLength, and a
	 * whole-packet message needs no ZLP from the host side because the
	 * device knows dwLength. */
	ccid_dev_bulk_out(h->dev, msg, len);
}

gboolean agent_host_receive(agent_host *h, struct agent_reply *reply,
			    GError **error)
{
	g_autoptr(GByteArray) buf = g_byte_array_new();
	guint32 total = 0;
	int n = 0;

	agent_reply_clear(reply);
	for (;;) {
		if (!pull_wait(h, ccid_dev_bulk_in_pull, h->xfer, h->xfer_size,
			       &n, "bulk-IN", error))
			return FALSE;
		if (n == 0 && buf->len == 0) {
			g_set_error(error, AGENT_HOST_ERROR,
				    AGENT_HOST_ERROR_PROTOCOL,
				    "zero-length packet where a message "
				    "should start");
			return FALSE;
		}
		g_byte_array_append(buf, h->xfer, (guint)n);
		if (total == 0 && buf->len >= CCID_HDR_LEN)
			total = CCID_HDR_LEN + ccid_le32_load(buf->data + CCID_OFF_LENGTH);
		if (total != 0 && buf->len >= total)
			break;
		/* A short transfer ends the message (USB 2.0 §5.8.3). */
		if ((gsize)n < h->xfer_size) {
			g_set_error(error, AGENT_HOST_ERROR,
				    AGENT_HOST_ERROR_PROTOCOL,
				    "bulk-IN message ended after %u of %u bytes",
				    buf->len, total);
			return FALSE;
		}
	}
	if (buf->len != total) {
		g_set_error(error, AGENT_HOST_ERROR, AGENT_HOST_ERROR_PROTOCOL,
			    "bulk-IN transfer carried %u bytes for a %u-byte "
			    "message", buf->len, total);
		return FALSE;
	}
	/* The transfer filled exactly on a packet boundary: the device owes
	 * a zero-length packet to end it. */
	if ((gsize)n == h->xfer_size && total % h->packet == 0) {
		int z;

		if (!pull_wait(h, ccid_dev_bulk_in_pull, h->xfer, h->xfer_size,
			       &z, "zero-length packet", error))
			return FALSE;
		if (z != 0) {
			g_set_error(error, AGENT_HOST_ERROR,
				    AGENT_HOST_ERROR_PROTOCOL,
				    "expected a zero-length packet, got %d "
				    "bytes", z);
			return FALSE;
		}
	}
	reply->type = buf->data[CCID_OFF_TYPE];
	reply->slot = buf->data[CCID_OFF_SLOT];
	reply->seq = buf->data[CCID_OFF_SEQ];
	reply->status = buf->data[CCID_OFF_STATUS];
	reply->error = buf->data[CCID_OFF_ERROR];
	reply->spec = buf->data[CCID_OFF_SPEC2];
	reply->data = g_byte_array_new();
	g_byte_array_append(reply->data, buf->data + CCID_HDR_LEN,
			    total - CCID_HDR_LEN);
	return TRUE;
}

static guint8 cmd_status(const struct agent_reply *r)
{
	return (guint8)(r->status >> CCID_CMD_STATUS_SHIFT);
}

gboolean agent_host_command(agent_host *h, guint8 type, guint8 slot,
			    const guint8 spec[3], const guint8 *data,
			    guint32 len, struct agent_reply *reply,
			    guint *n_time_ext, GError **error)
{
	guint8 seq = h->seq++;
	guint8 *m;

	g_byte_array_set_size(h->msg, CCID_HDR_LEN + len);
	m = h->msg->data;
	m[CCID_OFF_TYPE] = type;
	ccid_le32_store(m + CCID_OFF_LENGTH, len);
	m[CCID_OFF_SLOT] = slot;
	m[CCID_OFF_SEQ] = seq;
	m[CCID_OFF_SPEC0] = spec != NULL ? spec[0] : 0;
	m[CCID_OFF_SPEC1] = spec != NULL ? spec[1] : 0;
	m[CCID_OFF_SPEC2] = spec != NULL ? spec[2] : 0;
	if (len > 0)
		memcpy(m + CCID_HDR_LEN, data, len);
	agent_host_send_raw(h, m, CCID_HDR_LEN + len);

	for (;;) {
		if (!agent_host_receive(h, reply, error))
			return FALSE;
		if (reply->slot != slot || reply->seq != seq) {
			g_set_error(error, AGENT_HOST_ERROR,
				    AGENT_HOST_ERROR_PROTOCOL,
				    "answer for slot %u seq %u while waiting "
				    "for slot %u seq %u", reply->slot,
				    reply->seq, slot, seq);
			return FALSE;
		}
		if (cmd_status(reply) != CCID_CMD_TIME_EXTENSION)
			return TRUE;
		if (n_time_ext != NULL)
			(*n_time_ext)++;
	}
}

static gboolean check_ok(const struct agent_reply *r, guint8 want_type,
			 const char *what, GError **error)
{
	if (r->type != want_type) {
		g_set_error(error, AGENT_HOST_ERROR, AGENT_HOST_ERROR_PROTOCOL,
			    "%s answered with %s (0x%02x), expected %s",
			    what, ccid_msg_type_name(r->type), r->type,
			    ccid_msg_type_name(want_type));
		return FALSE;
	}
	if (cmd_status(r) != CCID_CMD_OK) {
		g_set_error(error, AGENT_HOST_ERROR, AGENT_HOST_ERROR_FAILED,
			    "%s failed: bStatus 0x%02x, bError 0x%02x (%s)",
			    what, r->status, r->error,
			    ccid_error_name(r->error));
		return FALSE;
	}
	return TRUE;
}

gboolean agent_host_xfr_apdu(agent_host *h, guint8 slot, const guint8 *apdu,
			     gsize len, GByteArray *resp, guint *n_time_ext,
			     GError **error)
{
	g_auto(agent_reply) r = { 0 };
	gsize room = h->max_msg - CCID_HDR_LEN;
	gsize off = 0;

	g_byte_array_set_size(resp, 0);
	/* Command: one message, or a chain of begin / continue / end. */
	for (;;) {
		gsize part = MIN(len - off, room);
		gboolean first = off == 0;
		gboolean last = off + part == len;
		guint16 level = first && last ? CCID_LEVEL_BEGIN_END :
				first ? CCID_LEVEL_BEGIN_CONTINUE :
				last ? CCID_LEVEL_CONTINUE_END :
				CCID_LEVEL_CONTINUE;
		guint8 spec[3] = { 0, (guint8)level, (guint8)(level >> 8) };

		if (!agent_host_command(h, CCID_PC_TO_RDR_XFR_BLOCK, slot,
					spec, apdu + off, (guint32)part, &r,
					n_time_ext, error))
			return FALSE;
		if (!check_ok(&r, CCID_RDR_TO_PC_DATA_BLOCK, "XfrBlock", error))
			return FALSE;
		off += part;
		if (last)
			break;
		if (r.spec != CCID_CHAIN_CMD_MORE || r.data->len != 0) {
			g_set_error(error, AGENT_HOST_ERROR,
				    AGENT_HOST_ERROR_PROTOCOL,
				    "chained command part answered with "
				    "bChainParameter 0x%02x and %u bytes "
				    "instead of an empty 0x10", r.spec,
				    r.data->len);
			return FALSE;
		}
	}
	/* Response: collect parts until begin-end or continue-end. */
	for (;;) {
		static const guint8 more[3] = { 0, CCID_LEVEL_RESPONSE_MORE, 0 };

		g_byte_array_append(resp, r.data->data, r.data->len);
		if (r.spec == CCID_CHAIN_BEGIN_END ||
		    r.spec == CCID_CHAIN_CONTINUE_END)
			break;
		if (r.spec != CCID_CHAIN_BEGIN_CONTINUE &&
		    r.spec != CCID_CHAIN_CONTINUE) {
			g_set_error(error, AGENT_HOST_ERROR,
				    AGENT_HOST_ERROR_PROTOCOL,
				    "DataBlock with bChainParameter 0x%02x",
				    r.spec);
			return FALSE;
		}
		if (!agent_host_command(h, CCID_PC_TO_RDR_XFR_BLOCK, slot,
					more, NULL, 0, &r, n_time_ext, error))
			return FALSE;
		if (!check_ok(&r, CCID_RDR_TO_PC_DATA_BLOCK, "XfrBlock",
			      error))
			return FALSE;
	}
	if (resp->len < 2) {
		g_set_error(error, AGENT_HOST_ERROR, AGENT_HOST_ERROR_PROTOCOL,
			    "response APDU of %u bytes has no status word",
			    resp->len);
		return FALSE;
	}
	return TRUE;
}

gboolean agent_host_power_on(agent_host *h, guint8 slot, GByteArray *atr,
			     GError **error)
{
	struct agent_reply r = { 0 };
	gboolean ok;

	/* bPowerSelect 0: automatic voltage selection. */
	ok = agent_host_command(h, CCID_PC_TO_RDR_ICC_POWER_ON, slot, NULL,
				NULL, 0, &r, NULL, error) &&
	     check_ok(&r, CCID_RDR_TO_PC_DATA_BLOCK, "IccPowerOn", error);
	if (ok) {
		g_byte_array_set_size(atr, 0);
		g_byte_array_append(atr, r.data->data, r.data->len);
	}
	agent_reply_clear(&r);
	return ok;
}

static gboolean slot_status_cmd(agent_host *h, guint8 type, guint8 slot,
				guint8 *icc_status, const char *what,
				GError **error)
{
	struct agent_reply r = { 0 };
	gboolean ok;

	ok = agent_host_command(h, type, slot, NULL, NULL, 0, &r, NULL,
				error) &&
	     check_ok(&r, CCID_RDR_TO_PC_SLOT_STATUS, what, error);
	if (ok && icc_status != NULL)
		*icc_status = r.status & CCID_ICC_STATUS_MASK;
	agent_reply_clear(&r);
	return ok;
}

gboolean agent_host_power_off(agent_host *h, guint8 slot, guint8 *icc_status,
			      GError **error)
{
	return slot_status_cmd(h, CCID_PC_TO_RDR_ICC_POWER_OFF, slot,
			       icc_status, "IccPowerOff", error);
}

gboolean agent_host_get_slot_status(agent_host *h, guint8 slot,
				    guint8 *icc_status, GError **error)
{
	return slot_status_cmd(h, CCID_PC_TO_RDR_GET_SLOT_STATUS, slot,
			       icc_status, "GetSlotStatus", error);
}
