/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Real USB devices for passthrough: choosing one ("VID:PID[:SERIAL]" or
 * "BUS-ADDR"), describing it (strings, interfaces, CCID or not) and
 * finding out who holds it: a kernel driver bound to an interface, or a
 * process that claimed an interface through usbfs (libccid inside pcscd
 * does), named by scanning /proc/PID/fd for the device node.
 *
 * Linux only (sysfs and usbfs); elsewhere the holder checks report
 * nothing and libusb's own claim is the only guard.
 */
#ifndef CCID_EMU_CCID_USB_H
#define CCID_EMU_CCID_USB_H

#include <glib.h>
#include <libusb.h>
#include <sys/types.h>

G_BEGIN_DECLS

#define CCID_USB_ERROR (ccid_usb_error_quark())
GQuark ccid_usb_error_quark(void);

enum ccid_usb_error_code {
	CCID_USB_ERROR_SELECTOR,   /* malformed --device value */
	CCID_USB_ERROR_NOT_FOUND,  /* no such device */
	CCID_USB_ERROR_AMBIGUOUS,  /* several devices match */
	CCID_USB_ERROR_BUSY,       /* held by a driver or another process */
	CCID_USB_ERROR_ACCESS,     /* no permission on the device node */
	CCID_USB_ERROR_GONE,       /* unplugged */
	CCID_USB_ERROR_FAILED,     /* any other libusb failure */
};

/* USB interface class of smart-card readers (CCID). */
#define CCID_USB_CLASS_CCID 0x0b

enum ccid_usb_selector_kind {
	CCID_USB_SELECT_ID,        /* VID:PID[:SERIAL] */
	CCID_USB_SELECT_BUS_ADDR,  /* BUS-ADDR, decimal */
};

struct ccid_usb_selector {
	enum ccid_usb_selector_kind kind;
	guint16 vid, pid;
	char *serial;              /* NULL: any */
	guint8 bus, addr;
};

/* "VID:PID" (1-4 hex digits each, optional 0x), "VID:PID:SERIAL" (the
 * serial is everything after the second colon, compared exactly) or
 * "BUS-ADDR" (decimal, as lsusb prints them: "001-004" or "1-4"). */
gboolean ccid_usb_selector_parse(const char *spec, struct ccid_usb_selector *sel,
				 GError **error);
void ccid_usb_selector_clear(struct ccid_usb_selector *sel);
char *ccid_usb_selector_describe(const struct ccid_usb_selector *sel);

/* Something keeping the device from us. */
struct ccid_usb_holder {
	int interface;             /* -1: the device node is open, no claim */
	char *driver;              /* kernel driver bound ("usbfs": a process) */
	GArray *pids;              /* pid_t of processes with the node open */
	char *who;                 /* "pcscd (pid 812)", "kernel driver usbhid" */
};

struct ccid_usb_info {
	guint16 vid, pid;
	guint8 bus, addr;
	char *port_path;           /* sysfs name, "1-2.3" */
	char *node;                /* /dev/bus/usb/001/004 */
	char *manufacturer, *product, *serial;   /* may be NULL */
	gboolean is_ccid;          /* an interface of class 0x0B */
	guint n_interfaces;
	/* Per interface of the active configuration: bound driver name or
	 * NULL.  n_interfaces elements. */
	char **drivers;
	/* Processes other than us with the node open. */
	GArray *open_pids;         /* pid_t */
};

/* Fills @info from @dev; strings need the device opened (done here with
 * a throw-away handle when @handle is NULL; failures leave them NULL). */
void ccid_usb_info_fill(libusb_device *dev, libusb_device_handle *handle,
			struct ccid_usb_info *info);
void ccid_usb_info_clear(struct ccid_usb_info *info);
/* Reads again only what changes without a replug: the interfaces, their
 * drivers and the processes with the node open (@info filled before). */
void ccid_usb_info_fill_holders(libusb_device *dev, struct ccid_usb_info *info);

/* TRUE when someone else holds the device: a kernel driver on one of its
 * interfaces (unless @ignore_kernel_drivers) or a process that claimed
 * one (driver "usbfs") and is not us.  @who gets "pcscd (pid 812) has
 * claimed interface 0" and the like, several joined by "; ". */
gboolean ccid_usb_info_held(const struct ccid_usb_info *info,
			    gboolean ignore_kernel_drivers, char **who);
/* TRUE when the device is held (as ccid_usb_info_held() says) only
 * through usbfs claims, and every process with its node open is named
 * @comm (as in /proc/PID/comm): "pcscd". */
gboolean ccid_usb_info_held_only_by(const struct ccid_usb_info *info,
				    gboolean ignore_kernel_drivers,
				    const char *comm);
/* The name of process @pid (/proc/PID/comm), or NULL. */
char *ccid_usb_pid_name(pid_t pid);
/* "pcscd (pid 812), ccid-agent (pid 900)" for the processes in @pids. */
char *ccid_usb_describe_pids(const GArray *pids);

/* The devices matching @sel (all when @sel is NULL), only those with a
 * CCID interface when @ccid_only.  Array of struct ccid_usb_info *. */
GPtrArray *ccid_usb_scan(libusb_context *ctx, const struct ccid_usb_selector *sel,
			 gboolean ccid_only, GError **error);

/* Does @dev match @sel?  Reads the serial string through @handle (or a
 * throw-away one) only when the selector has one. */
gboolean ccid_usb_selector_matches(const struct ccid_usb_selector *sel,
				   libusb_device *dev);

/* The one place libusb errors become something else: a usbredir status
 * (usb_redir_success, _stall, _ioerror, ...), a CCID_USB_ERROR code, and
 * a hint for the user.  Any value, also unknown ones, maps. */
struct ccid_usb_error_map {
	int libusb_error;
	int redir_status;
	enum ccid_usb_error_code code;
	const char *hint;          /* "" when there is nothing to add */
};
const struct ccid_usb_error_map *ccid_usb_error_lookup(int libusb_error);
int ccid_usb_status_from_libusb(int libusb_error);
/* Sets @error from a libusb error: "WHAT: LIBUSB MESSAGE (HINT)". */
void ccid_usb_set_error(GError **error, int libusb_error, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);

G_END_DECLS

#endif /* CCID_EMU_CCID_USB_H */
