/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's errors as named D-Bus errors (see daemon_errors.h).
 */
#include "daemon_errors.h"

#include <gio/gio.h>

static const GDBusErrorEntry daemon_error_entries[] = {
	{ DAEMON_ERROR_BUSY, "org.ccidemu.Agent1.Error.Busy" },
	{ DAEMON_ERROR_NOT_FOUND, "org.ccidemu.Agent1.Error.NotFound" },
	{ DAEMON_ERROR_NOT_SUPPORTED, "org.ccidemu.Agent1.Error.NotSupported" },
	{ DAEMON_ERROR_FAILED, "org.ccidemu.Agent1.Error.Failed" },
	{ DAEMON_ERROR_INVALID_ARGS, "org.ccidemu.Agent1.Error.InvalidArgs" },
};

GQuark daemon_error_quark(void)
{
	static gsize quark;

	g_dbus_error_register_error_domain("ccid-daemon-error-quark", &quark,
					   daemon_error_entries,
					   G_N_ELEMENTS(daemon_error_entries));
	return (GQuark)quark;
}

void daemon_errors_register(void)
{
	(void)daemon_error_quark();
}
