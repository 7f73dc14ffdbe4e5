/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SIGINT and SIGTERM handlers that outlive the main loop: see
 * agent_stop_signals.h.  A signal that arrives during the clean-up is
 * caught by GLib's handler and only dispatched if something iterates the
 * main context again; it may cut a bounded wait short (poll() returns
 * EINTR), which is what a user pressing Ctrl-C twice wants, but it never
 * ends the process before the clean-up has run.
 */
#include "agent_stop_signals.h"

#include <signal.h>

#include <glib-unix.h>

struct agent_stop_signals {
	GMainLoop *loop;
	const char *received;
	guint sig_int, sig_term;
};

static void stop(agent_stop_signals *s, const char *name)
{
	if (s->received == NULL)
		s->received = name;
	g_main_loop_quit(s->loop);
}

static gboolean on_sigint(gpointer data)
{
	stop(data, "SIGINT");
	return G_SOURCE_CONTINUE;
}

static gboolean on_sigterm(gpointer data)
{
	stop(data, "SIGTERM");
	return G_SOURCE_CONTINUE;
}

agent_stop_signals *agent_stop_signals_new(GMainLoop *loop)
{
	agent_stop_signals *s = g_new0(agent_stop_signals, 1);

	s->loop = g_main_loop_ref(loop);
	s->sig_int = g_unix_signal_add(SIGINT, on_sigint, s);
	s->sig_term = g_unix_signal_add(SIGTERM, on_sigterm, s);
	return s;
}

const char *agent_stop_signals_received(const agent_stop_signals *s)
{
	return s->received;
}

void agent_stop_signals_free(agent_stop_signals *s)
{
	if (s == NULL)
		return;
	g_source_remove(s->sig_int);
	g_source_remove(s->sig_term);
	g_main_loop_unref(s->loop);
	g_free(s);
}
