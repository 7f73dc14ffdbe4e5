/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-agent selftest: builds a device with a GLib-main-loop transport,
 * attaches cards and then behaves like a host driver over the USB API:
 * descriptors, SET_CONFIGURATION, NotifySlotChange, GetSlotStatus,
 * IccPowerOn, APDUs, IccPowerOff.  Every step checks the exact answer it
 * expects; the exit status is 0 only if all of them passed.
 */
#include "agent_cac.h"
#include "agent_cards.h"
#include "agent_commands.h"
#include "agent_host.h"
#include "agent_transport.h"
#include "agent_usb_id.h"

#include <ccid-emu/ccid_emu.h>
#include <ccid_card_loopback.h>
#include <ccid_le.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct selftest {
	agent_transport *t;
	agent_host *h;
	struct agent_card_spec spec;
	struct agent_usb_id usb_id;
	unsigned n_slots;
	guint n_ok, n_fail;
};

static void report(struct selftest *st, gboolean ok, const char *step,
		   const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static void report(struct selftest *st, gboolean ok, const char *step,
		   const char *fmt, ...)
{
	g_autofree char *detail = NULL;
	va_list ap;

	va_start(ap, fmt);
	detail = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	printf("  [%s] %s: %s\n", ok ? " OK " : "FAIL", step, detail);
	fflush(stdout);
	if (ok)
		st->n_ok++;
	else
		st->n_fail++;
}

static gboolean report_error(struct selftest *st, const char *step,
			     const GError *error)
{
	report(st, FALSE, step, "%s", error->message);
	return FALSE;
}

static char *hex(const guint8 *p, gsize n)
{
	GString *s = g_string_sized_new(n * 3);

	for (gsize i = 0; i < n; i++)
		g_string_append_printf(s, i ? " %02X" : "%02X", p[i]);
	return g_string_free(s, FALSE);
}

/* --- USB enumeration ----------------------------------------------------- */

static gboolean step_device_descriptor(struct selftest *st)
{
	g_autoptr(GByteArray) d = g_byte_array_new();
	g_autoptr(GError) error = NULL;

	if (!agent_host_get_descriptor(st->h, USB_DT_DEVICE, 0, 64, d, &error))
		return report_error(st, "GET_DESCRIPTOR(device)", error);
	if (d->len != USB_DT_DEVICE_LEN || d->data[0] != USB_DT_DEVICE_LEN ||
	    d->data[1] != USB_DT_DEVICE || d->data[17] != 1) {
		report(st, FALSE, "GET_DESCRIPTOR(device)",
		       "malformed: %u bytes, bLength %u, type %u, "
		       "bNumConfigurations %u", d->len,
		       d->len > 0 ? d->data[0] : 0, d->len > 1 ? d->data[1] : 0,
		       d->len > 17 ? d->data[17] : 0);
		return FALSE;
	}
	if (ccid_le16_load(d->data + 8) != st->usb_id.vendor_id ||
	    ccid_le16_load(d->data + 10) != st->usb_id.product_id) {
		report(st, FALSE, "GET_DESCRIPTOR(device)",
		       "%04x:%04x, expected the --usb-id %04x:%04x",
		       ccid_le16_load(d->data + 8), ccid_le16_load(d->data + 10),
		       st->usb_id.vendor_id, st->usb_id.product_id);
		return FALSE;
	}
	report(st, TRUE, "GET_DESCRIPTOR(device)",
	       "%04x:%04x, USB %x.%02x, bMaxPacketSize0 %u",
	       ccid_le16_load(d->data + 8), ccid_le16_load(d->data + 10), d->data[3], d->data[2],
	       d->data[7]);
	return TRUE;
}

struct parsed_config {
	gboolean have_iface, have_class;
	guint8 max_slot_index;
	guint32 protocols, features, max_msg;
	guint8 ep_bulk_out, ep_bulk_in, ep_intr;
	guint16 bulk_packet;
};

static gboolean parse_config(const GByteArray *c, struct parsed_config *pc,
			     GString *why)
{
	memset(pc, 0, sizeof(*pc));
	for (guint off = 0; off + 2 <= c->len;) {
		const guint8 *p = c->data + off;
		guint8 len = p[0];

		if (len < 2 || off + len > c->len) {
			g_string_printf(why, "descriptor at offset %u has "
					"bLength %u", off, len);
			return FALSE;
		}
		if (p[1] == USB_DT_INTERFACE && len >= USB_DT_INTERFACE_LEN &&
		    p[5] == CCID_INTERFACE_CLASS)
			pc->have_iface = TRUE;
		if (p[1] == CCID_CLASS_DESC_TYPE && len == CCID_CLASS_DESC_LEN) {
			pc->have_class = TRUE;
			pc->max_slot_index = p[4];
			pc->protocols = ccid_le32_load(p + 6);
			pc->features = ccid_le32_load(p + 40);
			pc->max_msg = ccid_le32_load(p + 44);
		}
		if (p[1] == USB_DT_ENDPOINT && len >= USB_DT_ENDPOINT_LEN) {
			guint8 attr = p[3] & 0x03;

			if (attr == USB_EP_XFER_BULK && p[2] & USB_DIR_IN) {
				pc->ep_bulk_in = p[2];
				pc->bulk_packet = ccid_le16_load(p + 4);
			} else if (attr == USB_EP_XFER_BULK) {
				pc->ep_bulk_out = p[2];
			} else if (attr == USB_EP_XFER_INT) {
				pc->ep_intr = p[2];
			}
		}
		off += len;
	}
	if (!pc->have_iface || !pc->have_class) {
		g_string_printf(why, "no smart-card interface or CCID class "
				"descriptor");
		return FALSE;
	}
	return TRUE;
}

static gboolean step_config_descriptor(struct selftest *st)
{
	g_autoptr(GByteArray) c = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) why = g_string_new(NULL);
	struct parsed_config pc;
	guint16 total;

	if (!agent_host_get_descriptor(st->h, USB_DT_CONFIG, 0,
				       USB_DT_CONFIG_LEN, c, &error))
		return report_error(st, "GET_DESCRIPTOR(config)", error);
	if (c->len != USB_DT_CONFIG_LEN || c->data[1] != USB_DT_CONFIG) {
		report(st, FALSE, "GET_DESCRIPTOR(config)",
		       "first 9 bytes malformed (%u bytes)", c->len);
		return FALSE;
	}
	total = ccid_le16_load(c->data + 2);
	if (!agent_host_get_descriptor(st->h, USB_DT_CONFIG, 0, total, c,
				       &error))
		return report_error(st, "GET_DESCRIPTOR(config)", error);
	if (c->len != total) {
		report(st, FALSE, "GET_DESCRIPTOR(config)",
		       "%u bytes for wTotalLength %u", c->len, total);
		return FALSE;
	}
	if (!parse_config(c, &pc, why)) {
		report(st, FALSE, "GET_DESCRIPTOR(config)", "%s", why->str);
		return FALSE;
	}
	if (pc.max_slot_index + 1u != st->n_slots ||
	    pc.ep_bulk_out != CCID_EP_BULK_OUT ||
	    pc.ep_bulk_in != CCID_EP_BULK_IN || pc.ep_intr != CCID_EP_INTR_IN ||
	    !(pc.protocols & CCID_PROTOCOL_T1)) {
		report(st, FALSE, "GET_DESCRIPTOR(config)",
		       "bMaxSlotIndex %u (want %u), endpoints %02x/%02x/%02x "
		       "(want %02x/%02x/%02x), dwProtocols %08x",
		       pc.max_slot_index, st->n_slots - 1, pc.ep_bulk_out,
		       pc.ep_bulk_in, pc.ep_intr, CCID_EP_BULK_OUT,
		       CCID_EP_BULK_IN, CCID_EP_INTR_IN, pc.protocols);
		return FALSE;
	}
	agent_host_set_max_message(st->h, pc.max_msg);
	agent_host_set_bulk_packet(st->h, pc.bulk_packet);
	report(st, TRUE, "GET_DESCRIPTOR(config)",
	       "%u bytes, %u slot%s, dwFeatures %08x (%s APDU), "
	       "dwMaxCCIDMessageLength %u, bulk packet %u",
	       total, pc.max_slot_index + 1u, pc.max_slot_index ? "s" : "",
	       pc.features,
	       (pc.features & CCID_FEAT_LEVEL_EXTENDED_APDU) ? "extended" :
	       (pc.features & CCID_FEAT_LEVEL_SHORT_APDU) ? "short" : "other",
	       pc.max_msg, pc.bulk_packet);
	return TRUE;
}

static gboolean step_set_configuration(struct selftest *st)
{
	g_autoptr(GError) error = NULL;

	if (!agent_host_set_configuration(st->h, 1, &error))
		return report_error(st, "SET_CONFIGURATION 1", error);
	if (!ccid_dev_is_configured(agent_transport_get_dev(st->t))) {
		report(st, FALSE, "SET_CONFIGURATION 1",
		       "accepted but the device is not configured");
		return FALSE;
	}
	report(st, TRUE, "SET_CONFIGURATION 1", "configured");
	return TRUE;
}

static gboolean step_notify(struct selftest *st)
{
	g_autoptr(GByteArray) m = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) bits = g_string_new(NULL);
	guint want_len = 1 + (2 * st->n_slots + 7) / 8;

	if (!agent_host_read_intr(st->h, m, &error))
		return report_error(st, "NotifySlotChange", error);
	if (m->len != want_len ||
	    m->data[0] != CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE) {
		report(st, FALSE, "NotifySlotChange",
		       "got %u bytes starting %02X, want %u starting 50",
		       m->len, m->len ? m->data[0] : 0, want_len);
		return FALSE;
	}
	for (unsigned i = 0; i < st->n_slots; i++) {
		guint8 b = (m->data[1 + i / 4] >> (2 * (i % 4))) & 0x3;

		g_string_append_printf(bits, "%sslot %u %s%s", i ? ", " : "",
				       i, (b & CCID_SLOT_BIT_PRESENT) ?
				       "present" : "EMPTY",
				       (b & CCID_SLOT_BIT_CHANGED) ?
				       " (changed)" : "");
		if (!(b & CCID_SLOT_BIT_PRESENT)) {
			report(st, FALSE, "NotifySlotChange", "%s", bits->str);
			return FALSE;
		}
	}
	report(st, TRUE, "NotifySlotChange", "%s", bits->str);
	return TRUE;
}

/* --- per slot ------------------------------------------------------------ */

static const char *icc_name(guint8 icc)
{
	switch (icc) {
	case CCID_ICC_PRESENT_ACTIVE:
		return "present, active";
	case CCID_ICC_PRESENT_INACTIVE:
		return "present, inactive";
	case CCID_ICC_ABSENT:
		return "absent";
	}
	return "invalid";
}

static gboolean step_slot_status(struct selftest *st, guint8 slot,
				 guint8 want, const char *step)
{
	g_autoptr(GError) error = NULL;
	guint8 icc = 0xFF;

	if (!agent_host_get_slot_status(st->h, slot, &icc, &error))
		return report_error(st, step, error);
	report(st, icc == want, step, "ICC %s%s%s", icc_name(icc),
	       icc == want ? "" : ", expected ", icc == want ? "" :
	       icc_name(want));
	return icc == want;
}

static gboolean step_power_on(struct selftest *st, guint8 slot)
{
	static const guint8 loop_hist[] = "ccidloop";
	g_autoptr(GByteArray) atr = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	g_autofree char *h = NULL;
	gboolean ok = TRUE;
	const char *why = "";

	if (!agent_host_power_on(st->h, slot, atr, &error))
		return report_error(st, "IccPowerOn", error);
	h = hex(atr->data, atr->len);
	if (atr->len < 2 || atr->data[0] != 0x3B) {
		ok = FALSE;
		why = " (not a direct-convention ATR)";
	} else if (st->spec.kind == AGENT_CARD_LOOPBACK) {
		guint8 tck = 0;

		for (guint i = 1; i + 1 < atr->len; i++)
			tck ^= atr->data[i];
		if (atr->len != 12 || atr->data[2] != 0x01 ||
		    memcmp(atr->data + 3, loop_hist, 8) != 0 ||
		    atr->data[11] != tck) {
			ok = FALSE;
			why = " (not the loopback ATR with T=1, \"ccidloop\" "
			      "and a valid TCK)";
		}
	}
	report(st, ok, "IccPowerOn", "ATR %s%s", h, why);
	return ok;
}

static gboolean step_power_off(struct selftest *st, guint8 slot)
{
	g_autoptr(GError) error = NULL;
	guint8 icc = 0xFF;

	if (!agent_host_power_off(st->h, slot, &icc, &error))
		return report_error(st, "IccPowerOff", error);
	report(st, icc == CCID_ICC_PRESENT_INACTIVE, "IccPowerOff", "ICC %s",
	       icc_name(icc));
	return icc == CCID_ICC_PRESENT_INACTIVE;
}

/* --- APDUs --------------------------------------------------------------- */

/* Sends @apdu and checks the response equals @want_data + @want_sw. */
static gboolean apdu_expect(struct selftest *st, guint8 slot, const char *step,
			    const guint8 *apdu, gsize len,
			    const guint8 *want_data, gsize want_len,
			    guint16 want_sw, guint *n_te, gint64 *elapsed_us)
{
	g_autoptr(GByteArray) r = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	gint64 t0 = g_get_monotonic_time();
	guint16 sw;

	if (!agent_host_xfr_apdu(st->h, slot, apdu, len, r, n_te, &error))
		return report_error(st, step, error);
	if (elapsed_us != NULL)
		*elapsed_us = g_get_monotonic_time() - t0;
	sw = (guint16)(r->data[r->len - 2] << 8 | r->data[r->len - 1]);
	if (sw != want_sw || r->len - 2 != want_len ||
	    (want_len > 0 && memcmp(r->data, want_data, want_len) != 0)) {
		report(st, FALSE, step, "got %u data bytes + SW %04X, expected "
		       "%zu bytes + SW %04X%s", r->len - 2, sw, want_len,
		       want_sw, r->len - 2 == want_len && sw == want_sw ?
		       " (data differs)" : "");
		return FALSE;
	}
	return TRUE;
}

static gboolean loopback_apdus(struct selftest *st, guint8 slot, gboolean full)
{
	static const guint8 select[] = {
		0x00, 0xA4, 0x04, 0x00, 0x08,
		'c', 'c', 'i', 'd', 'l', 'o', 'o', 'p'
	};
	static const guint8 bad_ins[] = { 0x80, 0x7F, 0x00, 0x00 };
	static const guint8 pattern64k[] = {
		0x80, CCID_LOOPBACK_INS_PATTERN, 0x00, 0x00, 0x00, 0x00, 0x00
	};
	static const guint8 delay1500[] = {
		0x80, CCID_LOOPBACK_INS_DELAY, 0x00, 0x00, 0x04,
		0x00, 0x00, 0x05, 0xDC
	};
	g_autofree guint8 *buf = g_malloc(65536 + 16);
	g_autofree guint8 *pat = g_malloc(65536);
	guint n_te = 0;
	gint64 us = 0;
	gboolean ok = TRUE;

	if (apdu_expect(st, slot, "SELECT", select, sizeof(select), NULL, 0,
			0x9000, NULL, NULL))
		report(st, TRUE, "SELECT", "SW 9000");
	else
		ok = FALSE;

	/* ECHO, short case 3: 200 bytes. */
	buf[0] = 0x80;
	buf[1] = CCID_LOOPBACK_INS_ECHO;
	buf[2] = buf[3] = 0;
	buf[4] = 200;
	for (guint i = 0; i < 200; i++)
		buf[5 + i] = (guint8)(i * 7 + 1);
	if (apdu_expect(st, slot, "ECHO short", buf, 205, buf + 5, 200, 0x9000,
			NULL, NULL))
		report(st, TRUE, "ECHO short", "200 bytes echoed");
	else
		ok = FALSE;

	if (!full)
		return ok;

	/* ECHO, extended case 3: 4000 bytes. */
	buf[4] = 0x00;
	buf[5] = 4000 >> 8;
	buf[6] = 4000 & 0xFF;
	for (guint i = 0; i < 4000; i++)
		buf[7 + i] = (guint8)(i ^ (i >> 8));
	if (apdu_expect(st, slot, "ECHO extended", buf, 7 + 4000, buf + 7, 4000,
			0x9000, NULL, NULL))
		report(st, TRUE, "ECHO extended", "4000 bytes echoed");
	else
		ok = FALSE;

	for (guint i = 0; i < 65536; i++)
		pat[i] = ccid_card_loopback_pattern_byte(i);
	if (apdu_expect(st, slot, "PATTERN 64 KiB", pattern64k,
			sizeof(pattern64k), pat, 65536, 0x9000, NULL, &us))
		report(st, TRUE, "PATTERN 64 KiB", "65536 bytes + SW 9000 in "
		       "%.1f ms", us / 1000.0);
	else
		ok = FALSE;

	if (apdu_expect(st, slot, "DELAY 1500 ms", delay1500,
			sizeof(delay1500), NULL, 0, 0x9000, &n_te, &us)) {
		gboolean good = n_te >= 2 && us >= 1500 * 1000;

		report(st, good, "DELAY 1500 ms", "SW 9000 after %.0f ms with "
		       "%u time-extension repl%s%s", us / 1000.0, n_te,
		       n_te == 1 ? "y" : "ies",
		       good ? "" : " (expected >= 2 and >= 1500 ms)");
		ok = ok && good;
	} else {
		ok = FALSE;
	}

	if (apdu_expect(st, slot, "unknown INS", bad_ins, sizeof(bad_ins), NULL,
			0, 0x6D00, NULL, NULL))
		report(st, TRUE, "unknown INS", "SW 6D00");
	else
		ok = FALSE;

	/* Round trip: small ECHOs through the whole stack. */
	{
		const guint n = 500;
		gint64 t0 = g_get_monotonic_time();
		guint i;

		buf[4] = 16;
		for (i = 0; i < n; i++)
			if (!apdu_expect(st, slot, "ECHO round trip", buf, 21,
					 buf + 5, 16, 0x9000, NULL, NULL))
				break;
		if (i == n) {
			report(st, TRUE, "APDU round trip", "%.1f us per "
			       "16-byte ECHO (%u APDUs)",
			       (g_get_monotonic_time() - t0) / (double)n, n);
		} else {
			ok = FALSE;
		}
	}
	return ok;
}

struct cac_link {
	agent_host *h;
	guint8 slot;
};

static gboolean cac_xfer(void *user, const guint8 *apdu, gsize len,
			 GByteArray *resp, GError **error)
{
	struct cac_link *l = user;

	return agent_host_xfr_apdu(l->h, l->slot, apdu, len, resp, NULL,
				   error);
}

static gboolean virtual_apdus(struct selftest *st, guint8 slot)
{
	struct cac_link link = { st->h, slot };
	struct agent_cac cac = { cac_xfer, &link, 0 };
	g_autoptr(GError) error = NULL;
	gboolean ok = TRUE;
	guint8 aid[AGENT_CAC_AID_LEN];

	if (agent_cac_select(&cac, agent_cac_ccc_aid,
			     sizeof(agent_cac_ccc_aid), &error))
		report(st, TRUE, "SELECT CCC", "A0000001 16DB00: SW 9000");
	else
		ok = report_error(st, "SELECT CCC", error);
	g_clear_error(&error);

	for (guint i = 0; i < AGENT_CAC_N_PKI; i++) {
		g_autoptr(GBytes) cert = NULL;
		g_autofree char *subject = NULL;
		g_autofree char *step = g_strdup_printf("certificate %u", i);

		cert = agent_cac_read_cert(&cac, i, &error);
		if (cert != NULL)
			subject = agent_cert_subject(cert, &error);
		if (subject == NULL) {
			ok = report_error(st, step, error);
			g_clear_error(&error);
			continue;
		}
		report(st, TRUE, step, "%zu bytes, subject \"%s\"",
		       g_bytes_get_size(cert), subject);
	}

	/* Round trip: SELECT of a PKI applet through the whole stack. */
	agent_cac_pki_aid(0, aid);
	{
		const guint n = 200;
		gint64 t0 = g_get_monotonic_time();
		guint i;

		for (i = 0; i < n; i++)
			if (!agent_cac_select(&cac, aid, sizeof(aid), &error))
				break;
		if (i == n) {
			report(st, TRUE, "APDU round trip", "%.1f us per "
			       "SELECT (%u APDUs)",
			       (g_get_monotonic_time() - t0) / (double)n, n);
		} else {
			ok = report_error(st, "APDU round trip", error);
		}
	}
	return ok;
}

/* A real card of unknown kind: any well-formed answer will do.  SELECT
 * MF by file ID (no response data) is about the most harmless APDU there
 * is; it is sent repeatedly to time the round trip through pcscd. */
static gboolean pcsc_apdus(struct selftest *st, guint8 slot)
{
	static const guint8 select_mf[] = { 0x00, 0xA4, 0x00, 0x0C, 0x02,
					    0x3F, 0x00 };
	g_autoptr(GByteArray) r = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	const guint n = 200;
	gint64 t0;
	guint i;

	if (!agent_host_xfr_apdu(st->h, slot, select_mf, sizeof(select_mf), r,
				 NULL, &error))
		return report_error(st, "SELECT MF", error);
	if (r->len < 2) {
		report(st, FALSE, "SELECT MF", "%u-byte response", r->len);
		return FALSE;
	}
	report(st, TRUE, "SELECT MF", "SW %02X%02X", r->data[r->len - 2],
	       r->data[r->len - 1]);

	t0 = g_get_monotonic_time();
	for (i = 0; i < n; i++) {
		g_byte_array_set_size(r, 0);
		if (!agent_host_xfr_apdu(st->h, slot, select_mf,
					 sizeof(select_mf), r, NULL, &error))
			return report_error(st, "APDU round trip", error);
	}
	report(st, TRUE, "APDU round trip", "%.1f us per SELECT MF (%u APDUs "
	       "through pcscd)", (g_get_monotonic_time() - t0) / (double)n, n);
	return TRUE;
}

/* The virtual PIV card: read-only commands only, so a selftest never
 * changes the user's card (no VERIFY with a PIN: a wrong one costs a try). */
static gboolean piv_apdus(struct selftest *st, guint8 slot)
{
	static const guint8 select[] = { 0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0,
					 0x00, 0x00, 0x03, 0x08 };
	static const guint8 version[] = { 0x00, 0xFD, 0x00, 0x00, 0x00 };
	static const guint8 serial[] = { 0x00, 0xF8, 0x00, 0x00, 0x00 };
	static const guint8 pin_status[] = { 0x00, 0x20, 0x00, 0x80 };
	static const guint8 discovery[] = { 0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C,
					    0x01, 0x7E, 0x00 };
	g_autoptr(GByteArray) r = g_byte_array_new();
	g_autoptr(GError) error = NULL;
	const guint n = 200;
	guint16 sw;
	gint64 t0;

	if (!agent_host_xfr_apdu(st->h, slot, select, sizeof(select), r, NULL,
				 &error))
		return report_error(st, "SELECT PIV", error);
	sw = (guint16)(r->data[r->len - 2] << 8 | r->data[r->len - 1]);
	report(st, sw == 0x9000 && r->len > 2 && r->data[0] == 0x61,
	       "SELECT PIV", "%u-byte application property template, SW %04X",
	       r->len - 2, sw);
	g_byte_array_set_size(r, 0);
	if (!agent_host_xfr_apdu(st->h, slot, version, sizeof(version), r,
				 NULL, &error))
		return report_error(st, "GET VERSION", error);
	report(st, r->len == 5, "GET VERSION", "%u.%u.%u (Yubico extension)",
	       r->len == 5 ? r->data[0] : 0, r->len == 5 ? r->data[1] : 0,
	       r->len == 5 ? r->data[2] : 0);
	g_byte_array_set_size(r, 0);
	if (!agent_host_xfr_apdu(st->h, slot, serial, sizeof(serial), r, NULL,
				 &error))
		return report_error(st, "GET SERIAL", error);
	report(st, r->len == 6, "GET SERIAL", "%u", r->len == 6 ?
	       (guint)r->data[0] << 24 | (guint)r->data[1] << 16 |
	       (guint)r->data[2] << 8 | r->data[3] : 0);
	g_byte_array_set_size(r, 0);
	if (!agent_host_xfr_apdu(st->h, slot, pin_status, sizeof(pin_status),
				 r, NULL, &error))
		return report_error(st, "VERIFY (status)", error);
	sw = (guint16)(r->data[r->len - 2] << 8 | r->data[r->len - 1]);
	report(st, (sw & 0xFFF0) == 0x63C0 || sw == 0x6983, "VERIFY (status)",
	       sw == 0x6983 ? "PIN blocked" : "PIN not verified, %u tries left",
	       sw & 0x0F);
	g_byte_array_set_size(r, 0);
	if (!agent_host_xfr_apdu(st->h, slot, discovery, sizeof(discovery), r,
				 NULL, &error))
		return report_error(st, "GET DATA discovery", error);
	sw = (guint16)(r->data[r->len - 2] << 8 | r->data[r->len - 1]);
	report(st, sw == 0x9000 && r->data[0] == 0x7E, "GET DATA discovery",
	       "%u bytes, SW %04X", r->len - 2, sw);
	t0 = g_get_monotonic_time();
	for (guint i = 0; i < n; i++) {
		g_byte_array_set_size(r, 0);
		if (!agent_host_xfr_apdu(st->h, slot, pin_status,
					 sizeof(pin_status), r, NULL, &error))
			return report_error(st, "APDU round trip", error);
	}
	report(st, TRUE, "APDU round trip", "%.1f us per VERIFY status (%u "
	       "APDUs through the card's worker)",
	       (g_get_monotonic_time() - t0) / (double)n, n);
	return TRUE;
}

static void run_slot(struct selftest *st, guint8 slot)
{
	printf("slot %u:\n", slot);
	if (!step_slot_status(st, slot, CCID_ICC_PRESENT_INACTIVE,
			      "GetSlotStatus"))
		return;
	if (!step_power_on(st, slot))
		return;
	if (st->spec.kind == AGENT_CARD_LOOPBACK)
		loopback_apdus(st, slot, slot == 0);
	else if (st->spec.kind == AGENT_CARD_PCSC)
		pcsc_apdus(st, slot);
	else if (st->spec.kind == AGENT_CARD_PIV)
		piv_apdus(st, slot);
	else
		virtual_apdus(st, slot);
	if (!step_power_off(st, slot))
		return;
	step_slot_status(st, slot, CCID_ICC_PRESENT_INACTIVE,
			 "GetSlotStatus after power-off");
}

static int run(struct selftest *st)
{
	struct ccid_config cfg;
	g_autoptr(GError) error = NULL;
	g_autofree char *db_dir = NULL;
	gboolean created = FALSE;
	gint64 t0;

	ccid_config_init(&cfg);
	agent_usb_id_apply(&st->usb_id, &cfg);
	cfg.n_slots = (uint8_t)st->n_slots;
	cfg.max_busy_slots = (uint8_t)st->n_slots;
	if (agent_transport_create_dev(st->t, &cfg, &error) == NULL) {
		fprintf(stderr, "ccid-agent: %s\n", error->message);
		return AGENT_EXIT_FAILED;
	}

	printf("ccid-agent selftest: card %s, %u slot%s\n",
	       agent_card_kind_name(st->spec.kind), st->n_slots,
	       st->n_slots == 1 ? "" : "s");
	t0 = g_get_monotonic_time();
	if (!agent_cards_attach(st->t, &st->spec, st->n_slots, &db_dir,
				&created, &error)) {
		report(st, FALSE, "card", "%s", error->message);
		printf("selftest: %u passed, %u failed\n", st->n_ok,
		       st->n_fail);
		return AGENT_EXIT_FAILED;
	}
	if (db_dir != NULL)
		report(st, TRUE, "card", "NSS database %s (%s, %.0f ms)",
		       db_dir, created ? "created now" : "existing",
		       (g_get_monotonic_time() - t0) / 1000.0);
	else
		report(st, TRUE, "card", "%s card on every slot",
		       agent_card_kind_name(st->spec.kind));

	st->h = agent_host_new(st->t);
	printf("USB:\n");
	if (step_device_descriptor(st) && step_config_descriptor(st) &&
	    step_set_configuration(st) && step_notify(st)) {
		for (unsigned i = 0; i < st->n_slots; i++)
			run_slot(st, (guint8)i);
	}
	printf("selftest: %u passed, %u failed\n", st->n_ok, st->n_fail);
	return st->n_fail == 0 ? AGENT_EXIT_OK : AGENT_EXIT_FAILED;
}

int agent_cmd_selftest(int argc, char **argv)
{
	g_autofree char *card = NULL;
	g_autofree char *certs = NULL;
	g_autofree char *usb_id = NULL;
	gint slots = 1;
	gboolean verbose = FALSE;
	const GOptionEntry entries[] = {
		{ "card", 'c', 0, G_OPTION_ARG_STRING, &card,
		  "Card to test: virtual (default), virtual:NSSDB_DIR, "
		  "loopback, pcsc:READER[,idle=MS][,lock_timeout=MS] or "
		  "nss:NSSDB_DIR[,token=NAME][,timeout=MS] or piv[:DIR]",
		  "CARD" },
		{ "slots", 's', 0, G_OPTION_ARG_INT, &slots,
		  "Number of slots, each with its own card (1-8, default 1)",
		  "N" },
		{ "certs", 0, 0, G_OPTION_ARG_STRING, &certs,
		  "Nicknames of the virtual card's three certificates",
		  "ID,SIGN,ENC" },
		{ "usb-id", 0, 0, G_OPTION_ARG_STRING, &usb_id,
		  "USB identity of the reader: scr335 (default), ccid-emu, "
		  "or VID:PID in hex", "ID" },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
		  "Print the device model's debug log on stderr", NULL },
		{ NULL }
	};
	g_autoptr(GOptionContext) ctx =
		g_option_context_new("- exercise an emulated CCID reader");
	g_autoptr(GError) error = NULL;
	struct selftest st = { 0 };
	int rc;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(ctx,
		"The selftest acts like a host driver: it enumerates the "
		"emulated reader over its USB\ninterface, powers each card on, "
		"exchanges APDUs and checks every answer.\nExit status: 0 all "
		"steps passed, 1 a step failed, 2 bad command line.\n");
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc > 1) {
		fprintf(stderr, "ccid-agent: unexpected argument '%s'\n"
			"Try '%s --help'.\n", argv[1], argv[0]);
		return AGENT_EXIT_USAGE;
	}
	if (slots < 1 || slots > (gint)CCID_EMU_MAX_SLOTS) {
		fprintf(stderr, "ccid-agent: --slots must be 1..%u, got %d\n",
			CCID_EMU_MAX_SLOTS, slots);
		return AGENT_EXIT_USAGE;
	}
	if (!agent_usb_id_parse(usb_id, &st.usb_id, &error))
		return agent_usage_error(argv[0], "%s", error->message);
	if (!agent_card_spec_parse(card != NULL ? card : "virtual", &st.spec,
				   &error) ||
	    (certs != NULL && !agent_card_spec_set_nicknames(&st.spec, certs,
							      &error))) {
		fprintf(stderr, "ccid-agent: %s\n", error->message);
		agent_card_spec_clear(&st.spec);
		return AGENT_EXIT_USAGE;
	}
	if (certs != NULL && st.spec.kind != AGENT_CARD_VIRTUAL) {
		fprintf(stderr, "ccid-agent: --certs only applies to virtual "
			"cards\n");
		agent_card_spec_clear(&st.spec);
		return AGENT_EXIT_USAGE;
	}

	st.n_slots = (unsigned)slots;
	st.t = agent_transport_new(NULL, verbose);
	rc = run(&st);
	agent_host_free(st.h);
	agent_transport_free(st.t);
	agent_card_spec_clear(&st.spec);
	return rc;
}
