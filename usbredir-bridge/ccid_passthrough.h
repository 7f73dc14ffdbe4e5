/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Passthrough: one real USB device (normally a smart-card reader) handed
 * whole to one usbredir peer (QEMU's usb-redir) with usbredirhost, on the
 * thread-default GMainContext (libusb's file descriptors are GLib sources,
 * so no thread and no locks).
 *
 * The device is claimed from creation to destruction, not only while a
 * peer is attached: every interface is claimed through usbfs, so a second
 * passthrough, pcscd or anything else using libusb cannot take it.  When
 * a peer goes away usbredirhost releases the interfaces, resets the device
 * and re-attaches kernel drivers; it is claimed again right after.  On
 * destruction everything is released and kernel drivers detached with
 * force are bound again.
 *
 * Unplug while claimed: the peer gets usb_redir_device_disconnect, the
 * passthrough stays up and waits (libusb hotplug events, no polling) for a
 * device with the same VID:PID and serial (without a serial: on the same
 * port) and hands it to the peer again.
 */
#ifndef CCID_EMU_CCID_PASSTHROUGH_H
#define CCID_EMU_CCID_PASSTHROUGH_H

#include <glib.h>

#include "ccid_usb.h"

G_BEGIN_DECLS

enum ccid_passthrough_event {
	CCID_PT_EVENT_ATTACHED,     /* a peer connected; detail: the peer */
	CCID_PT_EVENT_DETACHED,     /* the peer went away; detail: the peer */
	CCID_PT_EVENT_DEVICE_GONE,  /* unplugged; detail: the device */
	CCID_PT_EVENT_DEVICE_BACK,  /* plugged in again and claimed */
	CCID_PT_EVENT_CLAIM_LOST,   /* could not claim it again; detail:
				     * why.  The device is not ours now. */
};

enum ccid_passthrough_level {
	CCID_PT_LOG_ERROR,
	CCID_PT_LOG_WARNING,
	CCID_PT_LOG_INFO,
	CCID_PT_LOG_DEBUG,
};

struct ccid_passthrough_callbacks {
	void (*event)(void *user, enum ccid_passthrough_event ev,
		      const char *detail);
	/* usbredirhost's and our own log lines; may be NULL. */
	void (*log)(void *user, enum ccid_passthrough_level level,
		    const char *msg);
};

struct ccid_passthrough_options {
	/* Take the device from a kernel driver bound to it (re-bound on
	 * release).  A device another process claimed is never taken. */
	gboolean force;
	/* Take the device from pcscd when pcscd (libccid) is the only
	 * process holding it: its usbfs claims move to us atomically
	 * (USBDEVFS_DISCONNECT_CLAIM); pcscd's transfers fail while we hold
	 * it and claim it again after we release it.  The daemon does this
	 * for passthrough entries. */
	gboolean take_from_pcscd;
	/* Pass usbredirhost's debug messages to the log callback. */
	gboolean verbose;
};

typedef struct ccid_passthrough ccid_passthrough;

/* Finds the one device @sel names and claims it.  Errors (CCID_USB_ERROR):
 * NOT_FOUND, AMBIGUOUS (naming the candidates), BUSY (naming the holder
 * and the way out), ACCESS.  @cbs and @opts are copied; @opts may be
 * NULL. */
ccid_passthrough *ccid_passthrough_new(const struct ccid_usb_selector *sel,
				       const struct ccid_passthrough_options *opts,
				       const struct ccid_passthrough_callbacks *cbs,
				       void *user, GError **error);
/* Accepts NULL.  Tells an attached peer the device is gone, waits up to
 * @flush_ms for that to be written, releases the device. */
void ccid_passthrough_free_full(ccid_passthrough *pt, unsigned flush_ms);
void ccid_passthrough_free(ccid_passthrough *pt);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_passthrough, ccid_passthrough_free)

/* The claimed device as found at creation. */
const struct ccid_usb_info *ccid_passthrough_get_info(const ccid_passthrough *pt);

/* Starts a usbredir session on connected socket @fd (ownership taken in
 * every case); CCID_USB_ERROR_BUSY while a peer is attached. */
gboolean ccid_passthrough_attach_fd(ccid_passthrough *pt, int fd,
				    const char *peer, GError **error);
gboolean ccid_passthrough_is_attached(const ccid_passthrough *pt);
/* FALSE while unplugged. */
gboolean ccid_passthrough_device_present(const ccid_passthrough *pt);

G_END_DECLS

#endif /* CCID_EMU_CCID_PASSTHROUGH_H */
