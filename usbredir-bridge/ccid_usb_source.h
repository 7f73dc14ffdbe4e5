/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A libusb context driven by the thread-default GMainContext: libusb's
 * file descriptors (usbfs, its event pipe, the timerfd of its timeouts,
 * the hotplug monitor) become GLib fd sources that run libusb's event
 * handling, so transfers and hotplug callbacks complete on the main loop
 * with no thread of our own.  Used by passthrough sessions and by the
 * daemon's USB reader discovery.
 */
#ifndef CCID_EMU_CCID_USB_SOURCE_H
#define CCID_EMU_CCID_USB_SOURCE_H

#include <glib.h>
#include <libusb.h>

G_BEGIN_DECLS

typedef struct ccid_usb_source ccid_usb_source;

/* Starts watching @ctx's descriptors (the caller keeps @ctx, which must
 * outlive the source).  *@timeouts_late is set when this libusb needs
 * timeouts handled apart from its descriptors (not on Linux): transfer
 * timeouts may then be late. */
ccid_usb_source *ccid_usb_source_new(libusb_context *ctx,
				     gboolean *timeouts_late);
/* Accepts NULL.  Removes every source. */
void ccid_usb_source_free(ccid_usb_source *src);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_usb_source, ccid_usb_source_free)

G_END_DECLS

#endif /* CCID_EMU_CCID_USB_SOURCE_H */
