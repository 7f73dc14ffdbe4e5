/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-agent daemon: the long-running service behind the D-Bus API of
 * dbus/org.ccidemu.Agent1.xml.  This file is the process: options, the
 * configuration, the bus name, signals.  The objects and methods are
 * daemon/daemon_service.c.
 */
#include "agent_commands.h"
#include "agent_stop_signals.h"
#include "daemon_config.h"
#include "daemon_service.h"
#include "daemon_state.h"

#include <gio/gio.h>
#include <glib-unix.h>
#include <signal.h>
#include <unistd.h>

#define DAEMON_BUS_NAME "org.ccidemu.Agent1"

struct daemon {
	GMainLoop *loop;
	GBusType bus_type;
	daemon_service *svc;
	int exit_code;
};

#define say daemon_say

static void on_bus_acquired(GDBusConnection *conn, const char *name,
			    gpointer data)
{
	struct daemon *d = data;
	g_autoptr(GError) error = NULL;

	if (!daemon_service_export(d->svc, conn, &error)) {
		say("%s", error->message);
		d->exit_code = AGENT_EXIT_FAILED;
		g_main_loop_quit(d->loop);
	}
}

static void on_name_acquired(GDBusConnection *conn, const char *name,
			     gpointer data)
{
	struct daemon *d = data;

	guint n = daemon_service_n_entries(d->svc);

	say("ready: %s on the %s bus, %u entr%s", name,
	    d->bus_type == G_BUS_TYPE_SYSTEM ? "system" : "session", n,
	    n == 1 ? "y" : "ies");
}

static void on_name_lost(GDBusConnection *conn, const char *name,
			 gpointer data)
{
	struct daemon *d = data;

	if (conn == NULL)
		say("cannot connect to the %s bus (is DBUS_SESSION_BUS_ADDRESS "
		    "set? run it under 'dbus-run-session' or a desktop "
		    "session)", d->bus_type == G_BUS_TYPE_SYSTEM ? "system" :
		    "session");
	else
		say("the name %s is taken: another 'ccid-agent daemon' runs "
		    "(use --replace to take over)", name);
	d->exit_code = AGENT_EXIT_FAILED;
	g_main_loop_quit(d->loop);
}

int agent_cmd_daemon(int argc, char **argv)
{
	gboolean system_bus = FALSE, replace = FALSE, no_readers = FALSE;
	gboolean no_libvirt = FALSE;
	g_auto(GStrv) libvirt = NULL;
	static const char *const default_libvirt[] = {
		"qemu:///session", "qemu:///system", NULL
	};
	gboolean no_usb = FALSE;
	g_autofree char *config = NULL;
	g_autofree char *state = NULL;
	GOptionEntry options[] = {
		{ "config", 'C', 0, G_OPTION_ARG_FILENAME, &config,
		  "configuration file (default "
		  "$XDG_CONFIG_HOME/ccid-emu/agent.conf)", "FILE" },
		{ "state", 0, 0, G_OPTION_ARG_FILENAME, &state,
		  "remembered VMs and attachments (default "
		  "$XDG_CONFIG_HOME/ccid-emu/vms.conf)", "FILE" },
		{ "no-readers", 0, 0, G_OPTION_ARG_NONE, &no_readers,
		  "do not offer the host's PC/SC readers as shared entries",
		  NULL },
		{ "libvirt", 0, 0, G_OPTION_ARG_STRING_ARRAY, &libvirt,
		  "the running domains of this libvirt URI are VMs "
		  "(repeatable; default qemu:///session and qemu:///system)",
		  "URI" },
		{ "no-libvirt", 0, 0, G_OPTION_ARG_NONE, &no_libvirt,
		  "no libvirt domains", NULL },
		{ "no-usb", 0, 0, G_OPTION_ARG_NONE, &no_usb,
		  "do not offer the host's USB readers as passthrough entries",
		  NULL },
		{ "system", 0, 0, G_OPTION_ARG_NONE, &system_bus,
		  "serve on the system bus instead of the session bus", NULL },
		{ "replace", 0, 0, G_OPTION_ARG_NONE, &replace,
		  "take the bus name over from a running daemon", NULL },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
	struct daemon d = { 0 };
	struct daemon_config cfg = { 0 };
	g_autofree char *config_path = NULL;
	g_autofree char *state_path = NULL;
	agent_stop_signals *signals;
	guint owner_id;

	g_option_context_set_summary(ctx, "Serves the entries (virtual cards) "
		"to VMs over D-Bus (org.ccidemu.Agent1); see "
		"docs/daemon.md.");
	g_option_context_add_main_entries(ctx, options, NULL);
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc > 1)
		return agent_usage_error(argv[0], "unexpected argument '%s'",
					 argv[1]);
	d.bus_type = system_bus ? G_BUS_TYPE_SYSTEM : G_BUS_TYPE_SESSION;
	config_path = config != NULL ? g_strdup(config) :
		      daemon_config_default_path();
	state_path = state != NULL ? g_strdup(state) :
		     daemon_state_default_path();
	daemon_config_load(&cfg, config_path);
	for (guint i = 0; i < cfg.errors->len; i++)
		say("configuration: %s",
		    (const char *)g_ptr_array_index(cfg.errors, i));
	if (no_libvirt && libvirt != NULL)
		return agent_usage_error(argv[0], "--libvirt and --no-libvirt "
					 "exclude each other");
	d.svc = daemon_service_new(&cfg, state_path, !no_readers);
	/* A session libvirtd not running has no running domains: the
	 * daemon does not start one (it looks again every 5 s).  Set before
	 * any thread reads the environment. */
	if (!no_libvirt)
		g_setenv("LIBVIRT_AUTOSTART", "0", FALSE);
	/* Root's qemu:///session is the system instance: its domains
	 * would show twice. */
	if (!no_libvirt)
		daemon_service_set_libvirt(d.svc, libvirt != NULL ?
			(const char *const *)libvirt : getuid() == 0 ?
			default_libvirt + 1 : default_libvirt);
	daemon_service_set_usb(d.svc, !no_readers && !no_usb);
	d.loop = g_main_loop_new(NULL, FALSE);
	owner_id = g_bus_own_name(d.bus_type, DAEMON_BUS_NAME,
		G_BUS_NAME_OWNER_FLAGS_ALLOW_REPLACEMENT |
		(replace ? G_BUS_NAME_OWNER_FLAGS_REPLACE : 0),
		on_bus_acquired, on_name_acquired, on_name_lost, &d, NULL);
	signals = agent_stop_signals_new(d.loop);
	g_main_loop_run(d.loop);
	if (agent_stop_signals_received(signals) != NULL)
		say("%s received: stopping", agent_stop_signals_received(signals));
	g_bus_unown_name(owner_id);
	daemon_service_free(d.svc);
	daemon_config_clear(&cfg);
	g_main_loop_unref(d.loop);
	/* Last: until here a second signal must not kill the process. */
	agent_stop_signals_free(signals);
	return d.exit_code;
}
