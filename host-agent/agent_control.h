/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control socket of `ccid-agent serve`: a unix stream socket (mode
 * 0600) speaking one command per line and answering each with exactly one
 * line holding one JSON object.  The commands themselves are the
 * handler's business; this file does sockets, framing and lifetimes.
 *
 * Clients are untrusted in the sense that nothing they send can crash
 * or stall the agent: lines are bounded, a client that does not read its
 * replies is dropped, and the number of clients is capped.
 */
#ifndef CCID_AGENT_CONTROL_H
#define CCID_AGENT_CONTROL_H

#include <glib.h>

G_BEGIN_DECLS

#define AGENT_CONTROL_ERROR (agent_control_error_quark())
GQuark agent_control_error_quark(void);

enum agent_control_error {
	AGENT_CONTROL_ERROR_ADDRESS,   /* unusable path */
	AGENT_CONTROL_ERROR_BUSY,      /* another process serves that path */
	AGENT_CONTROL_ERROR_SOCKET,    /* a socket call failed */
	AGENT_CONTROL_ERROR_NOT_RUNNING, /* nothing listens there */
	AGENT_CONTROL_ERROR_TIMED_OUT, /* no reply in time */
	AGENT_CONTROL_ERROR_PROTOCOL,  /* the reply is not one line */
};

/* Longest command line accepted, newline included. */
#define AGENT_CONTROL_MAX_LINE 1024u

typedef struct agent_control agent_control;
typedef struct agent_control_request agent_control_request;

/* Called for each non-blank command line, split on blanks (@argv[0] is
 * the command, @argc >= 1).  The handler must end @req with
 * agent_control_reply() exactly once, before returning or later.  The
 * lines of one client are handled one at a time, in order. */
typedef void (*agent_control_fn)(void *user, agent_control_request *req,
				 int argc, char **argv);

/* Listens on @path on the thread-default main context.  A stale socket
 * file is replaced; one that a live process listens on is
 * AGENT_CONTROL_ERROR_BUSY. */
agent_control *agent_control_new(const char *path, agent_control_fn fn,
				 void *user, GError **error);
/* Accepts NULL.  Closes every client and removes the socket file if it is
 * still the one we made.  Requests not yet replied to stay valid; their
 * replies are dropped. */
void agent_control_free(agent_control *ctl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(agent_control, agent_control_free)

const char *agent_control_get_path(const agent_control *ctl);

/* Sends @json (one JSON object, no newline) and ends @req. */
void agent_control_reply(agent_control_request *req, const char *json);
/* Replies {"error": "MESSAGE"}. */
void agent_control_reply_error(agent_control_request *req, const char *fmt,
			       ...) G_GNUC_PRINTF(2, 3);

/* g_get_user_runtime_dir()/ccid-emu/ccid0.ctl: where `serve` puts the
 * control socket when its own socket is not a unix path, and where `ctl`
 * looks by default. */
char *agent_control_default_path(void);

/* Client side, for `ccid-agent ctl`: connects to @path, sends @line and
 * returns the reply line without its newline. */
char *agent_control_call(const char *path, const char *line,
			 unsigned timeout_ms, GError **error);

G_END_DECLS

#endif /* CCID_AGENT_CONTROL_H */
