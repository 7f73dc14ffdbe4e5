/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Manager interface's methods without D-Bus, for the fuzz target
 * (tests/fuzz/fuzz_daemon_dbus.c): a service exported on no connection
 * (daemon_service_export() with a NULL connection) is called directly,
 * with the same code the D-Bus methods run, and answers through a
 * callback.  A D-Bus round trip through GDBus's worker thread per call
 * was nearly all of that target's run time.
 */
#ifndef CCID_DAEMON_SERVICE_PRIVATE_H
#define CCID_DAEMON_SERVICE_PRIVATE_H

#include "daemon_service.h"

G_BEGIN_DECLS

typedef struct daemon_call daemon_call;

/* The answer: @value is the method's out arguments as a tuple (NULL when
 * it has none, or on error); exactly one of @value and @error may be
 * non-NULL, both are the caller's to copy, not to keep. */
typedef void (*daemon_call_reply_fn)(void *user, GVariant *value,
				     const GError *error);

/* Calls @method ("Attach", "PlanVm", ...) with @args (a tuple, as on
 * D-Bus; a floating reference is taken).  @fn is called exactly once,
 * now or from the main loop later.  An unknown method, or arguments of
 * the wrong type, is answered with DAEMON_ERROR_INVALID_ARGS. */
void daemon_service_call(daemon_service *svc, const char *method,
			 GVariant *args, daemon_call_reply_fn fn, void *user);

/* Where daemon_say() lines go instead of stderr (NULL: stderr again):
 * the fuzz target makes thousands of calls a second, each of which the
 * daemon reports. */
typedef void (*daemon_say_fn)(const char *msg);
void daemon_service_set_say(daemon_say_fn fn);

G_END_DECLS

#endif /* CCID_DAEMON_SERVICE_PRIVATE_H */
