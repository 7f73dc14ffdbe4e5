/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The USB identity (VID:PID, bcdDevice) the emulated reader presents:
 * `--usb-id NAME|VID:PID` for every command that presents a reader.
 * docs/usb-identity.md says why the default is what it is.
 */
#ifndef CCID_AGENT_USB_ID_H
#define CCID_AGENT_USB_ID_H

#include <glib.h>
#include <stdint.h>

#include <ccid-emu/ccid_emu.h>

G_BEGIN_DECLS

struct agent_usb_id {
	uint16_t vendor_id;
	uint16_t product_id;
	uint16_t bcd_device;
	const char *name;       /* preset name, or NULL for a VID:PID given */
	const char *about;      /* one line: whose ID it is, what guests need */
};

/* Fills @id from @text: a preset name (see agent_usb_id_names()) or
 * "VID:PID" as two hexadecimal numbers of 1-4 digits (optional 0x).
 * NULL @text is the default preset.  On error sets G_OPTION_ERROR_BAD_VALUE
 * with a message that names the value and the accepted forms. */
gboolean agent_usb_id_parse(const char *text, struct agent_usb_id *id,
			    GError **error);

/* Writes @id into a device configuration. */
void agent_usb_id_apply(const struct agent_usb_id *id, struct ccid_config *cfg);

/* "scr335 (default), ccid-emu": the preset names, for help texts. */
const char *agent_usb_id_names(void);

/* A serial number string for a reader, stable for the same @seed (e.g.
 * the address it is served on): 8 uppercase hex digits of SHA-256(@seed).
 * Two readers of one VID:PID need different serials: GnuPG's CCID driver
 * names readers VID:PID:SERIAL, and Windows keys a device instance on the
 * serial.  Free with g_free(). */
char *agent_usb_serial_for(const char *seed);

/* Checks a `--serial` value: 1-32 characters 0x21-0x7E other than ','
 * (what USB hosts, Windows' device instance IDs among them, accept). */
gboolean agent_usb_serial_check(const char *serial, GError **error);

/* "04E6:5115 (scr335)" or "1234:ABCD"; free with g_free(). */
char *agent_usb_id_describe(const struct agent_usb_id *id);

G_END_DECLS

#endif /* CCID_AGENT_USB_ID_H */
