/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-agent sub-commands.  Each takes the arguments after its own name
 * (argv[0] is "ccid-agent NAME") and returns the process exit status.
 */
#ifndef CCID_AGENT_COMMANDS_H
#define CCID_AGENT_COMMANDS_H

#include <glib.h>

G_BEGIN_DECLS

enum agent_exit {
	AGENT_EXIT_OK = 0,
	AGENT_EXIT_FAILED = 1,     /* ran, and something did not work */
	AGENT_EXIT_USAGE = 2,      /* bad command line */
	/* The daemon's clients (cmd_client.c): */
	AGENT_EXIT_NOT_FOUND = 3,  /* no such entry, VM or session */
	AGENT_EXIT_BUSY = 4,       /* held by another VM */
	AGENT_EXIT_NOT_SUPPORTED = 5, /* not for this kind of entry */
	AGENT_EXIT_NO_DAEMON = 6,  /* the daemon cannot be reached */
};

struct agent_command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int agent_cmd_selftest(int argc, char **argv);
int agent_cmd_serve(int argc, char **argv);
int agent_cmd_ctl(int argc, char **argv);
int agent_cmd_passthrough(int argc, char **argv);
int agent_cmd_list_usb(int argc, char **argv);
int agent_cmd_daemon(int argc, char **argv);
int agent_cmd_list(int argc, char **argv);
int agent_cmd_vms(int argc, char **argv);
int agent_cmd_vm(int argc, char **argv);
int agent_cmd_attach(int argc, char **argv);
int agent_cmd_detach(int argc, char **argv);
int agent_cmd_insert(int argc, char **argv);
int agent_cmd_remove(int argc, char **argv);
int agent_cmd_watch(int argc, char **argv);
int agent_cmd_qemu_args(int argc, char **argv);

/* Parses @argv with @ctx, printing "ccid-agent: MESSAGE" and a hint on
 * error.  Returns FALSE on a usage error (exit AGENT_EXIT_USAGE). */
gboolean agent_parse_options(GOptionContext *ctx, int *argc, char ***argv);

/* Prints "ccid-agent: MESSAGE" and a --help hint to stderr; returns
 * AGENT_EXIT_USAGE, for `return agent_usage_error(...)`. */
int agent_usage_error(const char *argv0, const char *fmt, ...)
	G_GNUC_PRINTF(2, 3);

G_END_DECLS

#endif /* CCID_AGENT_COMMANDS_H */
