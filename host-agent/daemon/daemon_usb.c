/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * USB reader discovery (see daemon_usb.h).
 *
 * libusb's hotplug callback runs inside its event handling, where opening
 * the device to read its strings is not allowed: the callback only
 * queues the event, and an idle callback does the rest.
 */
#include "daemon_usb.h"

#include <ccid_usb.h>
#include <ccid_usb_source.h>
#include <string.h>

struct known {
	libusb_device *dev;            /* ref held; NULL while unplugged */
	struct ccid_usb_info info;
	struct daemon_usb_reader r;
};

struct hp_event {
	libusb_hotplug_event ev;
	libusb_device *dev;            /* ref held */
};

struct daemon_usb {
	daemon_usb_fn changed;
	void *user;
	libusb_context *ctx;
	ccid_usb_source *source;
	libusb_hotplug_callback_handle hotplug;
	gboolean hotplug_registered;
	GQueue events;                 /* struct hp_event * */
	guint idle_id;
	guint timer_id;
	GPtrArray *readers;            /* struct known *, by first arrival */
};

static void holders_clear(GArray *holders)
{
	for (guint i = 0; i < holders->len; i++)
		g_free(g_array_index(holders, struct daemon_usb_holder, i).name);
	g_array_set_size(holders, 0);
}

static void known_free(gpointer p)
{
	struct known *k = p;

	if (k->dev != NULL)
		libusb_unref_device(k->dev);
	ccid_usb_info_clear(&k->info);
	g_free(k->r.id);
	g_free(k->r.model);
	g_free(k->r.manufacturer);
	g_free(k->r.serial);
	g_free(k->r.port_path);
	g_free(k->r.selector);
	g_free(k->r.kernel_driver);
	holders_clear(k->r.holders);
	g_array_unref(k->r.holders);
	g_free(k);
}

char *daemon_usb_describe_holders(const GArray *holders)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; holders != NULL && i < holders->len; i++) {
		const struct daemon_usb_holder *h = &g_array_index(holders,
			struct daemon_usb_holder, i);

		g_string_append_printf(s, "%s%s (pid %d)", i ? ", " : "",
				       h->name, (int)h->pid);
	}
	return g_string_free(s, FALSE);
}

/* Device strings are hostile (ccid_usb.c keeps printable ASCII only);
 * ids keep letters, digits and '-'. */
static char *make_id(const struct ccid_usb_info *info)
{
	GString *id = g_string_new(NULL);
	const char *tail = info->serial != NULL && *info->serial ?
			   info->serial : info->port_path;

	g_string_printf(id, "usb-%04x-%04x-%s", info->vid, info->pid,
			info->serial != NULL && *info->serial ? "" : "port-");
	for (const char *p = tail; *p != '\0' && id->len < 64; p++)
		g_string_append_c(id, g_ascii_isalnum(*p) ?
				  g_ascii_tolower(*p) : '-');
	return g_string_free(id, FALSE);
}

/* The processes and kernel driver holding @k's device now; TRUE when
 * that changed. */
static gboolean read_holders(struct known *k)
{
	g_autoptr(GArray) old = g_array_copy(k->r.holders);
	g_autofree char *old_driver = g_steal_pointer(&k->r.kernel_driver);
	gboolean claimed = FALSE, same;

	/* The copy shares the names; they are freed with the old array. */
	g_array_set_size(k->r.holders, 0);
	ccid_usb_info_fill_holders(k->dev, &k->info);
	for (guint i = 0; i < k->info.n_interfaces; i++) {
		const char *drv = k->info.drivers[i];

		if (drv == NULL)
			continue;
		if (strcmp(drv, "usbfs") == 0)
			claimed = TRUE;
		else if (k->r.kernel_driver == NULL)
			k->r.kernel_driver = g_strdup(drv);
	}
	/* An opener without a claim (lsusb, a libusb scan) holds nothing. */
	for (guint i = 0; claimed && i < k->info.open_pids->len; i++) {
		struct daemon_usb_holder h;
		char *name;

		h.pid = g_array_index(k->info.open_pids, pid_t, i);
		name = ccid_usb_pid_name(h.pid);
		h.name = name != NULL ? name : g_strdup("?");
		g_array_append_val(k->r.holders, h);
	}
	same = g_strcmp0(old_driver, k->r.kernel_driver) == 0 &&
	       old->len == k->r.holders->len;
	for (guint i = 0; same && i < old->len; i++) {
		struct daemon_usb_holder *a = &g_array_index(old,
			struct daemon_usb_holder, i);
		struct daemon_usb_holder *b = &g_array_index(k->r.holders,
			struct daemon_usb_holder, i);

		same = a->pid == b->pid && strcmp(a->name, b->name) == 0;
	}
	holders_clear(old);
	return !same;
}

static struct known *find_known(daemon_usb *u, const char *id)
{
	for (guint i = 0; i < u->readers->len; i++) {
		struct known *k = g_ptr_array_index(u->readers, i);

		if (strcmp(k->r.id, id) == 0)
			return k;
	}
	return NULL;
}

static struct known *find_dev(daemon_usb *u, libusb_device *dev)
{
	for (guint i = 0; i < u->readers->len; i++) {
		struct known *k = g_ptr_array_index(u->readers, i);

		if (k->dev == dev)
			return k;
	}
	return NULL;
}

/* From the cached descriptors: no need to open every device plugged in
 * (keyboards, hubs) to read its strings. */
static gboolean has_ccid_interface(libusb_device *dev)
{
	struct libusb_config_descriptor *cfg = NULL;
	gboolean ccid = FALSE;

	if (libusb_get_active_config_descriptor(dev, &cfg) != 0)
		return FALSE;
	for (int i = 0; i < cfg->bNumInterfaces && !ccid; i++)
		for (int a = 0; a < cfg->interface[i].num_altsetting; a++)
			if (cfg->interface[i].altsetting[a].bInterfaceClass ==
			    CCID_USB_CLASS_CCID)
				ccid = TRUE;
	libusb_free_config_descriptor(cfg);
	return ccid;
}

static void arrived(daemon_usb *u, libusb_device *dev)
{
	struct ccid_usb_info info;
	g_autofree char *id = NULL;
	struct known *k;

	if (find_dev(u, dev) != NULL || !has_ccid_interface(dev))
		return;
	ccid_usb_info_fill(dev, NULL, &info);
	if (!info.is_ccid) {
		ccid_usb_info_clear(&info);
		return;
	}
	id = make_id(&info);
	k = find_known(u, id);
	if (k != NULL && k->dev != NULL) {
		/* Two present devices with one id (the same serial): the
		 * second is told apart by its port. */
		g_free(id);
		id = g_strdup_printf("%s-port-%s", k->r.id, info.port_path);
		g_strcanon(id, "abcdefghijklmnopqrstuvwxyz0123456789-", '-');
		k = find_known(u, id);
	}
	if (k == NULL) {
		k = g_new0(struct known, 1);
		k->r.id = g_strdup(id);
		k->r.holders = g_array_new(FALSE, FALSE,
					   sizeof(struct daemon_usb_holder));
		g_ptr_array_add(u->readers, k);
	}
	ccid_usb_info_clear(&k->info);
	k->info = info;
	k->dev = libusb_ref_device(dev);
	g_free(k->r.model);
	k->r.model = info.product != NULL && *info.product ?
		     g_strdup(info.product) :
		     g_strdup_printf("USB reader %04x:%04x", info.vid, info.pid);
	g_free(k->r.manufacturer);
	k->r.manufacturer = g_strdup(info.manufacturer);
	g_free(k->r.serial);
	k->r.serial = g_strdup(info.serial);
	g_free(k->r.port_path);
	k->r.port_path = g_strdup(info.port_path);
	k->r.vid = info.vid;
	k->r.pid = info.pid;
	k->r.bus = info.bus;
	k->r.addr = info.addr;
	g_free(k->r.selector);
	k->r.selector = g_strdup_printf("%u-%u", info.bus, info.addr);
	k->r.present = TRUE;
	read_holders(k);
	u->changed(u->user, &k->r);
}

static void left(daemon_usb *u, libusb_device *dev)
{
	struct known *k = find_dev(u, dev);

	if (k == NULL)
		return;
	libusb_unref_device(k->dev);
	k->dev = NULL;
	k->r.present = FALSE;
	holders_clear(k->r.holders);
	g_clear_pointer(&k->r.kernel_driver, g_free);
	u->changed(u->user, &k->r);
}

static gboolean on_events_idle(gpointer data)
{
	daemon_usb *u = data;
	struct hp_event *e;

	u->idle_id = 0;
	while ((e = g_queue_pop_head(&u->events)) != NULL) {
		if (e->ev == LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT)
			left(u, e->dev);
		else
			arrived(u, e->dev);
		libusb_unref_device(e->dev);
		g_free(e);
	}
	return G_SOURCE_REMOVE;
}

/* Inside libusb's event handling (or its registration): only queue. */
static int on_hotplug(libusb_context *ctx, libusb_device *dev,
		      libusb_hotplug_event ev, void *data)
{
	daemon_usb *u = data;
	struct hp_event *e = g_new0(struct hp_event, 1);

	e->ev = ev;
	e->dev = libusb_ref_device(dev);
	g_queue_push_tail(&u->events, e);
	if (u->idle_id == 0)
		u->idle_id = g_idle_add(on_events_idle, u);
	return 0;
}

void daemon_usb_refresh(daemon_usb *u)
{
	if (u == NULL)
		return;
	for (guint i = 0; i < u->readers->len; i++) {
		struct known *k = g_ptr_array_index(u->readers, i);

		if (k->dev != NULL && read_holders(k))
			u->changed(u->user, &k->r);
	}
}

static gboolean on_timer(gpointer data)
{
	daemon_usb_refresh(data);
	return G_SOURCE_CONTINUE;
}

daemon_usb *daemon_usb_new(daemon_usb_fn changed, void *user, GError **error)
{
	g_autoptr(GError) err = NULL;
	daemon_usb *u;
	libusb_context *ctx = NULL;
	int rc = libusb_init(&ctx);

	if (rc != 0) {
		ccid_usb_set_error(error, rc, "cannot initialise libusb");
		return NULL;
	}
	if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) {
		g_set_error(error, CCID_USB_ERROR, CCID_USB_ERROR_FAILED,
			    "this libusb has no hotplug support");
		libusb_exit(ctx);
		return NULL;
	}
	u = g_new0(daemon_usb, 1);
	u->changed = changed;
	u->user = user;
	u->ctx = ctx;
	u->readers = g_ptr_array_new_with_free_func(known_free);
	g_queue_init(&u->events);
	u->source = ccid_usb_source_new(ctx, NULL);
	/* ENUMERATE: the devices there now come as arrivals too. */
	rc = libusb_hotplug_register_callback(ctx,
		LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED |
		LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT, LIBUSB_HOTPLUG_ENUMERATE,
		LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
		LIBUSB_HOTPLUG_MATCH_ANY, on_hotplug, u, &u->hotplug);
	if (rc != 0) {
		ccid_usb_set_error(error, rc, "cannot watch USB devices");
		daemon_usb_free(u);
		return NULL;
	}
	u->hotplug_registered = TRUE;
	u->timer_id = g_timeout_add(DAEMON_USB_HOLDERS_MS, on_timer, u);
	return u;
}

void daemon_usb_free(daemon_usb *u)
{
	struct hp_event *e;

	if (u == NULL)
		return;
	if (u->timer_id != 0)
		g_source_remove(u->timer_id);
	if (u->idle_id != 0)
		g_source_remove(u->idle_id);
	if (u->hotplug_registered)
		libusb_hotplug_deregister_callback(u->ctx, u->hotplug);
	while ((e = g_queue_pop_head(&u->events)) != NULL) {
		libusb_unref_device(e->dev);
		g_free(e);
	}
	g_ptr_array_unref(u->readers);
	g_clear_pointer(&u->source, ccid_usb_source_free);
	libusb_exit(u->ctx);
	g_free(u);
}
