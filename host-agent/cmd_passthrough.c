/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-agent passthrough: hands one real USB reader whole to one VM's
 * usb-redir device (raw usbredir, usbredirhost + libusb), in the
 * foreground until SIGINT or SIGTERM.  The reader is claimed for as long
 * as the agent runs, whether QEMU is connected or not; on exit it is
 * released and any kernel driver detached with --force comes back.
 *
 * stdout carries only the QEMU and libvirt configuration ("key: value"
 * lines like serve's, `device:` last, once the reader is claimed);
 * everything else goes to stderr.
 */
#include "agent_commands.h"
#include "agent_launch.h"
#include "agent_sock_options.h"
#include "agent_stop_signals.h"

#include <ccid_endpoint.h>
#include <ccid_passthrough.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define PT_DETACH_FLUSH_MS 1000u
#define PT_CONNECT_RETRY_MS 1000u

struct passthrough {
	GMainLoop *loop;
	gboolean verbose;
	struct ccid_usb_selector sel;
	struct ccid_bridge_addr addr;
	gboolean listen;
	char *addr_text;
	ccid_passthrough *pt;
	ccid_endpoint *ep;
	agent_stop_signals *signals;   /* freed last, after the clean-up */
	int exit_status;
};

static void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static void say(const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	fprintf(stderr, "ccid-agent: %s\n", msg);
	fflush(stderr);
}

static void on_event(void *user, enum ccid_passthrough_event ev,
		     const char *detail)
{
	struct passthrough *p = user;

	switch (ev) {
	case CCID_PT_EVENT_ATTACHED:
		say("QEMU connected (%s): reader passed through", detail);
		break;
	case CCID_PT_EVENT_DETACHED:
		say("QEMU disconnected (%s); reader released, reset and "
		    "claimed again, waiting for QEMU", detail);
		break;
	case CCID_PT_EVENT_DEVICE_GONE:
		say("reader unplugged: %s; the VM saw it go, waiting for it "
		    "to be plugged in again", detail);
		break;
	case CCID_PT_EVENT_DEVICE_BACK:
		say("reader plugged in again and claimed: %s", detail);
		break;
	case CCID_PT_EVENT_CLAIM_LOST:
		say("error: cannot keep the reader: %s", detail);
		p->exit_status = AGENT_EXIT_FAILED;
		if (p->loop != NULL)
			g_main_loop_quit(p->loop);
		break;
	}
}

static void on_log(void *user, enum ccid_passthrough_level level,
		   const char *msg)
{
	struct passthrough *p = user;
	static const char *const tags[] = {
		[CCID_PT_LOG_ERROR] = "error",
		[CCID_PT_LOG_WARNING] = "warning",
		[CCID_PT_LOG_INFO] = "info",
		[CCID_PT_LOG_DEBUG] = "debug",
	};

	if (!p->verbose && level > CCID_PT_LOG_WARNING)
		return;
	fprintf(stderr, "ccid-agent: [%s] %s\n", tags[level], msg);
}

static void on_glib_log(const gchar *domain, GLogLevelFlags level,
			const gchar *msg, gpointer user)
{
	struct passthrough *p = user;

	if ((level & (G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG)) && !p->verbose)
		return;
	fprintf(stderr, "ccid-agent: %s%s\n",
		(level & G_LOG_LEVEL_WARNING) ? "[warning] " : "", msg);
}

static gboolean ep_attach(void *user, int fd, const char *peer,
			  GError **error)
{
	return ccid_passthrough_attach_fd(((struct passthrough *)user)->pt, fd,
					  peer, error);
}

static gboolean ep_is_attached(void *user)
{
	return ccid_passthrough_is_attached(((struct passthrough *)user)->pt);
}

static const struct ccid_endpoint_session ep_session = {
	.attach = ep_attach,
	.is_attached = ep_is_attached,
};

static const struct ccid_passthrough_callbacks pt_cbs = {
	.event = on_event,
	.log = on_log,
};

static void print_config(struct passthrough *p)
{
	const struct ccid_usb_info *d = ccid_passthrough_get_info(p->pt);
	struct agent_launch_addr la = {
		.is_unix = p->addr.kind == CCID_ADDR_UNIX,
		.path = p->addr.path,
		.host = p->addr.host,
		.port = p->addr.port,
		.agent_listens = p->listen,
	};
	g_autofree char *qemu = agent_launch_qemu_line(&la);
	g_autofree char *xml = agent_launch_libvirt_xml(&la);

	printf("# ccid-agent passthrough: %04x:%04x %s%s%s (bus %03u device "
	       "%03u), %s %s\n", d->vid, d->pid,
	       d->product != NULL ? d->product : "USB device",
	       d->serial != NULL ? ", serial " : "",
	       d->serial != NULL ? d->serial : "", d->bus, d->addr,
	       p->listen ? "listening on" : "connecting to", p->addr_text);
	printf("# QEMU arguments (the guest also needs a USB controller, "
	       "e.g. -device qemu-xhci)%s:\n",
	       p->listen ? "" :
	       "; QEMU listens, start it before or after the agent");
	printf("qemu: %s\n", qemu);
	if (p->addr.tls_dir != NULL)
		agent_sock_print_qemu_tls(&p->addr, p->listen);
	printf("# libvirt, inside <devices> (with a USB controller, e.g. "
	       "<controller type='usb' model='qemu-xhci'/>):\n");
	printf("libvirt: %s\n", xml);
	printf("# the reader, claimed for the VM until this agent stops:\n");
	printf("device: %04x:%04x %03u-%03u %s\n", d->vid, d->pid, d->bus,
	       d->addr, d->node);
	fflush(stdout);
}

static int fail(const GError *error)
{
	gboolean usage = g_error_matches(error, CCID_BRIDGE_ERROR,
					 CCID_BRIDGE_ERROR_ADDRESS) ||
			 g_error_matches(error, CCID_USB_ERROR,
					 CCID_USB_ERROR_SELECTOR);

	fprintf(stderr, "ccid-agent: %s\n", error->message);
	return usage ? AGENT_EXIT_USAGE : AGENT_EXIT_FAILED;
}

static int passthrough_run(struct passthrough *p, gboolean force)
{
	struct ccid_passthrough_options opts = {
		.force = force,
		.verbose = p->verbose,
	};
	g_autoptr(GError) error = NULL;

	p->pt = ccid_passthrough_new(&p->sel, &opts, &pt_cbs, p, &error);
	if (p->pt == NULL)
		return fail(error);
	if (!ccid_passthrough_get_info(p->pt)->is_ccid)
		say("warning: the device has no smart-card (class 0x0B) "
		    "interface; passing it through anyway");
	if (p->listen)
		p->ep = ccid_endpoint_listen(&ep_session, p, &p->addr, &error);
	else
		p->ep = ccid_endpoint_connect(&ep_session, p, &p->addr,
					      PT_CONNECT_RETRY_MS, &error);
	if (p->ep == NULL)
		return fail(error);

	print_config(p);
	say("reader claimed; passing it through %s %s; stop with Ctrl-C",
	    p->listen ? "on" : "to", p->addr_text);
	p->loop = g_main_loop_new(NULL, FALSE);
	p->signals = agent_stop_signals_new(p->loop);
	g_main_loop_run(p->loop);
	if (agent_stop_signals_received(p->signals) != NULL)
		say("%s received: releasing the reader and exiting",
		    agent_stop_signals_received(p->signals));
	return p->exit_status;
}

static void passthrough_clear(struct passthrough *p)
{
	/* No new peer while the device goes; then the VM is told the device
	 * is gone and the reader is released. */
	g_clear_pointer(&p->ep, ccid_endpoint_free);
	if (p->pt != NULL)
		ccid_passthrough_free_full(g_steal_pointer(&p->pt),
					   PT_DETACH_FLUSH_MS);
	g_clear_pointer(&p->loop, g_main_loop_unref);
	ccid_usb_selector_clear(&p->sel);
	ccid_bridge_addr_clear(&p->addr);
	g_clear_pointer(&p->addr_text, g_free);
	/* Last: until the reader is released a second signal must not kill
	 * the process. */
	g_clear_pointer(&p->signals, agent_stop_signals_free);
}

int agent_cmd_passthrough(int argc, char **argv)
{
	g_autofree char *device = NULL;
	g_autofree char *listen_at = NULL;
	g_autofree char *connect_to = NULL;
	g_autofree char *default_addr = NULL;
	g_autofree char *tls_creds = NULL;
	g_autofree char *allow_group = NULL;
	gboolean force = FALSE, verbose = FALSE;
	const GOptionEntry entries[] = {
		{ "device", 'd', 0, G_OPTION_ARG_STRING, &device,
		  "The reader: VID:PID[:SERIAL] (hex) or BUS-ADDR (decimal); "
		  "see 'ccid-agent list-usb'", "DEVICE" },
		{ "listen", 'l', 0, G_OPTION_ARG_STRING, &listen_at,
		  "Listen for QEMU on unix:PATH or tcp:HOST:PORT (default "
		  "unix:$XDG_RUNTIME_DIR/ccid-emu/passthrough0.sock)", "ADDR" },
		{ "connect", 0, 0, G_OPTION_ARG_STRING, &connect_to,
		  "Connect to a QEMU chardev in server mode at unix:PATH or "
		  "tcp:HOST:PORT, and reconnect whenever it goes away",
		  "ADDR" },
		{ "tls-creds", 0, 0, G_OPTION_ARG_FILENAME, &tls_creds,
		  "TLS on a tcp: --listen or --connect, with certificates in "
		  "DIR laid out as for QEMU's tls-creds-x509 "
		  "(docs/remote-reader.md)", "DIR" },
		{ "allow-group", 0, 0, G_OPTION_ARG_STRING, &allow_group,
		  "Also let processes of GROUP connect to a unix --listen "
		  "socket (e.g. QEMU's group under libvirt)", "GROUP" },
		{ "force", 'f', 0, G_OPTION_ARG_NONE, &force,
		  "Detach a kernel driver bound to the reader (re-attached on "
		  "exit); never takes it from another process", NULL },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
		  "Log usbredirhost and libusb debug messages on stderr", NULL },
		{ NULL }
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new(
		"- pass a real USB reader through to one VM");
	g_autoptr(GError) error = NULL;
	struct passthrough p = { 0 };
	const char *spec;
	int rc;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(ctx,
		"Runs in the foreground until SIGINT or SIGTERM and keeps the "
		"reader claimed all that\ntime; a reader pcscd or another "
		"program holds is refused, naming the holder.\nstdout gets the "
		"QEMU arguments and the libvirt <redirdev> element; events go "
		"to stderr.\nExit status: 0 stopped by a signal, 1 no such "
		"reader, reader in use or lost,\n2 bad command line, device "
		"or address.\n");
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc > 1)
		return agent_usage_error(argv[0], "unexpected argument '%s'",
				   argv[1]);
	if (device == NULL)
		return agent_usage_error(argv[0], "--device is required (VID:PID"
				   "[:SERIAL] or BUS-ADDR; 'ccid-agent "
				   "list-usb' shows the readers)");
	if (listen_at != NULL && connect_to != NULL)
		return agent_usage_error(argv[0], "--listen and --connect exclude "
				   "each other");
	if (!ccid_usb_selector_parse(device, &p.sel, &error))
		return agent_usage_error(argv[0], "bad --device: %s", error->message);
	p.verbose = verbose;
	p.listen = connect_to == NULL;
	if (connect_to != NULL) {
		spec = connect_to;
	} else if (listen_at != NULL) {
		spec = listen_at;
	} else {
		g_autofree char *path = g_build_filename(
			g_get_user_runtime_dir(), "ccid-emu",
			"passthrough0.sock", NULL);

		default_addr = g_strdup_printf("unix:%s", path);
		spec = default_addr;
	}
	if (!ccid_bridge_addr_parse(spec, &p.addr, &error)) {
		ccid_usb_selector_clear(&p.sel);
		return agent_usage_error(argv[0], "bad address: %s", error->message);
	}
	if (!agent_sock_options_apply(&p.addr, p.listen, tls_creds, allow_group,
				      &error)) {
		ccid_usb_selector_clear(&p.sel);
		ccid_bridge_addr_clear(&p.addr);
		return agent_usage_error(argv[0], "%s", error->message);
	}
	p.addr_text = ccid_endpoint_addr_describe(&p.addr);
	g_log_set_default_handler(on_glib_log, &p);
	signal(SIGPIPE, SIG_IGN);

	rc = passthrough_run(&p, force);
	passthrough_clear(&p);
	g_log_set_default_handler(g_log_default_handler, NULL);
	return rc;
}
