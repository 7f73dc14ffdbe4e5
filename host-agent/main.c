/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-agent: host-side companion of the ccid-emu device model.  This file
 * only dispatches to sub-commands; each lives in its own cmd_*.c.
 */
#include "agent_commands.h"

#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct agent_command commands[] = {
	{ "selftest", "drive an emulated reader like a host driver and report",
	  agent_cmd_selftest },
	{ "serve", "serve an emulated reader to QEMU's usb-redir (foreground)",
	  agent_cmd_serve },
	{ "ctl", "insert or remove a card of a running 'serve', or show it",
	  agent_cmd_ctl },
	{ "passthrough", "hand a real USB reader whole to one VM (foreground)",
	  agent_cmd_passthrough },
	{ "list-usb", "list the USB smart-card readers and who holds them",
	  agent_cmd_list_usb },
	{ "daemon", "the D-Bus service: entries, VMs, hot attach (foreground)",
	  agent_cmd_daemon },
	{ "list", "list the daemon's entries, their states and holders",
	  agent_cmd_list },
	{ "vms", "list the VMs the daemon knows", agent_cmd_vms },
	{ "vm", "register (add) or forget (remove) a VM by its QMP socket",
	  agent_cmd_vm },
	{ "attach", "give an entry to a running VM (hot-plug)",
	  agent_cmd_attach },
	{ "detach", "take an entry out of a VM", agent_cmd_detach },
	{ "insert", "push the card of a virtual entry in", agent_cmd_insert },
	{ "remove", "pull the card of a virtual entry out", agent_cmd_remove },
	{ "watch", "print the daemon's events until interrupted",
	  agent_cmd_watch },
	{ "qemu-args", "QEMU arguments for a VM that starts later (cold plug)",
	  agent_cmd_qemu_args },
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: ccid-agent COMMAND [OPTION...]\n\nCommands:\n");
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		fprintf(out, "  %-12s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(out, "\nRun 'ccid-agent COMMAND --help' for a command's "
		"options.\n");
}

gboolean agent_parse_options(GOptionContext *ctx, int *argc, char ***argv)
{
	g_autoptr(GError) error = NULL;

	if (!g_option_context_parse(ctx, argc, argv, &error)) {
		fprintf(stderr, "ccid-agent: %s\n", error->message);
		fprintf(stderr, "Try '%s --help'.\n", (*argv)[0]);
		return FALSE;
	}
	return TRUE;
}

int agent_usage_error(const char *argv0, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	fprintf(stderr, "ccid-agent: %s\nTry '%s --help'.\n", msg, argv0);
	return AGENT_EXIT_USAGE;
}

int main(int argc, char **argv)
{
	const char *name;

	setlocale(LC_ALL, "");
	if (argc < 2) {
		usage(stderr);
		return AGENT_EXIT_USAGE;
	}
	name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
	    strcmp(name, "help") == 0) {
		usage(stdout);
		return AGENT_EXIT_OK;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
		if (strcmp(name, commands[i].name) == 0) {
			g_autofree char *argv0 =
				g_strdup_printf("ccid-agent %s", name);

			/* The sub-command sees itself as argv[0], and
			 * GOption's usage line names it too. */
			g_set_prgname(argv0);
			argv[1] = argv0;
			return commands[i].run(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "ccid-agent: unknown command '%s'\n", name);
	usage(stderr);
	return AGENT_EXIT_USAGE;
}
