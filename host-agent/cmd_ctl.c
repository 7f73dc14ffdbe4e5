/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-agent ctl: one command to a running `ccid-agent serve` over its
 * control socket.  Prints the JSON reply on stdout; exits 1 if the agent
 * answered with an error or could not be reached.
 */
#include "agent_commands.h"
#include "agent_control.h"

#include <stdio.h>
#include <string.h>

/* A virtual card's removal completes through libcacard's event thread;
 * leave it ample time. */
#define CTL_TIMEOUT_MS 10000u

int agent_cmd_ctl(int argc, char **argv)
{
	g_autofree char *control = NULL;
	const GOptionEntry entries[] = {
		{ "control", 0, 0, G_OPTION_ARG_FILENAME, &control,
		  "Control socket of the agent (default "
		  "$XDG_RUNTIME_DIR/ccid-emu/ccid0.ctl)", "PATH" },
		{ NULL }
	};
	g_autoptr(GOptionContext) ctx =
		g_option_context_new("insert|remove|status [SLOT]");
	g_autoptr(GError) error = NULL;
	g_autofree char *line = NULL;
	g_autofree char *reply = NULL;
	const char *cmd;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_summary(ctx,
		"Inserts or removes the card of a slot (default 0) of a running "
		"'ccid-agent serve',\nor shows its state.");
	g_option_context_set_description(ctx,
		"The reply is one line of JSON on stdout.\n"
		"Exit status: 0 done, 1 the agent answered with an error or "
		"cannot be reached,\n2 bad command line.\n");
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc < 2) {
		fprintf(stderr, "ccid-agent: missing command (insert, remove "
			"or status)\nTry '%s --help'.\n", argv[0]);
		return AGENT_EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "insert") != 0 && strcmp(cmd, "remove") != 0 &&
	    strcmp(cmd, "status") != 0) {
		fprintf(stderr, "ccid-agent: unknown command '%s' (expected "
			"insert, remove or status)\nTry '%s --help'.\n", cmd,
			argv[0]);
		return AGENT_EXIT_USAGE;
	}
	if (argc > (strcmp(cmd, "status") == 0 ? 2 : 3)) {
		fprintf(stderr, "ccid-agent: unexpected argument '%s'\n"
			"Try '%s --help'.\n", argv[argc - 1], argv[0]);
		return AGENT_EXIT_USAGE;
	}
	if (argc == 3) {
		guint64 v;

		/* The agent knows how many slots there are; here only the
		 * form is checked. */
		if (!g_ascii_string_to_unsigned(argv[2], 10, 0, 255, &v,
						NULL)) {
			fprintf(stderr, "ccid-agent: slot must be a number, "
				"got '%s'\n", argv[2]);
			return AGENT_EXIT_USAGE;
		}
		line = g_strdup_printf("%s %u", cmd, (unsigned)v);
	} else {
		line = g_strdup(cmd);
	}
	if (control == NULL)
		control = agent_control_default_path();

	reply = agent_control_call(control, line, CTL_TIMEOUT_MS, &error);
	if (reply == NULL) {
		fprintf(stderr, "ccid-agent: %s\n", error->message);
		return AGENT_EXIT_FAILED;
	}
	printf("%s\n", reply);
	fflush(stdout);
	/* The agent's error replies, and only they, start this way. */
	return g_str_has_prefix(reply, "{\"error\":") ? AGENT_EXIT_FAILED :
							AGENT_EXIT_OK;
}
