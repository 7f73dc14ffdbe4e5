/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libusb on the GLib main context (see ccid_usb_source.h).
 */
#include <poll.h>

#include <glib-unix.h>

#include "ccid_usb_source.h"

struct ccid_usb_source {
	libusb_context *ctx;
	GHashTable *sources;            /* fd -> GSource id */
};

static gboolean on_usb_fd(gint fd, GIOCondition cond, gpointer data)
{
	ccid_usb_source *src = data;
	struct timeval zero = { 0, 0 };

	libusb_handle_events_timeout_completed(src->ctx, &zero, NULL);
	return G_SOURCE_CONTINUE;
}

static void on_pollfd_added(int fd, short events, void *data)
{
	ccid_usb_source *src = data;
	gpointer old = g_hash_table_lookup(src->sources, GINT_TO_POINTER(fd));
	GIOCondition cond = 0;
	guint id;

	if (events & POLLIN)
		cond |= G_IO_IN;
	if (events & POLLOUT)
		cond |= G_IO_OUT;   /* usbfs signals reaped URBs this way */
	if (old != NULL)
		g_source_remove(GPOINTER_TO_UINT(old));
	id = g_unix_fd_add(fd, cond, on_usb_fd, src);
	g_hash_table_insert(src->sources, GINT_TO_POINTER(fd),
			    GUINT_TO_POINTER(id));
}

static void on_pollfd_removed(int fd, void *data)
{
	ccid_usb_source *src = data;
	gpointer id = g_hash_table_lookup(src->sources, GINT_TO_POINTER(fd));

	if (id != NULL) {
		g_source_remove(GPOINTER_TO_UINT(id));
		g_hash_table_remove(src->sources, GINT_TO_POINTER(fd));
	}
}

ccid_usb_source *ccid_usb_source_new(libusb_context *ctx,
				     gboolean *timeouts_late)
{
	ccid_usb_source *src = g_new0(ccid_usb_source, 1);
	const struct libusb_pollfd **fds = libusb_get_pollfds(ctx);

	src->ctx = ctx;
	src->sources = g_hash_table_new(NULL, NULL);
	for (size_t i = 0; fds != NULL && fds[i] != NULL; i++)
		on_pollfd_added(fds[i]->fd, fds[i]->events, src);
	libusb_free_pollfds(fds);
	libusb_set_pollfd_notifiers(ctx, on_pollfd_added, on_pollfd_removed,
				    src);
	/* Linux libusb keeps its timeouts on a timerfd among the pollfds;
	 * without that, timeouts would need a timer source too. */
	if (timeouts_late != NULL)
		*timeouts_late = !libusb_pollfds_handle_timeouts(ctx);
	return src;
}

void ccid_usb_source_free(ccid_usb_source *src)
{
	GHashTableIter it;
	gpointer id;

	if (src == NULL)
		return;
	libusb_set_pollfd_notifiers(src->ctx, NULL, NULL, NULL);
	g_hash_table_iter_init(&it, src->sources);
	while (g_hash_table_iter_next(&it, NULL, &id))
		g_source_remove(GPOINTER_TO_UINT(id));
	g_hash_table_unref(src->sources);
	g_free(src);
}
