/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QEMU and libvirt configuration lines (see agent_launch.h).
 */
#include "agent_launch.h"

#include <string.h>

/* QEMU's option parser ends a value at ',' unless it is doubled. */
static void append_qemu_value(GString *out, const char *v)
{
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == ',')
			g_string_append_c(out, ',');
		g_string_append_c(out, *p);
	}
}

char **agent_launch_qemu_argv(const struct agent_launch_addr *a)
{
	GString *chardev = g_string_new("socket,id=" AGENT_LAUNCH_CHARDEV_ID);
	char **argv = g_new0(char *, 5);

	if (a->is_unix) {
		g_string_append(chardev, ",path=");
		append_qemu_value(chardev, a->path);
	} else {
		g_string_append(chardev, ",host=");
		append_qemu_value(chardev, a->host);
		g_string_append_printf(chardev, ",port=%u", a->port);
	}
	if (a->agent_listens)
		g_string_append_printf(chardev, ",reconnect=%u",
				       AGENT_LAUNCH_RECONNECT_S);
	else
		g_string_append(chardev, ",server=on,wait=off");
	argv[0] = g_strdup("-chardev");
	argv[1] = g_string_free(chardev, FALSE);
	argv[2] = g_strdup("-device");
	argv[3] = g_strdup("usb-redir,chardev=" AGENT_LAUNCH_CHARDEV_ID
			   ",id=" AGENT_LAUNCH_DEVICE_ID);
	return argv;
}

static gboolean shell_safe(const char *s)
{
	static const char safe[] = "abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789_,./=:@%+-";

	return s[0] != '\0' && strspn(s, safe) == strlen(s);
}

char *agent_launch_qemu_line(const struct agent_launch_addr *a)
{
	g_auto(GStrv) argv = agent_launch_qemu_argv(a);
	GString *line = g_string_new(NULL);

	for (guint i = 0; argv[i] != NULL; i++) {
		if (i > 0)
			g_string_append_c(line, ' ');
		if (shell_safe(argv[i])) {
			g_string_append(line, argv[i]);
		} else {
			g_autofree char *q = g_shell_quote(argv[i]);

			g_string_append(line, q);
		}
	}
	return g_string_free(line, FALSE);
}

static void append_attr(GString *out, const char *name, const char *value)
{
	g_autofree char *esc = g_markup_escape_text(value, -1);

	g_string_append_printf(out, " %s='%s'", name, esc);
}

char *agent_launch_libvirt_xml(const struct agent_launch_addr *a)
{
	GString *x = g_string_new(NULL);
	g_autofree char *port = g_strdup_printf("%u", a->port);

	g_string_append_printf(x, "<redirdev bus='usb' type='%s'>",
			       a->is_unix ? "unix" : "tcp");
	/* libvirt's mode is QEMU's side: 'connect' to a listening agent,
	 * 'bind' to be the server an agent connects to. */
	g_string_append_printf(x, "<source mode='%s'",
			       a->agent_listens ? "connect" : "bind");
	if (a->is_unix) {
		append_attr(x, "path", a->path);
	} else {
		append_attr(x, "host", a->host);
		append_attr(x, "service", port);
	}
	if (a->agent_listens)
		g_string_append_printf(x, "><reconnect enabled='yes' "
				       "timeout='%u'/></source>",
				       AGENT_LAUNCH_RECONNECT_S);
	else
		g_string_append(x, "/>");
	if (!a->is_unix)
		g_string_append(x, "<protocol type='raw'/>");
	g_string_append(x, "</redirdev>");
	return g_string_free(x, FALSE);
}
