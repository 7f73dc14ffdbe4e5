/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Choosing, describing and checking real USB devices (see ccid_usb.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <usbredirproto.h>

#include "ccid_usb.h"

G_DEFINE_QUARK(ccid-usb-error-quark, ccid_usb_error)

/* ---- libusb errors: the one table --------------------------------------- */

static const struct ccid_usb_error_map error_map[] = {
	{ LIBUSB_SUCCESS, usb_redir_success, CCID_USB_ERROR_FAILED, "" },
	{ LIBUSB_ERROR_IO, usb_redir_ioerror, CCID_USB_ERROR_FAILED, "" },
	{ LIBUSB_ERROR_INVALID_PARAM, usb_redir_inval, CCID_USB_ERROR_FAILED,
	  "" },
	{ LIBUSB_ERROR_ACCESS, usb_redir_ioerror, CCID_USB_ERROR_ACCESS,
	  "run as root, or give the user write access to the device node "
	  "with a udev rule" },
	{ LIBUSB_ERROR_NO_DEVICE, usb_redir_ioerror, CCID_USB_ERROR_GONE,
	  "the device was unplugged" },
	{ LIBUSB_ERROR_NOT_FOUND, usb_redir_inval, CCID_USB_ERROR_NOT_FOUND,
	  "" },
	{ LIBUSB_ERROR_BUSY, usb_redir_ioerror, CCID_USB_ERROR_BUSY,
	  "another program or driver holds it" },
	{ LIBUSB_ERROR_TIMEOUT, usb_redir_timeout, CCID_USB_ERROR_FAILED, "" },
	{ LIBUSB_ERROR_OVERFLOW, usb_redir_babble, CCID_USB_ERROR_FAILED, "" },
	{ LIBUSB_ERROR_PIPE, usb_redir_stall, CCID_USB_ERROR_FAILED, "" },
	{ LIBUSB_ERROR_INTERRUPTED, usb_redir_cancelled, CCID_USB_ERROR_FAILED,
	  "" },
	{ LIBUSB_ERROR_NO_MEM, usb_redir_ioerror, CCID_USB_ERROR_FAILED, "" },
	{ LIBUSB_ERROR_NOT_SUPPORTED, usb_redir_inval, CCID_USB_ERROR_FAILED,
	  "" },
	{ LIBUSB_ERROR_OTHER, usb_redir_ioerror, CCID_USB_ERROR_FAILED, "" },
};

/* Unknown values (a newer libusb) are I/O errors. */
static const struct ccid_usb_error_map error_unknown = {
	0, usb_redir_ioerror, CCID_USB_ERROR_FAILED, ""
};

const struct ccid_usb_error_map *ccid_usb_error_lookup(int libusb_error)
{
	for (size_t i = 0; i < G_N_ELEMENTS(error_map); i++)
		if (error_map[i].libusb_error == libusb_error)
			return &error_map[i];
	return &error_unknown;
}

int ccid_usb_status_from_libusb(int libusb_error)
{
	return ccid_usb_error_lookup(libusb_error)->redir_status;
}

void ccid_usb_set_error(GError **error, int libusb_error, const char *fmt, ...)
{
	const struct ccid_usb_error_map *m = ccid_usb_error_lookup(libusb_error);
	g_autofree char *what = NULL;
	va_list ap;

	va_start(ap, fmt);
	what = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, CCID_USB_ERROR, m->code, "%s: %s%s%s%s", what,
		    libusb_strerror(libusb_error), *m->hint ? " (" : "", m->hint,
		    *m->hint ? ")" : "");
}

/* ---- selectors ------------------------------------------------------------ */

static gboolean parse_hex16(const char *s, size_t len, guint16 *out)
{
	char buf[8];
	char *end = NULL;
	unsigned long v;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		len -= 2;
	}
	if (len == 0 || len > 4)
		return FALSE;
	memcpy(buf, s, len);
	buf[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (!g_ascii_isxdigit(buf[i]))
			return FALSE;
	v = strtoul(buf, &end, 16);
	*out = (guint16)v;
	return TRUE;
}

static gboolean parse_dec8(const char *s, size_t len, guint8 *out)
{
	unsigned v = 0;

	if (len == 0 || len > 3)
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		if (!g_ascii_isdigit(s[i]))
			return FALSE;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 255)
		return FALSE;
	*out = (guint8)v;
	return TRUE;
}

gboolean ccid_usb_selector_parse(const char *spec, struct ccid_usb_selector *sel,
				 GError **error)
{
	const char *c1, *c2, *dash;

	memset(sel, 0, sizeof(*sel));
	if (spec == NULL || *spec == '\0') {
		g_set_error(error, CCID_USB_ERROR, CCID_USB_ERROR_SELECTOR,
			    "empty device; use VID:PID[:SERIAL] or BUS-ADDR "
			    "(see 'ccid-agent list-usb')");
		return FALSE;
	}
	c1 = strchr(spec, ':');
	if (c1 != NULL) {
		c2 = strchr(c1 + 1, ':');
		if (!parse_hex16(spec, (size_t)(c1 - spec), &sel->vid) ||
		    !parse_hex16(c1 + 1, c2 != NULL ? (size_t)(c2 - c1 - 1) :
				 strlen(c1 + 1), &sel->pid)) {
			g_set_error(error, CCID_USB_ERROR,
				    CCID_USB_ERROR_SELECTOR,
				    "'%s': VID and PID must be 1 to 4 hex "
				    "digits, as in 08e6:3437", spec);
			return FALSE;
		}
		if (c2 != NULL && c2[1] == '\0') {
			g_set_error(error, CCID_USB_ERROR,
				    CCID_USB_ERROR_SELECTOR,
				    "'%s': the serial after the second ':' is "
				    "empty", spec);
			return FALSE;
		}
		sel->kind = CCID_USB_SELECT_ID;
		sel->serial = c2 != NULL ? g_strdup(c2 + 1) : NULL;
		return TRUE;
	}
	dash = strchr(spec, '-');
	if (dash == NULL ||
	    !parse_dec8(spec, (size_t)(dash - spec), &sel->bus) ||
	    !parse_dec8(dash + 1, strlen(dash + 1), &sel->addr) ||
	    sel->bus == 0 || sel->addr == 0) {
		g_set_error(error, CCID_USB_ERROR, CCID_USB_ERROR_SELECTOR,
			    "'%s': expected VID:PID[:SERIAL] (hex, e.g. "
			    "08e6:3437) or BUS-ADDR (decimal, e.g. 001-004)",
			    spec);
		return FALSE;
	}
	sel->kind = CCID_USB_SELECT_BUS_ADDR;
	return TRUE;
}

void ccid_usb_selector_clear(struct ccid_usb_selector *sel)
{
	g_clear_pointer(&sel->serial, g_free);
}

char *ccid_usb_selector_describe(const struct ccid_usb_selector *sel)
{
	if (sel->kind == CCID_USB_SELECT_BUS_ADDR)
		return g_strdup_printf("%03u-%03u", sel->bus, sel->addr);
	if (sel->serial != NULL)
		return g_strdup_printf("%04x:%04x:%s", sel->vid, sel->pid,
				       sel->serial);
	return g_strdup_printf("%04x:%04x", sel->vid, sel->pid);
}

/* ---- device information ------------------------------------------------- */

static char *read_string(libusb_device_handle *h, guint8 index)
{
	unsigned char buf[256];
	int n;

	if (h == NULL || index == 0)
		return NULL;
	n = libusb_get_string_descriptor_ascii(h, index, buf, sizeof(buf));
	if (n <= 0)
		return NULL;
	/* Device strings are hostile: keep printable ASCII only. */
	for (int i = 0; i < n; i++)
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			buf[i] = '?';
	return g_strndup((const char *)buf, (gsize)n);
}

static char *port_path(libusb_device *dev)
{
	guint8 ports[8];
	int n = libusb_get_port_numbers(dev, ports, G_N_ELEMENTS(ports));
	GString *s = g_string_new(NULL);

	g_string_append_printf(s, "%u", libusb_get_bus_number(dev));
	if (n <= 0) {
		/* A root hub: sysfs calls it usbN. */
		g_string_printf(s, "usb%u", libusb_get_bus_number(dev));
		return g_string_free(s, FALSE);
	}
	for (int i = 0; i < n; i++)
		g_string_append_printf(s, "%c%u", i == 0 ? '-' : '.', ports[i]);
	return g_string_free(s, FALSE);
}

/* The driver bound to interface @ifnum in configuration @cfg, from
 * sysfs ("usbfs" when a process claimed it), or NULL. */
static char *interface_driver(const char *port, guint8 cfg, guint8 ifnum)
{
	g_autofree char *link = g_strdup_printf(
		"/sys/bus/usb/devices/%s:%u.%u/driver", port, cfg, ifnum);
	g_autofree char *target = g_file_read_link(link, NULL);

	return target != NULL ? g_path_get_basename(target) : NULL;
}

/* Processes other than us with @node open; matched by device number so
 * that other names of the node count too. */
static GArray *node_openers(const char *node)
{
	GArray *pids = g_array_new(FALSE, FALSE, sizeof(pid_t));
	struct stat nst;
	DIR *proc;
	struct dirent *de;
	pid_t self = getpid();

	if (stat(node, &nst) != 0 || !S_ISCHR(nst.st_mode))
		return pids;
	proc = opendir("/proc");
	if (proc == NULL)
		return pids;
	while ((de = readdir(proc)) != NULL) {
		g_autofree char *fddir = NULL;
		DIR *fds;
		struct dirent *fe;
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end != '\0' || pid <= 0 || pid == self)
			continue;
		fddir = g_strdup_printf("/proc/%ld/fd", pid);
		fds = opendir(fddir);
		if (fds == NULL)
			continue;   /* gone, or another user's (not root) */
		while ((fe = readdir(fds)) != NULL) {
			g_autofree char *p = NULL;
			struct stat st;

			if (fe->d_name[0] == '.')
				continue;
			p = g_strdup_printf("%s/%s", fddir, fe->d_name);
			if (stat(p, &st) == 0 && S_ISCHR(st.st_mode) &&
			    st.st_rdev == nst.st_rdev) {
				pid_t v = (pid_t)pid;

				g_array_append_val(pids, v);
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return pids;
}

char *ccid_usb_pid_name(pid_t pid)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/comm", (int)pid);
	char *comm = NULL;

	if (!g_file_get_contents(path, &comm, NULL, NULL))
		return NULL;
	g_strchomp(comm);
	if (*comm == '\0')
		g_clear_pointer(&comm, g_free);
	return comm;
}

gboolean ccid_usb_info_held_only_by(const struct ccid_usb_info *info,
				    gboolean ignore_kernel_drivers,
				    const char *comm)
{
	gboolean usbfs = FALSE;

	for (guint i = 0; i < info->n_interfaces; i++) {
		const char *drv = info->drivers[i];

		if (drv == NULL)
			continue;
		if (strcmp(drv, "usbfs") == 0)
			usbfs = TRUE;
		else if (!ignore_kernel_drivers)
			return FALSE;
	}
	if (!usbfs || info->open_pids == NULL || info->open_pids->len == 0)
		return FALSE;
	for (guint i = 0; i < info->open_pids->len; i++) {
		g_autofree char *name = ccid_usb_pid_name(
			g_array_index(info->open_pids, pid_t, i));

		if (g_strcmp0(name, comm) != 0)
			return FALSE;
	}
	return TRUE;
}

char *ccid_usb_describe_pids(const GArray *pids)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; pids != NULL && i < pids->len; i++) {
		pid_t pid = g_array_index(pids, pid_t, i);
		g_autofree char *path = g_strdup_printf("/proc/%d/comm", pid);
		g_autofree char *comm = NULL;

		if (g_file_get_contents(path, &comm, NULL, NULL))
			g_strchomp(comm);
		g_string_append_printf(s, "%s%s (pid %d)", i ? ", " : "",
				       comm != NULL && *comm ? comm : "?", pid);
	}
	return g_string_free(s, FALSE);
}

void ccid_usb_info_fill(libusb_device *dev, libusb_device_handle *handle,
			struct ccid_usb_info *info)
{
	struct libusb_device_descriptor dd;
	libusb_device_handle *own = NULL;

	memset(info, 0, sizeof(*info));
	if (libusb_get_device_descriptor(dev, &dd) == 0) {
		info->vid = dd.idVendor;
		info->pid = dd.idProduct;
	}
	info->bus = libusb_get_bus_number(dev);
	info->addr = libusb_get_device_address(dev);
	info->port_path = port_path(dev);
	info->node = g_strdup_printf("/dev/bus/usb/%03u/%03u", info->bus,
				     info->addr);
	if (handle == NULL && libusb_open(dev, &own) == 0)
		handle = own;
	info->manufacturer = read_string(handle, dd.iManufacturer);
	info->product = read_string(handle, dd.iProduct);
	info->serial = read_string(handle, dd.iSerialNumber);
	if (own != NULL)
		libusb_close(own);

	ccid_usb_info_fill_holders(dev, info);
}

void ccid_usb_info_fill_holders(libusb_device *dev, struct ccid_usb_info *info)
{
	struct libusb_config_descriptor *cfg = NULL;

	if (info->drivers != NULL) {
		for (guint i = 0; i < info->n_interfaces; i++)
			g_free(info->drivers[i]);
		g_clear_pointer(&info->drivers, g_free);
	}
	info->n_interfaces = 0;
	info->is_ccid = FALSE;
	if (info->open_pids != NULL)
		g_array_unref(info->open_pids);
	info->open_pids = NULL;
	if (libusb_get_active_config_descriptor(dev, &cfg) == 0) {
		info->n_interfaces = cfg->bNumInterfaces;
		info->drivers = g_new0(char *, info->n_interfaces + 1);
		for (guint i = 0; i < info->n_interfaces; i++) {
			const struct libusb_interface *itf = &cfg->interface[i];

			if (itf->num_altsetting < 1)
				continue;
			for (int a = 0; a < itf->num_altsetting; a++)
				if (itf->altsetting[a].bInterfaceClass ==
				    CCID_USB_CLASS_CCID)
					info->is_ccid = TRUE;
			info->drivers[i] = interface_driver(
				info->port_path, cfg->bConfigurationValue,
				itf->altsetting[0].bInterfaceNumber);
		}
		libusb_free_config_descriptor(cfg);
	}
	info->open_pids = node_openers(info->node);
}

void ccid_usb_info_clear(struct ccid_usb_info *info)
{
	g_clear_pointer(&info->port_path, g_free);
	g_clear_pointer(&info->node, g_free);
	g_clear_pointer(&info->manufacturer, g_free);
	g_clear_pointer(&info->product, g_free);
	g_clear_pointer(&info->serial, g_free);
	if (info->drivers != NULL) {
		for (guint i = 0; i < info->n_interfaces; i++)
			g_free(info->drivers[i]);
		g_clear_pointer(&info->drivers, g_free);
	}
	if (info->open_pids != NULL)
		g_array_unref(info->open_pids);
	info->open_pids = NULL;
}

static void info_free(gpointer p)
{
	ccid_usb_info_clear(p);
	g_free(p);
}

gboolean ccid_usb_info_held(const struct ccid_usb_info *info,
			    gboolean ignore_kernel_drivers, char **who)
{
	g_autoptr(GString) s = g_string_new(NULL);
	g_autofree char *procs = ccid_usb_describe_pids(info->open_pids);
	gboolean claimed_reported = FALSE;

	for (guint i = 0; i < info->n_interfaces; i++) {
		const char *drv = info->drivers[i];

		if (drv == NULL)
			continue;
		if (strcmp(drv, "usbfs") == 0) {
			/* We cannot tell which opener claimed which
			 * interface: name them all, once. */
			if (claimed_reported)
				continue;
			claimed_reported = TRUE;
			if (*procs)
				g_string_append_printf(
					s, "%s%s %s claimed interface %u",
					s->len ? "; " : "", procs,
					info->open_pids->len > 1 ? "(one of "
					"them) has" : "has", i);
			else
				g_string_append_printf(
					s, "%sinterface %u is claimed by a "
					"process this user cannot see",
					s->len ? "; " : "", i);
		} else if (!ignore_kernel_drivers) {
			g_string_append_printf(s, "%skernel driver '%s' is "
					       "bound to interface %u",
					       s->len ? "; " : "", drv, i);
		}
	}
	if (who != NULL)
		*who = s->len ? g_strdup(s->str) : NULL;
	return s->len > 0;
}

gboolean ccid_usb_selector_matches(const struct ccid_usb_selector *sel,
				   libusb_device *dev)
{
	struct libusb_device_descriptor dd;
	libusb_device_handle *h = NULL;
	g_autofree char *serial = NULL;

	if (sel->kind == CCID_USB_SELECT_BUS_ADDR)
		return libusb_get_bus_number(dev) == sel->bus &&
		       libusb_get_device_address(dev) == sel->addr;
	if (libusb_get_device_descriptor(dev, &dd) != 0 ||
	    dd.idVendor != sel->vid || dd.idProduct != sel->pid)
		return FALSE;
	if (sel->serial == NULL)
		return TRUE;
	if (libusb_open(dev, &h) != 0)
		return FALSE;
	serial = read_string(h, dd.iSerialNumber);
	libusb_close(h);
	return serial != NULL && strcmp(serial, sel->serial) == 0;
}

GPtrArray *ccid_usb_scan(libusb_context *ctx, const struct ccid_usb_selector *sel,
			 gboolean ccid_only, GError **error)
{
	libusb_device **list = NULL;
	ssize_t n = libusb_get_device_list(ctx, &list);
	GPtrArray *out;

	if (n < 0) {
		ccid_usb_set_error(error, (int)n, "cannot list USB devices");
		return NULL;
	}
	out = g_ptr_array_new_with_free_func(info_free);
	for (ssize_t i = 0; i < n; i++) {
		struct ccid_usb_info *info;

		if (sel != NULL && !ccid_usb_selector_matches(sel, list[i]))
			continue;
		info = g_new0(struct ccid_usb_info, 1);
		ccid_usb_info_fill(list[i], NULL, info);
		if (ccid_only && !info->is_ccid) {
			info_free(info);
			continue;
		}
		g_ptr_array_add(out, info);
	}
	libusb_free_device_list(list, 1);
	return out;
}
