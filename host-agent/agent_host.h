/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A host-side CCID driver in miniature: it talks to a ccid_dev only through
 * the USB-facing API (control transfers, bulk-OUT, bulk-IN and interrupt-IN
 * pulls), exactly as a USB host controller would hand bytes to libccid.
 * Waiting is done by iterating the transport's main context, so device and
 * card timers keep running while the "host" waits for an answer.
 */
#ifndef CCID_AGENT_HOST_H
#define CCID_AGENT_HOST_H

#include "agent_transport.h"

#include <glib.h>

G_BEGIN_DECLS

#define AGENT_HOST_ERROR (agent_host_error_quark())
GQuark agent_host_error_quark(void);

enum agent_host_error {
	AGENT_HOST_ERROR_STALL,      /* control request stalled */
	AGENT_HOST_ERROR_TIMEOUT,    /* no answer in time */
	AGENT_HOST_ERROR_PROTOCOL,   /* answer does not follow CCID 1.1 */
	AGENT_HOST_ERROR_FAILED,     /* command answered with bStatus failed */
};

typedef struct agent_host agent_host;

typedef struct agent_reply {
	guint8 type, slot, seq, status, error, spec;
	GByteArray *data;            /* abData */
} agent_reply;

agent_host *agent_host_new(agent_transport *t);
void agent_host_free(agent_host *h);     /* accepts NULL */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(agent_host, agent_host_free)

void agent_reply_clear(struct agent_reply *r);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(agent_reply, agent_reply_clear)

/* Size of each bulk-IN transfer the host posts (a multiple of 64;
 * default 4096) and the time it waits for one answer (default 10 s). */
void agent_host_set_transfer_size(agent_host *h, gsize size);
void agent_host_set_timeout_ms(agent_host *h, guint ms);

/* Control transfers.  @setup fields as in USB 2.0 §9.3. */
gboolean agent_host_control_in(agent_host *h, guint8 request_type,
			       guint8 request, guint16 value, guint16 index,
			       guint16 length, GByteArray *out, GError **error);
gboolean agent_host_control_out(agent_host *h, guint8 request_type,
				guint8 request, guint16 value, guint16 index,
				const guint8 *data, guint16 length,
				GError **error);
gboolean agent_host_get_descriptor(agent_host *h, guint8 type, guint8 index,
				   guint16 length, GByteArray *out,
				   GError **error);
gboolean agent_host_set_configuration(agent_host *h, guint8 value,
				      GError **error);

/* Reads one interrupt-IN message, waiting for it. */
gboolean agent_host_read_intr(agent_host *h, GByteArray *out, GError **error);

/* Sends one raw bulk-OUT message and reads one raw RDR_to_PC message. */
void agent_host_send_raw(agent_host *h, const guint8 *msg, gsize len);
gboolean agent_host_receive(agent_host *h, struct agent_reply *reply,
			    GError **error);

/* One PC_to_RDR command and its final answer (time-extension replies are
 * consumed and counted in *@n_time_ext, which may be NULL).  Checks that
 * the answer carries the command's bSlot and bSeq.  A reply whose bStatus
 * says "failed" is still returned with TRUE; callers judge bError. */
gboolean agent_host_command(agent_host *h, guint8 type, guint8 slot,
			    const guint8 spec[3], const guint8 *data,
			    guint32 len, struct agent_reply *reply,
			    guint *n_time_ext, GError **error);

/* XfrBlock of a whole APDU, chaining command and response with
 * wLevelParameter/bChainParameter when they exceed dwMaxCCIDMessageLength
 * (CCID 1.1 §6.1.4).  The response APDU (data + SW1 SW2) goes to @resp.
 * A failed DataBlock is an error naming bError. */
gboolean agent_host_xfr_apdu(agent_host *h, guint8 slot, const guint8 *apdu,
			     gsize len, GByteArray *resp, guint *n_time_ext,
			     GError **error);

/* Helpers for the common commands; they fail on bStatus "failed". */
gboolean agent_host_power_on(agent_host *h, guint8 slot, GByteArray *atr,
			     GError **error);
gboolean agent_host_power_off(agent_host *h, guint8 slot, guint8 *icc_status,
			      GError **error);
gboolean agent_host_get_slot_status(agent_host *h, guint8 slot,
				    guint8 *icc_status, GError **error);

/* dwMaxCCIDMessageLength the host assumes for chaining (set it from the
 * class descriptor; default CCID_EMU_DEFAULT_MAX_MSG). */
void agent_host_set_max_message(agent_host *h, guint32 max_msg);
/* Bulk wMaxPacketSize (from the endpoint descriptor; default 64). */
void agent_host_set_bulk_packet(agent_host *h, guint packet);

G_END_DECLS

#endif /* CCID_AGENT_HOST_H */
