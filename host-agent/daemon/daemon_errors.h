/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's errors.  Each code is a named D-Bus error
 * (org.ccidemu.Agent1.Error.NAME), so a client gets back the same GError
 * and the CLI maps it to its exit code.
 */
#ifndef CCID_DAEMON_ERRORS_H
#define CCID_DAEMON_ERRORS_H

#include <glib.h>

G_BEGIN_DECLS

#define DAEMON_ERROR (daemon_error_quark())
GQuark daemon_error_quark(void);

enum daemon_error {
	DAEMON_ERROR_BUSY,           /* held by another VM: the message names it */
	DAEMON_ERROR_NOT_FOUND,      /* no such entry, VM or session */
	DAEMON_ERROR_NOT_SUPPORTED,  /* not for this kind of entry */
	DAEMON_ERROR_FAILED,         /* tried, and it did not work */
	DAEMON_ERROR_INVALID_ARGS,   /* malformed name or address */
};

/* Makes the error names known to GDBus, so errors cross the bus as
 * DAEMON_ERROR codes both ways.  Call before the first D-Bus call. */
void daemon_errors_register(void);

G_END_DECLS

#endif /* CCID_DAEMON_ERRORS_H */
