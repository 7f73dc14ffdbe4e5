/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * USB reader discovery for the daemon: libusb hotplug events (arrival and
 * removal) of devices with a CCID interface (class 0x0B), also composite
 * devices where CCID is one interface of several, on the thread-default
 * main context (libusb's descriptors are GLib sources, ccid_usb_source.h;
 * no thread).  Each reader is reported with a stable id that survives a
 * replug (the serial number, else the port path), its model, and the
 * host processes holding it (a usbfs claim: libccid inside pcscd, another
 * passthrough), looked at again when asked (daemon_usb_refresh) and every
 * DAEMON_USB_HOLDERS_MS, because a process taking a device sends no
 * event.
 *
 * The daemon turns each reader into a passthrough entry "<model>" beside
 * the "Shared <model>" entry of its PC/SC reader.
 */
#ifndef CCID_DAEMON_USB_H
#define CCID_DAEMON_USB_H

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

#define DAEMON_USB_HOLDERS_MS 2000u

struct daemon_usb_holder {
	char *name;            /* /proc/PID/comm, "?" when unknown */
	pid_t pid;
};

struct daemon_usb_reader {
	char *id;              /* "usb-1209-cc1d-SERIAL", "usb-1209-cc1d-port-1-2" */
	char *model;           /* the product string, else "VID:PID" */
	char *manufacturer;    /* may be NULL */
	char *serial;          /* may be NULL */
	char *port_path;       /* "1-2.3" */
	char *selector;        /* "BUS-ADDR" for ccid_usb_selector_parse() */
	guint16 vid, pid;
	guint8 bus, addr;
	gboolean present;      /* FALSE: unplugged (the last report of it) */
	/* Processes (not this one) holding a usbfs claim on it:
	 * struct daemon_usb_holder. */
	GArray *holders;
	/* A kernel driver bound to one of its interfaces, or NULL. */
	char *kernel_driver;
};

/* A reader arrived, left, or its holders changed; @r is valid during the
 * call only. */
typedef void (*daemon_usb_fn)(void *user, const struct daemon_usb_reader *r);

typedef struct daemon_usb daemon_usb;

/* Reports the readers there are from an idle callback, then changes.
 * NULL with @error when libusb cannot start (no USB: the daemon goes on
 * without passthrough entries). */
daemon_usb *daemon_usb_new(daemon_usb_fn changed, void *user, GError **error);
/* Accepts NULL; no callback runs after it returns. */
void daemon_usb_free(daemon_usb *u);
/* Looks at every present reader's holders again now; reports changes. */
void daemon_usb_refresh(daemon_usb *u);

/* "pcscd (pid 812), qemu (pid 900)", or "" (g_free). */
char *daemon_usb_describe_holders(const GArray *holders);

G_END_DECLS

#endif /* CCID_DAEMON_USB_H */
