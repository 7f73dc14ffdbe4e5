/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * USB identity presets and the `--usb-id` parser.
 *
 * pcscd and libccid drive a USB reader only if its exact VID:PID is in
 * libccid's reader list, so the default borrows the ID of a listed reader
 * for which neither libccid nor GnuPG's CCID driver has a special case
 * that would change what the guest does (docs/usb-identity.md has the
 * source-level review).  The project's own ID stays one option away.
 */
#include <stdlib.h>
#include <string.h>

#include "agent_usb_id.h"

static const struct agent_usb_id agent_usb_id_presets[] = {
	/* The first row is the default. */
	{ CCID_EMU_DEFAULT_VID, CCID_EMU_DEFAULT_PID, CCID_EMU_DEFAULT_BCD,
	  "scr335",
	  "SCM Microsystems SCR 335's ID, in stock libccid's reader list: "
	  "unmodified Linux guests drive it" },
	{ CCID_EMU_OWN_VID, CCID_EMU_OWN_PID, 0x0100,
	  "ccid-emu",
	  "the project's own pid.codes ID, not yet in libccid's reader list: "
	  "Linux guests need it added to /etc/libccid_Info.plist "
	  "(docs/usb-identity.md)" },
};

const char *agent_usb_id_names(void)
{
	return "scr335 (default), ccid-emu";
}

/* One hexadecimal field of 1-4 digits, optional 0x, nothing else. */
static gboolean agent_usb_id_hex16(const char *s, size_t len, uint16_t *out)
{
	unsigned v = 0;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		len -= 2;
	}
	if (len == 0 || len > 4)
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		int d = g_ascii_xdigit_value(s[i]);

		if (d < 0)
			return FALSE;
		v = v << 4 | (unsigned)d;
	}
	*out = (uint16_t)v;
	return TRUE;
}

gboolean agent_usb_id_parse(const char *text, struct agent_usb_id *id,
			    GError **error)
{
	const char *colon;
	uint16_t vid, pid;

	if (text == NULL) {
		*id = agent_usb_id_presets[0];
		return TRUE;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(agent_usb_id_presets); i++) {
		if (g_ascii_strcasecmp(text, agent_usb_id_presets[i].name) == 0) {
			*id = agent_usb_id_presets[i];
			return TRUE;
		}
	}
	colon = strchr(text, ':');
	if (colon == NULL ||
	    !agent_usb_id_hex16(text, (size_t)(colon - text), &vid) ||
	    !agent_usb_id_hex16(colon + 1, strlen(colon + 1), &pid)) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--usb-id '%s' is neither VID:PID (two hexadecimal "
			    "numbers of up to 4 digits, e.g. 04e6:5115) nor one "
			    "of the names %s", text, agent_usb_id_names());
		return FALSE;
	}
	if (vid == 0) {
		/* USB-IF never assigns vendor 0; guests' drivers treat it as
		 * garbage. */
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--usb-id '%s': vendor ID 0000 is not a valid USB "
			    "vendor; use a listed reader's ID, e.g. 04e6:5115",
			    text);
		return FALSE;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(agent_usb_id_presets); i++) {
		if (agent_usb_id_presets[i].vendor_id == vid &&
		    agent_usb_id_presets[i].product_id == pid) {
			*id = agent_usb_id_presets[i];
			return TRUE;
		}
	}
	*id = (struct agent_usb_id){
		.vendor_id = vid,
		.product_id = pid,
		.bcd_device = agent_usb_id_presets[0].bcd_device,
		.name = NULL,
		.about = "given with --usb-id: Linux guests drive it only if "
			 "their libccid lists this VID:PID",
	};
	return TRUE;
}

void agent_usb_id_apply(const struct agent_usb_id *id, struct ccid_config *cfg)
{
	cfg->vendor_id = id->vendor_id;
	cfg->product_id = id->product_id;
	cfg->bcd_device = id->bcd_device;
}

char *agent_usb_id_describe(const struct agent_usb_id *id)
{
	if (id->name != NULL)
		return g_strdup_printf("%04X:%04X (%s)", id->vendor_id,
				       id->product_id, id->name);
	return g_strdup_printf("%04X:%04X", id->vendor_id, id->product_id);
}

char *agent_usb_serial_for(const char *seed)
{
	g_autofree char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256,
							      seed, -1);

	sum[8] = '\0';
	return g_ascii_strup(sum, -1);
}

gboolean agent_usb_serial_check(const char *serial, GError **error)
{
	size_t len = strlen(serial);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)serial[i];

		if (c < 0x21 || c > 0x7E || c == ',') {
			g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "--serial '%s': character %zu is not "
				    "allowed; use 1-32 printable ASCII "
				    "characters without spaces or commas",
				    serial, i + 1);
			return FALSE;
		}
	}
	if (len == 0 || len > 32) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--serial '%s': %zu characters; use 1-32 printable "
			    "ASCII characters without spaces or commas",
			    serial, len);
		return FALSE;
	}
	return TRUE;
}
