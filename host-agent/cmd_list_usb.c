/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-agent list-usb: the USB smart-card readers (an interface of class
 * 0x0B) libusb sees, with who holds each, so that the user can pick one
 * for `ccid-agent passthrough --device`.  A machine without USB has an
 * empty list, not an error.
 */
#include "agent_commands.h"
#include "agent_json.h"
#include "agent_text_table.h"

#include <ccid_usb.h>
#include <stdio.h>
#include <string.h>

static void json_pids(GString *j, const GArray *pids)
{
	g_string_append_c(j, '[');
	for (guint i = 0; i < pids->len; i++) {
		pid_t pid = g_array_index(pids, pid_t, i);
		g_autofree char *path = g_strdup_printf("/proc/%d/comm", pid);
		g_autofree char *comm = NULL;

		if (g_file_get_contents(path, &comm, NULL, NULL))
			g_strchomp(comm);
		g_string_append_printf(j, "%s{\"pid\": %d, \"name\": ",
				       i ? ", " : "", pid);
		agent_json_append_string(j, comm);
		g_string_append_c(j, '}');
	}
	g_string_append_c(j, ']');
}

static void print_json(GPtrArray *devs)
{
	g_autoptr(GString) j = g_string_new("[");

	for (guint i = 0; i < devs->len; i++) {
		const struct ccid_usb_info *d = devs->pdata[i];
		g_autofree char *who = NULL;
		g_autofree char *vidpid = g_strdup_printf("%04x:%04x", d->vid,
							  d->pid);
		g_autofree char *busaddr = g_strdup_printf("%03u-%03u", d->bus,
							   d->addr);
		gboolean held = ccid_usb_info_held(d, FALSE, &who);

		g_string_append(j, i ? ",\n {" : "\n {");
		g_string_append(j, "\"id\": ");
		agent_json_append_string(j, vidpid);
		g_string_append(j, ", \"bus_addr\": ");
		agent_json_append_string(j, busaddr);
		g_string_append(j, ", \"port\": ");
		agent_json_append_string(j, d->port_path);
		g_string_append(j, ", \"node\": ");
		agent_json_append_string(j, d->node);
		g_string_append(j, ", \"manufacturer\": ");
		agent_json_append_string(j, d->manufacturer);
		g_string_append(j, ", \"product\": ");
		agent_json_append_string(j, d->product);
		g_string_append(j, ", \"serial\": ");
		agent_json_append_string(j, d->serial);
		g_string_append(j, ", \"drivers\": [");
		for (guint k = 0; k < d->n_interfaces; k++) {
			if (k)
				g_string_append(j, ", ");
			agent_json_append_string(j, d->drivers[k]);
		}
		g_string_append(j, "], \"open_by\": ");
		json_pids(j, d->open_pids);
		g_string_append_printf(j, ", \"held\": %s, \"held_by\": ",
				       held ? "true" : "false");
		agent_json_append_string(j, who);
		g_string_append_c(j, '}');
	}
	g_string_append(j, devs->len ? "\n]\n" : "]\n");
	fputs(j->str, stdout);
}

static void print_table(GPtrArray *devs)
{
	g_autoptr(AgentTextTable) table = agent_text_table_new(5, 2);
	g_autofree char *text = NULL;

	if (devs->len == 0) {
		printf("no USB smart-card readers (interface class 0x0B) "
		       "found\n");
		return;
	}
	agent_text_table_add(table, NULL, "VID:PID", "BUS-ADR", "PRODUCT",
			     "SERIAL", "HELD BY");
	for (guint i = 0; i < devs->len; i++) {
		const struct ccid_usb_info *d = devs->pdata[i];
		g_autofree char *who = NULL;
		g_autofree char *open = ccid_usb_describe_pids(d->open_pids);
		g_autofree char *id = g_strdup_printf("%04x:%04x", d->vid,
						      d->pid);
		g_autofree char *at = g_strdup_printf("%03u-%03u", d->bus,
						      d->addr);
		g_autofree char *product = g_strdup_printf(
			"%s%s%s", d->manufacturer ? d->manufacturer : "",
			d->manufacturer && d->product ? " " : "",
			d->product ? d->product : "");

		if (!ccid_usb_info_held(d, FALSE, &who) && *open)
			who = g_strdup_printf("- (open by %s)", open);
		agent_text_table_add(table, NULL, id, at,
				     *product ? product : "?", d->serial, who);
	}
	text = agent_text_table_render(table);
	fputs(text, stdout);
}

int agent_cmd_list_usb(int argc, char **argv)
{
	gboolean json = FALSE, all = FALSE;
	const GOptionEntry entries[] = {
		{ "json", 'j', 0, G_OPTION_ARG_NONE, &json,
		  "Print a JSON array instead of a table", NULL },
		{ "all", 'a', 0, G_OPTION_ARG_NONE, &all,
		  "List every USB device, not only smart-card readers", NULL },
		{ NULL }
	};
	g_autoptr(GOptionContext) ctx =
		g_option_context_new("- list USB smart-card readers");
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) devs = NULL;
	libusb_context *usb = NULL;
	int rc;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(ctx,
		"HELD BY names a kernel driver bound to an interface or the "
		"process that claimed one\n(e.g. pcscd); such a reader cannot "
		"be passed through until it lets go.\n"
		"Exit status: 0 listed (also when there are none), 1 libusb "
		"failed, 2 bad command line.\n");
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc > 1) {
		fprintf(stderr, "ccid-agent: unexpected argument '%s'\n"
			"Try '%s --help'.\n", argv[1], argv[0]);
		return AGENT_EXIT_USAGE;
	}
	rc = libusb_init(&usb);
	if (rc != 0) {
		ccid_usb_set_error(&error, rc, "cannot initialise libusb");
		fprintf(stderr, "ccid-agent: %s\n", error->message);
		return AGENT_EXIT_FAILED;
	}
	devs = ccid_usb_scan(usb, NULL, !all, &error);
	libusb_exit(usb);
	if (devs == NULL) {
		fprintf(stderr, "ccid-agent: %s\n", error->message);
		return AGENT_EXIT_FAILED;
	}
	if (json)
		print_json(devs);
	else
		print_table(devs);
	return AGENT_EXIT_OK;
}
