/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One real USB device behind usbredirhost, driven from GLib (see
 * ccid_passthrough.h).
 *
 * Re-entrancy rules that shape this file: usbredirhost_set_device() and
 * usbredirhost_close() run libusb's event handling themselves (to reap
 * cancelled transfers), so they are never called from inside libusb's
 * event handling (our fd sources, the hotplug callback, transfer
 * completions that end in our write callback).  Those only record what
 * happened and leave the work to an idle source.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/usbdevice_fs.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <usbredirhost.h>

#include "ccid_passthrough.h"
#include "ccid_usb_source.h"

#ifndef CCID_EMU_VERSION
#define CCID_EMU_VERSION "0"
#endif

struct ccid_passthrough {
	struct ccid_passthrough_callbacks cbs;
	void *user;
	struct ccid_passthrough_options opts;

	libusb_context *ctx;
	ccid_usb_source *usb_source;
	/* usbfs descriptors opened to take interfaces from pcscd
	 * (take_from_pcscd): libusb_close() of a wrapped handle leaves them
	 * open; closed when no handle uses them. */
	GArray *wrapped_fds;            /* int */
	/* pcscd was told the reader's interfaces left (a synthetic udev
	 * "remove"); it is told they are back ("add") on release. */
	gboolean pcscd_told_gone;
	libusb_hotplug_callback_handle hotplug;
	gboolean hotplug_registered;

	/* Identity of our device, to recognise it when it comes back. */
	struct ccid_usb_info info;
	libusb_device *dev;             /* ref held; NULL while unplugged */
	libusb_device_handle *handle;   /* our claim while no peer has it */

	/* The peer. */
	struct usbredirhost *host;
	int fd;
	char *peer;
	guint in_id, out_id;
	gboolean peer_dead;             /* read EOF or write error seen */
	guint detach_idle;

	/* Hotplug events waiting for the main loop. */
	GQueue hotplug_queue;           /* struct hp_event * */
	guint hotplug_idle;
};

struct hp_event {
	libusb_hotplug_event ev;
	libusb_device *dev;             /* ref held */
};

static void pt_log(ccid_passthrough *pt, enum ccid_passthrough_level level,
		   const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void pt_log(ccid_passthrough *pt, enum ccid_passthrough_level level,
		   const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	if (pt->cbs.log == NULL)
		return;
	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	pt->cbs.log(pt->user, level, msg);
}

static void pt_event(ccid_passthrough *pt, enum ccid_passthrough_event ev,
		     const char *detail)
{
	if (pt->cbs.event != NULL)
		pt->cbs.event(pt->user, ev, detail);
}

static char *info_name(const struct ccid_usb_info *info)
{
	return g_strdup_printf("%04x:%04x %s (bus %03u device %03u%s%s)",
			       info->vid, info->pid,
			       info->product != NULL ? info->product : "",
			       info->bus, info->addr,
			       info->serial != NULL ? ", serial " : "",
			       info->serial != NULL ? info->serial : "");
}

/* ---- claiming ------------------------------------------------------------- */

static void release_handle(libusb_device_handle *h)
{
	struct libusb_config_descriptor *cfg = NULL;

	if (h == NULL)
		return;
	if (libusb_get_active_config_descriptor(libusb_get_device(h), &cfg) == 0) {
		/* With auto-detach on, releasing also re-binds a kernel
		 * driver we detached. */
		for (int i = 0; i < cfg->bNumInterfaces; i++)
			libusb_release_interface(
				h, cfg->interface[i].altsetting[0].bInterfaceNumber);
		libusb_free_config_descriptor(cfg);
	}
	libusb_close(h);
}

/* The error for a device someone else holds, with the way out. */
static void set_busy_error(GError **error, const struct ccid_usb_info *info,
			   const char *who)
{
	g_autofree char *name = info_name(info);
	const char *way_out;

	if (strstr(who, "pcscd") != NULL)
		way_out = "stop pcscd first (systemctl stop pcscd.socket "
			  "pcscd.service), and start it again when done";
	else if (strstr(who, "ccid-agent") != NULL)
		way_out = "it is already passed through; stop that "
			  "ccid-agent first";
	else if (strstr(who, "kernel driver") != NULL && strstr(who, "pid") == NULL)
		way_out = "use --force to detach the kernel driver for the "
			  "time of the passthrough";
	else
		way_out = "stop that program first";
	g_set_error(error, CCID_USB_ERROR, CCID_USB_ERROR_BUSY,
		    "%s is in use: %s; %s", name, who, way_out);
}

/* ---- taking a reader from pcscd ------------------------------------------- */

/* Writes @action ("remove", "add") to the uevent file of every
 * interface of @dev: udev passes the synthetic event on like a real one,
 * and pcscd's hotplug (libudev, usb_interface events) removes or adds the
 * reader, so libccid closes its handle instead of polling a reader it
 * lost (which could slip in and claim an interface again while the
 * device resets), and opens it afresh afterwards.  Root only; without it
 * pcscd keeps the reader and recovers on its next transfer after the
 * release. */
static gboolean tell_pcscd(ccid_passthrough *pt, libusb_device *dev,
			   const char *action)
{
	struct libusb_config_descriptor *cfg = NULL;
	gboolean all = TRUE;
	g_autofree char *port = NULL;

	if (libusb_get_active_config_descriptor(dev, &cfg) != 0)
		return FALSE;
	{
		struct ccid_usb_info now;

		ccid_usb_info_fill(dev, NULL, &now);
		port = g_strdup(now.port_path);
		ccid_usb_info_clear(&now);
	}
	for (int i = 0; i < cfg->bNumInterfaces; i++) {
		g_autofree char *path = g_strdup_printf(
			"/sys/bus/usb/devices/%s:%u.%u/uevent", port,
			cfg->bConfigurationValue,
			cfg->interface[i].altsetting[0].bInterfaceNumber);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : write(fd, action, strlen(action));

		if (n != (ssize_t)strlen(action)) {
			pt_log(pt, CCID_PT_LOG_INFO, "cannot tell pcscd the "
			       "reader %s (%s: %s)", strcmp(action, "add") == 0
			       ? "is back" : "left", path, g_strerror(errno));
			all = FALSE;
		}
		if (fd >= 0)
			close(fd);
	}
	libusb_free_config_descriptor(cfg);
	return all;
}

static void close_wrapped_fds(ccid_passthrough *pt)
{
	for (guint i = 0; pt->wrapped_fds != NULL && i < pt->wrapped_fds->len; i++)
		close(g_array_index(pt->wrapped_fds, int, i));
	if (pt->wrapped_fds != NULL)
		g_array_set_size(pt->wrapped_fds, 0);
}

/* Takes every interface of @dev, also those pcscd claimed through usbfs,
 * with USBDEVFS_DISCONNECT_CLAIM on a usbfs descriptor of our own: per
 * interface the kernel drops the other claim and gives it to us in one
 * step, so nothing can get in between (libusb never takes a claim from
 * another process, hence the ioctl).  Only interfaces that are free or
 * usbfs-claimed are taken here (IF_DRIVER "usbfs"); one bound to a kernel
 * driver (with force: the other interfaces of a composite device, a
 * YubiKey's HID) is left to libusb's auto-detach when claim_device()
 * claims it, so that libusb binds the driver again on release.  pcscd's
 * libccid sees its transfers fail until we release the interfaces; its
 * next transfer after that claims them again. */
static libusb_device_handle *take_device(ccid_passthrough *pt,
					 libusb_device *dev,
					 const struct ccid_usb_info *info,
					 GError **error)
{
	struct libusb_config_descriptor *cfg = NULL;
	libusb_device_handle *h = NULL;
	int fd, rc;

	/* No handle uses the descriptors of earlier takes any more. */
	close_wrapped_fds(pt);
	fd = open(info->node, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		g_set_error(error, CCID_USB_ERROR, errno == EACCES ?
			    CCID_USB_ERROR_ACCESS : CCID_USB_ERROR_FAILED,
			    "cannot open %s: %s", info->node, g_strerror(errno));
		return NULL;
	}
	rc = libusb_get_active_config_descriptor(dev, &cfg);
	for (int i = 0; rc == 0 && i < cfg->bNumInterfaces; i++) {
		struct usbdevfs_disconnect_claim dc;
		const char *drv = (guint)i < info->n_interfaces ?
				  info->drivers[i] : NULL;

		if (drv != NULL && strcmp(drv, "usbfs") != 0)
			continue;
		memset(&dc, 0, sizeof(dc));
		dc.interface = cfg->interface[i].altsetting[0].bInterfaceNumber;
		dc.flags = USBDEVFS_DISCONNECT_CLAIM_IF_DRIVER;
		g_strlcpy(dc.driver, "usbfs", sizeof(dc.driver));
		if (ioctl(fd, USBDEVFS_DISCONNECT_CLAIM, &dc) != 0) {
			g_set_error(error, CCID_USB_ERROR, CCID_USB_ERROR_BUSY,
				    "cannot take interface %u of %s from "
				    "pcscd: %s", dc.interface, info->node,
				    g_strerror(errno));
			libusb_free_config_descriptor(cfg);
			close(fd);
			return NULL;
		}
	}
	if (cfg != NULL)
		libusb_free_config_descriptor(cfg);
	rc = libusb_wrap_sys_device(pt->ctx, (intptr_t)fd, &h);
	if (rc != 0) {
		ccid_usb_set_error(error, rc, "cannot use %s", info->node);
		close(fd);
		return NULL;
	}
	g_array_append_val(pt->wrapped_fds, fd);
	pt_log(pt, CCID_PT_LOG_INFO, "took %s from pcscd", info->node);
	if (tell_pcscd(pt, dev, "remove"))
		pt->pcscd_told_gone = TRUE;
	return h;
}

/* Opens @dev and claims every interface of its active configuration.
 * Before touching it, checks who holds it so that nothing is taken
 * silently (libusb would detach a kernel driver without asking). */
static libusb_device_handle *claim_device(ccid_passthrough *pt,
					  libusb_device *dev, GError **error)
{
	struct ccid_usb_info now;
	g_autofree char *who = NULL;
	struct libusb_config_descriptor *cfg = NULL;
	libusb_device_handle *h = NULL;
	gboolean took = FALSE;      /* from pcscd, by take_device() */
	int rc;

	ccid_usb_info_fill(dev, NULL, &now);
	if (ccid_usb_info_held(&now, pt->opts.force, &who)) {
		if (!pt->opts.take_from_pcscd ||
		    !ccid_usb_info_held_only_by(&now, pt->opts.force, "pcscd")) {
			set_busy_error(error, &now, who);
			ccid_usb_info_clear(&now);
			return NULL;
		}
		h = take_device(pt, dev, &now, error);
		if (h == NULL) {
			ccid_usb_info_clear(&now);
			return NULL;
		}
		took = TRUE;
		rc = 0;
	} else {
		rc = libusb_open(dev, &h);
	}
	if (rc != 0) {
		g_autofree char *name = info_name(&now);

		ccid_usb_set_error(error, rc, "cannot open %s (%s)", name,
				   now.node);
		ccid_usb_info_clear(&now);
		return NULL;
	}
	/* Only with --force may a kernel driver go (and come back on
	 * release). */
	libusb_set_auto_detach_kernel_driver(h, pt->opts.force ? 1 : 0);
	rc = libusb_get_active_config_descriptor(dev, &cfg);
	if (rc != 0 && rc != LIBUSB_ERROR_NOT_FOUND) {
		g_autofree char *name = info_name(&now);

		ccid_usb_set_error(error, rc, "cannot read the configuration "
				   "of %s", name);
		libusb_close(h);
		ccid_usb_info_clear(&now);
		return NULL;
	}
	for (int i = 0; cfg != NULL && i < cfg->bNumInterfaces; i++) {
		int ifnum = cfg->interface[i].altsetting[0].bInterfaceNumber;
		const char *drv = (guint)i < now.n_interfaces ?
				  now.drivers[i] : NULL;

		/* An interface take_device() claimed already is ours (usbfs):
		 * libusb's auto-detach would refuse it (it never takes from
		 * usbfs), a plain claim just records it in the handle. */
		if (took)
			libusb_set_auto_detach_kernel_driver(h, pt->opts.force &&
				drv != NULL && strcmp(drv, "usbfs") != 0);
		rc = libusb_claim_interface(h, ifnum);
		if (took)
			libusb_set_auto_detach_kernel_driver(h, pt->opts.force);
		if (rc == 0)
			continue;
		libusb_free_config_descriptor(cfg);
		release_handle(h);
		/* Lost a race with another claimer: name it now. */
		ccid_usb_info_clear(&now);
		ccid_usb_info_fill(dev, NULL, &now);
		g_clear_pointer(&who, g_free);
		if (rc == LIBUSB_ERROR_BUSY &&
		    ccid_usb_info_held(&now, pt->opts.force, &who)) {
			set_busy_error(error, &now, who);
		} else {
			g_autofree char *name = info_name(&now);

			ccid_usb_set_error(error, rc, "cannot claim interface "
					   "%d of %s", ifnum, name);
		}
		ccid_usb_info_clear(&now);
		return NULL;
	}
	if (cfg != NULL)
		libusb_free_config_descriptor(cfg);
	ccid_usb_info_clear(&now);
	return h;
}

/* ---- the peer ------------------------------------------------------------- */

static void usbredir_log(void *priv, int level, const char *msg)
{
	ccid_passthrough *pt = priv;
	enum ccid_passthrough_level l;

	switch (level) {
	case usbredirparser_error:
		l = CCID_PT_LOG_ERROR;
		break;
	case usbredirparser_warning:
		l = CCID_PT_LOG_WARNING;
		break;
	case usbredirparser_info:
		l = CCID_PT_LOG_INFO;
		break;
	default:
		l = CCID_PT_LOG_DEBUG;
		break;
	}
	pt_log(pt, l, "%s", msg);
}

static gboolean detach_idle_cb(gpointer data);

static void schedule_detach(ccid_passthrough *pt)
{
	pt->peer_dead = TRUE;
	if (pt->detach_idle == 0)
		pt->detach_idle = g_idle_add(detach_idle_cb, pt);
}

static int usbredir_read(void *priv, uint8_t *data, int count)
{
	ccid_passthrough *pt = priv;
	ssize_t n;

	if (pt->peer_dead)
		return -1;
	n = recv(pt->fd, data, (size_t)count, MSG_DONTWAIT);
	if (n > 0)
		return (int)n;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	pt->peer_dead = TRUE;
	return -1;
}

static int usbredir_write(void *priv, uint8_t *data, int count)
{
	ccid_passthrough *pt = priv;
	ssize_t n;

	if (pt->peer_dead || pt->fd < 0)
		return -1;
	n = send(pt->fd, data, (size_t)count, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	/* Possibly inside libusb event handling: no teardown here. */
	schedule_detach(pt);
	return -1;
}

static gboolean on_peer_writable(gint fd, GIOCondition cond, gpointer data)
{
	ccid_passthrough *pt = data;

	if (pt->host != NULL && !pt->peer_dead)
		usbredirhost_write_guest_data(pt->host);
	if (pt->host == NULL || pt->peer_dead ||
	    !usbredirhost_has_data_to_write(pt->host)) {
		pt->out_id = 0;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static void arm_writer(ccid_passthrough *pt)
{
	if (pt->out_id == 0 && pt->fd >= 0 && !pt->peer_dead)
		pt->out_id = g_unix_fd_add(pt->fd, G_IO_OUT, on_peer_writable, pt);
}

/* usbredirhost queued output (possibly from a transfer completion). */
static void usbredir_flush(void *priv)
{
	arm_writer(priv);
}

static void peer_detach(ccid_passthrough *pt, gboolean tell_peer,
			unsigned flush_ms);
static void reclaim(ccid_passthrough *pt);

static gboolean on_peer_readable(gint fd, GIOCondition cond, gpointer data)
{
	ccid_passthrough *pt = data;
	int rc;

	if (pt->host == NULL)
		return G_SOURCE_CONTINUE;
	rc = usbredirhost_read_guest_data(pt->host);
	switch (rc) {
	case 0:
		break;
	case usbredirhost_read_parse_error:
		/* usbredirhost skips the bad packet; a hostile peer gains
		 * nothing from it. */
		pt_log(pt, CCID_PT_LOG_WARNING, "malformed usbredir packet from "
		       "%s skipped", pt->peer);
		break;
	case usbredirhost_read_device_rejected:
		pt_log(pt, CCID_PT_LOG_WARNING, "%s rejected the device "
		       "(usb-redir filter)", pt->peer);
		usbredirhost_set_device(pt->host, NULL);
		/* The claim went with the handle; take it again. */
		reclaim(pt);
		break;
	case usbredirhost_read_device_lost:
		/* usbredirhost already told the peer; hotplug brings it back. */
		pt_log(pt, CCID_PT_LOG_INFO, "device lost during a transfer");
		break;
	default:
		pt->peer_dead = TRUE;
		break;
	}
	if (pt->peer_dead) {
		pt->in_id = 0;
		peer_detach(pt, FALSE, 0);
		return G_SOURCE_REMOVE;
	}
	if (usbredirhost_has_data_to_write(pt->host))
		arm_writer(pt);
	return G_SOURCE_CONTINUE;
}

static gboolean detach_idle_cb(gpointer data)
{
	ccid_passthrough *pt = data;

	pt->detach_idle = 0;
	if (pt->host != NULL)
		peer_detach(pt, FALSE, 0);
	return G_SOURCE_REMOVE;
}

/* Blocking write of what usbredirhost still has queued, for at most
 * @flush_ms (the device_disconnect at shutdown). */
static void flush_blocking(ccid_passthrough *pt, unsigned flush_ms)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)flush_ms * 1000;

	while (pt->host != NULL && !pt->peer_dead &&
	       usbredirhost_has_data_to_write(pt->host)) {
		struct pollfd p = { .fd = pt->fd, .events = POLLOUT };
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		usbredirhost_write_guest_data(pt->host);
	}
}

static void peer_detach(ccid_passthrough *pt, gboolean tell_peer,
			unsigned flush_ms)
{
	g_autofree char *peer = g_steal_pointer(&pt->peer);

	if (pt->host == NULL)
		return;
	if (pt->in_id != 0)
		g_source_remove(pt->in_id);
	if (pt->out_id != 0)
		g_source_remove(pt->out_id);
	if (pt->detach_idle != 0)
		g_source_remove(pt->detach_idle);
	pt->in_id = pt->out_id = pt->detach_idle = 0;
	if (tell_peer && !pt->peer_dead) {
		/* device_disconnect first, so the guest sees an unplug
		 * rather than a broken connection. */
		usbredirhost_set_device(pt->host, NULL);
		flush_blocking(pt, flush_ms);
	}
	/* Cancels transfers, releases the interfaces, resets the device,
	 * re-binds kernel drivers, closes the handle. */
	usbredirhost_close(pt->host);
	pt->host = NULL;
	close(pt->fd);
	pt->fd = -1;
	pt->peer_dead = FALSE;
	pt_event(pt, CCID_PT_EVENT_DETACHED, peer != NULL ? peer : "peer");
	/* Ours again until the next peer, unless we are shutting down. */
	if (!tell_peer)
		reclaim(pt);
}

/* Takes the device back after usbredirhost let it go, so it stays ours
 * between peers. */
static void reclaim(ccid_passthrough *pt)
{
	g_autoptr(GError) error = NULL;

	if (pt->dev == NULL || pt->handle != NULL)
		return;
	pt->handle = claim_device(pt, pt->dev, &error);
	if (pt->handle == NULL)
		pt_event(pt, CCID_PT_EVENT_CLAIM_LOST, error->message);
}

gboolean ccid_passthrough_attach_fd(ccid_passthrough *pt, int fd,
				    const char *peer, GError **error)
{
	libusb_device_handle *h;

	if (pt->host != NULL) {
		close(fd);
		g_set_error(error, CCID_USB_ERROR, CCID_USB_ERROR_BUSY,
			    "the device is already passed through to %s",
			    pt->peer);
		return FALSE;
	}
	if (pt->dev != NULL && pt->handle == NULL)
		reclaim(pt);
	pt->fd = fd;
	pt->peer = g_strdup(peer != NULL ? peer : "peer");
	pt->peer_dead = FALSE;
	/* usbredirhost takes our claimed handle (claiming an interface
	 * twice through one handle is a no-op), so there is no moment in
	 * which another program could take the device.  Unplugged: the peer
	 * gets the device when it comes back. */
	h = g_steal_pointer(&pt->handle);
	pt->host = usbredirhost_open_full(
		pt->ctx, h, usbredir_log, usbredir_read, usbredir_write,
		usbredir_flush, NULL, NULL, NULL, NULL, pt,
		"ccid-agent passthrough " CCID_EMU_VERSION,
		pt->opts.verbose ? usbredirparser_debug : usbredirparser_warning,
		0);
	if (pt->host == NULL) {
		/* The handle was closed by usbredirhost. */
		close(fd);
		pt->fd = -1;
		g_clear_pointer(&pt->peer, g_free);
		g_set_error(error, CCID_USB_ERROR, CCID_USB_ERROR_FAILED,
			    "usbredirhost could not take the device (see the "
			    "messages above)");
		reclaim(pt);
		return FALSE;
	}
	pt->in_id = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
				  on_peer_readable, pt);
	arm_writer(pt);
	pt_event(pt, CCID_PT_EVENT_ATTACHED, pt->peer);
	return TRUE;
}

gboolean ccid_passthrough_is_attached(const ccid_passthrough *pt)
{
	return pt->host != NULL;
}

gboolean ccid_passthrough_device_present(const ccid_passthrough *pt)
{
	return pt->dev != NULL;
}

const struct ccid_usb_info *ccid_passthrough_get_info(const ccid_passthrough *pt)
{
	return &pt->info;
}

/* ---- hotplug -------------------------------------------------------------- */

/* Is @dev our device back again?  Same VID:PID and serial; a device
 * without a serial must come back on the same port. */
static gboolean is_our_device(ccid_passthrough *pt, libusb_device *dev)
{
	struct ccid_usb_info now;
	gboolean same;

	ccid_usb_info_fill(dev, NULL, &now);
	same = now.vid == pt->info.vid && now.pid == pt->info.pid &&
	       (pt->info.serial != NULL ?
		g_strcmp0(now.serial, pt->info.serial) == 0 :
		g_strcmp0(now.port_path, pt->info.port_path) == 0);
	ccid_usb_info_clear(&now);
	return same;
}

static void device_left(ccid_passthrough *pt)
{
	g_autofree char *name = info_name(&pt->info);

	if (pt->host != NULL)
		/* The guest sees usb_redir_device_disconnect. */
		usbredirhost_set_device(pt->host, NULL);
	else if (pt->handle != NULL)
		libusb_close(pt->handle);   /* nothing left to release */
	pt->handle = NULL;
	libusb_unref_device(pt->dev);
	pt->dev = NULL;
	pt_event(pt, CCID_PT_EVENT_DEVICE_GONE, name);
}

static void device_arrived(ccid_passthrough *pt, libusb_device *dev)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *name = NULL;

	if (pt->dev != NULL || !is_our_device(pt, dev))
		return;
	pt->dev = libusb_ref_device(dev);
	pt->info.bus = libusb_get_bus_number(dev);
	pt->info.addr = libusb_get_device_address(dev);
	g_free(pt->info.node);
	pt->info.node = g_strdup_printf("/dev/bus/usb/%03u/%03u", pt->info.bus,
					pt->info.addr);
	name = info_name(&pt->info);
	pt->handle = claim_device(pt, dev, &error);
	if (pt->handle == NULL) {
		pt_event(pt, CCID_PT_EVENT_CLAIM_LOST, error->message);
		return;
	}
	if (pt->host != NULL) {
		int st = usbredirhost_set_device(pt->host,
						 g_steal_pointer(&pt->handle));

		if (st != usb_redir_success)
			pt_log(pt, CCID_PT_LOG_ERROR, "cannot hand %s to %s "
			       "again (usbredir status %d)", name, pt->peer, st);
		arm_writer(pt);
	}
	pt_event(pt, CCID_PT_EVENT_DEVICE_BACK, name);
}

static gboolean hotplug_idle_cb(gpointer data)
{
	ccid_passthrough *pt = data;
	struct hp_event *e;

	pt->hotplug_idle = 0;
	while ((e = g_queue_pop_head(&pt->hotplug_queue)) != NULL) {
		if (e->ev == LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT) {
			if (pt->dev != NULL && e->dev == pt->dev)
				device_left(pt);
		} else {
			device_arrived(pt, e->dev);
		}
		libusb_unref_device(e->dev);
		g_free(e);
	}
	return G_SOURCE_REMOVE;
}

/* Runs inside libusb's event handling: only queue. */
static int on_hotplug(libusb_context *ctx, libusb_device *dev,
		      libusb_hotplug_event ev, void *data)
{
	ccid_passthrough *pt = data;
	struct hp_event *e = g_new0(struct hp_event, 1);

	e->ev = ev;
	e->dev = libusb_ref_device(dev);
	g_queue_push_tail(&pt->hotplug_queue, e);
	if (pt->hotplug_idle == 0)
		pt->hotplug_idle = g_idle_add(hotplug_idle_cb, pt);
	return 0;
}

/* ---- life cycle ----------------------------------------------------------- */

static libusb_device *find_one(ccid_passthrough *pt,
			       const struct ccid_usb_selector *sel,
			       GError **error)
{
	g_autofree char *what = ccid_usb_selector_describe(sel);
	libusb_device **list = NULL;
	libusb_device *found = NULL;
	GString *names = NULL;
	unsigned n_found = 0;
	ssize_t n = libusb_get_device_list(pt->ctx, &list);

	if (n < 0) {
		ccid_usb_set_error(error, (int)n, "cannot list USB devices");
		return NULL;
	}
	for (ssize_t i = 0; i < n; i++) {
		struct ccid_usb_info info;
		g_autofree char *name = NULL;

		if (!ccid_usb_selector_matches(sel, list[i]))
			continue;
		ccid_usb_info_fill(list[i], NULL, &info);
		name = info_name(&info);
		ccid_usb_info_clear(&info);
		if (names == NULL)
			names = g_string_new(NULL);
		g_string_append_printf(names, "%s%s", n_found ? "; " : "", name);
		n_found++;
		if (found == NULL)
			found = libusb_ref_device(list[i]);
	}
	libusb_free_device_list(list, 1);
	if (n_found == 0) {
		g_set_error(error, CCID_USB_ERROR, CCID_USB_ERROR_NOT_FOUND,
			    "no USB device matches '%s' ('ccid-agent list-usb' "
			    "shows the readers there are)", what);
		return NULL;
	}
	if (n_found > 1) {
		g_set_error(error, CCID_USB_ERROR, CCID_USB_ERROR_AMBIGUOUS,
			    "%u USB devices match '%s': %s; add the serial "
			    "(VID:PID:SERIAL) or use BUS-ADDR", n_found, what,
			    names->str);
		libusb_unref_device(found);
		g_string_free(names, TRUE);
		return NULL;
	}
	g_string_free(names, TRUE);
	return found;
}

ccid_passthrough *ccid_passthrough_new(const struct ccid_usb_selector *sel,
				       const struct ccid_passthrough_options *opts,
				       const struct ccid_passthrough_callbacks *cbs,
				       void *user, GError **error)
{
	g_autoptr(ccid_passthrough) pt = g_new0(ccid_passthrough, 1);
	int rc;

	pt->fd = -1;
	pt->user = user;
	if (cbs != NULL)
		pt->cbs = *cbs;
	if (opts != NULL)
		pt->opts = *opts;
	g_queue_init(&pt->hotplug_queue);
	pt->wrapped_fds = g_array_new(FALSE, FALSE, sizeof(int));
	rc = libusb_init(&pt->ctx);
	if (rc != 0) {
		pt->ctx = NULL;
		ccid_usb_set_error(error, rc, "cannot initialise libusb");
		return NULL;
	}
	pt->dev = find_one(pt, sel, error);
	if (pt->dev == NULL)
		return NULL;
	ccid_usb_info_fill(pt->dev, NULL, &pt->info);
	pt->handle = claim_device(pt, pt->dev, error);
	if (pt->handle == NULL)
		return NULL;
	{
		gboolean late = FALSE;

		pt->usb_source = ccid_usb_source_new(pt->ctx, &late);
		if (late)
			pt_log(pt, CCID_PT_LOG_WARNING, "libusb needs timeouts "
			       "handled separately; transfer timeouts may be "
			       "late");
	}
	if (libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) {
		rc = libusb_hotplug_register_callback(
			pt->ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED |
			LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT, 0, pt->info.vid,
			pt->info.pid, LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug, pt,
			&pt->hotplug);
		pt->hotplug_registered = rc == 0;
		if (rc != 0)
			pt_log(pt, CCID_PT_LOG_WARNING, "no hotplug events "
			       "(%s): an unplugged device is not taken back",
			       libusb_strerror(rc));
	} else {
		pt_log(pt, CCID_PT_LOG_WARNING, "this libusb has no hotplug "
		       "support: an unplugged device is not taken back");
	}
	return g_steal_pointer(&pt);
}

void ccid_passthrough_free_full(ccid_passthrough *pt, unsigned flush_ms)
{
	struct hp_event *e;

	if (pt == NULL)
		return;
	if (pt->host != NULL)
		peer_detach(pt, TRUE, flush_ms);
	if (pt->hotplug_registered)
		libusb_hotplug_deregister_callback(pt->ctx, pt->hotplug);
	if (pt->hotplug_idle != 0)
		g_source_remove(pt->hotplug_idle);
	while ((e = g_queue_pop_head(&pt->hotplug_queue)) != NULL) {
		libusb_unref_device(e->dev);
		g_free(e);
	}
	release_handle(pt->handle);
	pt->handle = NULL;
	close_wrapped_fds(pt);
	/* Released: pcscd may have the reader again. */
	if (pt->pcscd_told_gone && pt->dev != NULL)
		tell_pcscd(pt, pt->dev, "add");
	if (pt->dev != NULL)
		libusb_unref_device(pt->dev);
	g_clear_pointer(&pt->usb_source, ccid_usb_source_free);
	if (pt->ctx != NULL)
		libusb_exit(pt->ctx);
	close_wrapped_fds(pt);
	if (pt->wrapped_fds != NULL)
		g_array_unref(pt->wrapped_fds);
	ccid_usb_info_clear(&pt->info);
	g_free(pt->peer);
	g_free(pt);
}

void ccid_passthrough_free(ccid_passthrough *pt)
{
	ccid_passthrough_free_full(pt, 0);
}
