/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SIGINT and SIGTERM for the foreground commands (serve, passthrough,
 * daemon): the first one quits the command's main loop.  The handlers
 * stay installed through the clean-up that follows and are removed only
 * by agent_stop_signals_free(), called last: GLib puts back the default
 * action when a signal's last source goes, and a second Ctrl-C or
 * SIGTERM during the clean-up would then kill the process half-way,
 * leaving its socket files and the device it was detaching behind.
 */
#pragma once

#include <glib.h>

typedef struct agent_stop_signals agent_stop_signals;

/* Installs the handlers; the first signal quits @loop. */
agent_stop_signals *agent_stop_signals_new(GMainLoop *loop);

/* "SIGINT" or "SIGTERM": the first signal received, or NULL. */
const char *agent_stop_signals_received(const agent_stop_signals *s);

/* Removes the handlers (the default actions come back).  Accepts NULL. */
void agent_stop_signals_free(agent_stop_signals *s);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(agent_stop_signals, agent_stop_signals_free)
