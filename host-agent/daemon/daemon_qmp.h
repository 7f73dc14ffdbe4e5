/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An asynchronous QMP client on the GLib main loop: connects to a QEMU
 * monitor socket, negotiates capabilities, runs commands (optionally
 * passing one file descriptor with SCM_RIGHTS, as `getfd` needs) and
 * reports events.
 *
 * Everything QEMU sends is treated as hostile: a line longer than
 * DAEMON_QMP_MAX_LINE, bytes that are not a JSON object, a reply whose id
 * we never sent, a greeting that is not QMP's: the connection is dropped
 * with an error saying which, never an abort.
 */
#ifndef CCID_DAEMON_QMP_H
#define CCID_DAEMON_QMP_H

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define DAEMON_QMP_ERROR (daemon_qmp_error_quark())
GQuark daemon_qmp_error_quark(void);

enum daemon_qmp_error {
	DAEMON_QMP_ERROR_CONNECT,     /* the socket could not be reached */
	DAEMON_QMP_ERROR_NOT_QMP,     /* the peer does not speak QMP */
	DAEMON_QMP_ERROR_PROTOCOL,    /* a malformed or oversized message */
	DAEMON_QMP_ERROR_CLOSED,      /* the peer closed the connection */
	DAEMON_QMP_ERROR_COMMAND,     /* QEMU answered the command with "error" */
	DAEMON_QMP_ERROR_TIMEOUT,     /* no greeting or answer in time */
	DAEMON_QMP_ERROR_CANCELLED,   /* the client was freed first */
};

/* Longest QMP message accepted (QEMU's own replies to our commands are a
 * few hundred bytes; query results stay far below this). */
#define DAEMON_QMP_MAX_LINE (1024u * 1024u)

/* How long QEMU may take to answer a command before the connection is
 * given up (DAEMON_QMP_ERROR_TIMEOUT): hot plug answers in milliseconds. */
#define DAEMON_QMP_REPLY_TIMEOUT_MS 10000u

typedef struct daemon_qmp daemon_qmp;

struct daemon_qmp_callbacks {
	/* A QMP event; @data may be NULL. */
	void (*event)(void *user, const char *name, JsonObject *data);
	/* The connection is gone (after ready); the client stays allocated
	 * until daemon_qmp_free() and fails every later command. */
	void (*closed)(void *user, const GError *why);
};

/* @ret: the "return" member on success (may be any JSON), or NULL with
 * @error.  For an "error" reply, @error is DAEMON_QMP_ERROR_COMMAND with
 * QEMU's "desc" as message, and @qmp_class holds its "class". */
typedef void (*daemon_qmp_reply_fn)(void *user, JsonNode *ret,
				    const char *qmp_class,
				    const GError *error);
typedef void (*daemon_qmp_ready_fn)(void *user, const GError *error);

/* Callbacks must not free the client: defer that to an idle source.
 *
 * Connects to the unix socket @path.  @ready runs once: after
 * qmp_capabilities succeeded, or with the error. */
daemon_qmp *daemon_qmp_new(const char *path,
			   const struct daemon_qmp_callbacks *cbs, void *user,
			   daemon_qmp_ready_fn ready, void *ready_user);
/* Accepts NULL.  Pending replies (and @ready, if not run yet) are called
 * with DAEMON_QMP_ERROR_CANCELLED before it returns. */
void daemon_qmp_free(daemon_qmp *qmp);

/* Runs @command with @args (owned by the call, may be NULL).  @fd >= 0 is
 * sent with the command's first byte and closed once sent (or on error).
 * @reply may be NULL. */
void daemon_qmp_execute(daemon_qmp *qmp, const char *command, JsonObject *args,
			int fd, daemon_qmp_reply_fn reply, void *user);

gboolean daemon_qmp_is_connected(const daemon_qmp *qmp);
/* Another reply timeout for the commands sent from now on (tests). */
void daemon_qmp_set_timeout(daemon_qmp *qmp, guint ms);

/* The string member @name of @obj (may be NULL), or NULL when it is
 * absent or not a string. */
const char *daemon_qmp_get_string(JsonObject *obj, const char *name);

G_END_DECLS

#endif /* CCID_DAEMON_QMP_H */
