/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-agent serve: runs in the foreground and serves an emulated CCID
 * reader with its cards to QEMU's usb-redir device over a unix or TCP
 * socket, until SIGINT or SIGTERM.  A control socket next to it lets
 * scripts pull cards out and push them back in (`ccid-agent ctl`).
 *
 * stdout carries only the QEMU and libvirt configuration, in a fixed
 * "key: value" form that scripts can read; everything else (events,
 * warnings, debug logs with -v) goes to stderr.
 */
#include "agent_cards.h"
#include "agent_cardset.h"
#include "agent_commands.h"
#include "agent_control.h"
#include "agent_json.h"
#include "agent_launch.h"
#include "agent_sock_options.h"
#include "agent_stop_signals.h"
#include "agent_usb_id.h"

#include <ccid-emu/ccid_emu.h>
#include <ccid_bridge.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* How long the agent waits, at shutdown, for QEMU to be told the device
 * is gone, and how often it retries a QEMU that is not listening yet. */
#define SERVE_DETACH_FLUSH_MS 1000u
#define SERVE_CONNECT_RETRY_MS 1000u

struct serve {
	GMainLoop *loop;
	gboolean verbose;
	struct agent_card_spec spec;
	struct agent_usb_id usb_id;
	char *serial;
	unsigned n_slots;
	enum ccid_bridge_data_path data_path;
	struct ccid_bridge_addr addr;
	gboolean listen;
	char *addr_text;
	char *control_path;

	ccid_bridge *bridge;
	agent_cardset *cards;
	ccid_bridge_endpoint *ep;
	agent_control *ctl;
	agent_stop_signals *signals;   /* freed last, after the clean-up */
};

static void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* One status line on stderr. */
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

/* --- bridge callbacks ------------------------------------------------------ */

static void on_bridge_event(void *user, enum ccid_bridge_event ev,
			    const char *peer)
{
	const char *who = peer != NULL ? peer : "peer";
	struct serve *s = user;

	switch (ev) {
	case CCID_BRIDGE_EVENT_ATTACHED:
		say("QEMU connected (%s)", who);
		break;
	case CCID_BRIDGE_EVENT_DEVICE_SHOWN: {
		struct ccid_bridge_stats st;

		ccid_bridge_get_stats(s->bridge, &st);
		say("reader attached to the VM (%s); %s data path", who,
		    st.interrupt_out ? "interrupt-both" :
		    st.interrupt_path ? "interrupt" : "bulk");
		break;
	}
	case CCID_BRIDGE_EVENT_DETACHED:
		say("QEMU disconnected (%s); card state kept, waiting for it "
		    "to come back", who);
		break;
	}
}

static void on_bridge_log(void *user, enum ccid_log_level level,
			  const char *msg)
{
	struct serve *s = user;
	const char *tag;

	if (!s->verbose && level > CCID_LOG_WARNING)
		return;
	switch (level) {
	case CCID_LOG_ERR:
		tag = "error";
		break;
	case CCID_LOG_WARNING:
		tag = "warning";
		break;
	case CCID_LOG_INFO:
		tag = "info";
		break;
	default:
		tag = "debug";
		break;
	}
	fprintf(stderr, "ccid-agent: [%s] %s\n", tag, msg);
}

/* GLib logs (the bridge's endpoints, the card backends) in the same form
 * as everything else on stderr. */
static void on_glib_log(const gchar *domain, GLogLevelFlags level,
			const gchar *msg, gpointer user)
{
	struct serve *s = user;
	const char *tag = "";

	if ((level & (G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG)) && !s->verbose)
		return;
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		tag = "[error] ";
	else if (level & G_LOG_LEVEL_WARNING)
		tag = "[warning] ";
	else if (level & G_LOG_LEVEL_DEBUG)
		tag = "[debug] ";
	fprintf(stderr, "ccid-agent: %s%s%s%s\n", tag,
		domain != NULL ? domain : "", domain != NULL ? ": " : "", msg);
}

static const struct ccid_bridge_callbacks bridge_cbs = {
	.event = on_bridge_event,
	.log = on_bridge_log,
};

/* --- control commands ------------------------------------------------------ */

struct card_move {
	struct serve *s;
	agent_control_request *req;
	unsigned slot;
	gboolean inserted;
};

static void on_card_moved(void *user, gboolean changed, const GError *error)
{
	struct card_move *m = user;

	if (error != NULL) {
		say("slot %u: cannot %s the card: %s", m->slot,
		    m->inserted ? "insert" : "remove", error->message);
		agent_control_reply_error(m->req, "%s", error->message);
	} else {
		g_autofree char *json = g_strdup_printf(
			"{\"slot\": %u, \"present\": %s, \"changed\": %s}",
			m->slot, m->inserted ? "true" : "false",
			changed ? "true" : "false");

		if (changed)
			say("slot %u: card %s", m->slot,
			    m->inserted ? "inserted" : "removed");
		agent_control_reply(m->req, json);
	}
	g_free(m);
}

static gboolean parse_slot(struct serve *s, agent_control_request *req,
			   int argc, char **argv, unsigned *slot)
{
	guint64 v = 0;

	*slot = 0;
	if (argc > 2) {
		agent_control_reply_error(req, "'%s' takes at most one "
					  "argument, the slot number",
					  argv[0]);
		return FALSE;
	}
	if (argc < 2)
		return TRUE;
	if (!g_ascii_string_to_unsigned(argv[1], 10, 0, s->n_slots - 1, &v,
					NULL)) {
		if (s->n_slots == 1)
			agent_control_reply_error(req, "no slot '%s': the "
						  "reader has only slot 0",
						  argv[1]);
		else
			agent_control_reply_error(req, "no slot '%s': the "
						  "reader has slots 0..%u",
						  argv[1], s->n_slots - 1);
		return FALSE;
	}
	*slot = (unsigned)v;
	return TRUE;
}

static void reply_status(struct serve *s, agent_control_request *req)
{
	g_autoptr(GString) j = g_string_new("{\"slots\": [");
	struct ccid_bridge_stats st;

	for (unsigned i = 0; i < s->n_slots; i++) {
		g_string_append_printf(j, "%s{\"slot\": %u, \"card\": ",
				       i ? ", " : "", i);
		agent_json_append_string(j, agent_cardset_card_name(s->cards,
								    i));
		/* busy: the card is working on a command (tests wait for
		 * it to kill QEMU with an APDU really in flight). */
		/* pin_guard_refusals: the guest's PIN commands the guard
		 * kept from the card's last try. */
		g_string_append_printf(j, ", \"present\": %s, \"busy\": %s, "
				       "\"pin_guard_refusals\": %u}",
				       agent_cardset_is_present(s->cards, i) ?
				       "true" : "false",
				       ccid_slot_is_busy(ccid_dev_get_slot(
					       ccid_bridge_get_dev(s->bridge),
					       i)) ? "true" : "false",
				       agent_cardset_pin_refusals(s->cards, i));
	}
	ccid_bridge_get_stats(s->bridge, &st);
	g_string_append_printf(j, "], \"mode\": \"%s\", \"address\": ",
			       s->listen ? "listen" : "connect");
	agent_json_append_string(j, s->addr_text);
	/* bulk_in_flips, fence_timeouts: replies that came too late for the
	 * interrupt path (docs/serve.md, "Data path"); tests read them. */
	g_string_append_printf(j, ", \"attached\": %s, \"configured\": %s, "
			       "\"sessions\": %" G_GUINT64_FORMAT ", "
			       "\"bulk_in_flips\": %" G_GUINT64_FORMAT ", "
			       "\"fence_timeouts\": %" G_GUINT64_FORMAT "}",
			       ccid_bridge_is_attached(s->bridge) ?
			       "true" : "false",
			       ccid_dev_is_configured(
				       ccid_bridge_get_dev(s->bridge)) ?
			       "true" : "false", st.sessions, st.in_flips,
			       st.fence_timeouts);
	agent_control_reply(req, j->str);
}

static void on_control(void *user, agent_control_request *req, int argc,
		       char **argv)
{
	struct serve *s = user;
	const char *cmd = argv[0];
	unsigned slot;

	if (strcmp(cmd, "insert") == 0 || strcmp(cmd, "remove") == 0) {
		struct card_move *m;

		if (!parse_slot(s, req, argc, argv, &slot))
			return;
		m = g_new0(struct card_move, 1);
		m->s = s;
		m->req = req;
		m->slot = slot;
		m->inserted = cmd[0] == 'i';
		agent_cardset_set_inserted(s->cards, slot, m->inserted,
					   on_card_moved, m);
	} else if (strcmp(cmd, "status") == 0) {
		if (argc > 1)
			agent_control_reply_error(req, "'status' takes no "
						  "argument");
		else
			reply_status(s, req);
	} else if (strcmp(cmd, "help") == 0) {
		agent_control_reply(req, "{\"commands\": [\"insert [SLOT]\", "
				    "\"remove [SLOT]\", \"status\", "
				    "\"help\"]}");
	} else {
		agent_control_reply_error(req, "unknown command '%s' "
					  "(expected insert, remove, status "
					  "or help)", cmd);
	}
}

/* --- setup ------------------------------------------------------------------- */

static char *addr_text(const struct ccid_bridge_addr *a)
{
	if (a->kind == CCID_ADDR_UNIX)
		return g_strdup_printf("unix:%s", a->path);
	if (strchr(a->host, ':') != NULL)
		return g_strdup_printf("tcp:[%s]:%u", a->host, a->port);
	return g_strdup_printf("tcp:%s:%u", a->host, a->port);
}

/* The control socket goes next to a unix socket we listen on ("X.sock"
 * -> "X.ctl"); otherwise to the default place, where `ctl` looks. */
static char *control_path_for(const struct ccid_bridge_addr *a,
			      gboolean listen)
{
	if (listen && a->kind == CCID_ADDR_UNIX) {
		if (g_str_has_suffix(a->path, ".sock"))
			return g_strdup_printf("%.*s.ctl",
					       (int)(strlen(a->path) - 5),
					       a->path);
		return g_strdup_printf("%s.ctl", a->path);
	}
	return agent_control_default_path();
}

static char *shell_word(const char *s)
{
	for (const char *p = s; *p != '\0'; p++)
		if (!g_ascii_isalnum(*p) && strchr("_,./=:@%+-", *p) == NULL)
			return g_shell_quote(s);
	return g_strdup(s);
}

static void print_config(struct serve *s)
{
	struct agent_launch_addr la = {
		.is_unix = s->addr.kind == CCID_ADDR_UNIX,
		.path = s->addr.path,
		.host = s->addr.host,
		.port = s->addr.port,
		.agent_listens = s->listen,
	};
	g_autofree char *qemu = agent_launch_qemu_line(&la);
	g_autofree char *xml = agent_launch_libvirt_xml(&la);
	g_autofree char *ctl = shell_word(s->control_path);
	g_autofree char *usb_id = agent_usb_id_describe(&s->usb_id);

	printf("# ccid-agent serve: %s card%s in %u slot%s, %s %s\n",
	       agent_card_kind_name(s->spec.kind), s->n_slots == 1 ? "" : "s",
	       s->n_slots, s->n_slots == 1 ? "" : "s",
	       s->listen ? "listening on" : "connecting to", s->addr_text);
	printf("# USB identity %s, serial %s: %s\n", usb_id, s->serial,
	       s->usb_id.about);
	printf("# QEMU arguments (the guest also needs a USB controller, "
	       "e.g. -device qemu-xhci)%s:\n",
	       s->listen ? "" :
	       "; QEMU listens, start it before or after the agent");
	printf("qemu: %s\n", qemu);
	if (s->addr.tls_dir != NULL)
		agent_sock_print_qemu_tls(&s->addr, s->listen);
	printf("# libvirt, inside <devices> (with a USB controller, e.g. "
	       "<controller type='usb' model='qemu-xhci'/>):\n");
	printf("libvirt: %s\n", xml);
	printf("# insert/remove cards while it runs: ccid-agent ctl "
	       "--control %s insert|remove|status [SLOT]\n", ctl);
	printf("control: %s\n", s->control_path);
	fflush(stdout);
}

/* Maps a setup error to the exit status: addresses are usage errors. */
static int fail(const GError *error, const char *what)
{
	gboolean usage = g_error_matches(error, CCID_BRIDGE_ERROR,
					 CCID_BRIDGE_ERROR_ADDRESS) ||
			 g_error_matches(error, AGENT_CONTROL_ERROR,
					 AGENT_CONTROL_ERROR_ADDRESS);

	fprintf(stderr, "ccid-agent: %s%s\n", what, error->message);
	return usage ? AGENT_EXIT_USAGE : AGENT_EXIT_FAILED;
}

static int serve_run(struct serve *s)
{
	struct ccid_config cfg;
	g_autoptr(GError) error = NULL;
	g_autofree char *db_dir = NULL;
	gboolean created = FALSE;

	/* interrupt-both: commands no longer than the 16-bit interrupt
	 * length (longer APDUs chained by the guest's driver). */
	if (s->data_path == CCID_BRIDGE_PATH_INTERRUPT_BOTH)
		ccid_bridge_config_init(&cfg);
	else
		ccid_config_init(&cfg);
	agent_usb_id_apply(&s->usb_id, &cfg);
	cfg.serial = s->serial;
	cfg.n_slots = (uint8_t)s->n_slots;
	cfg.max_busy_slots = (uint8_t)s->n_slots;
	s->bridge = ccid_bridge_new(&cfg, &bridge_cbs, s, &error);
	if (s->bridge == NULL)
		return fail(error, "");
	ccid_bridge_set_data_path(s->bridge, s->data_path);
	s->cards = agent_cardset_new(ccid_bridge_get_dev(s->bridge), NULL);
	/* Cards first: a bad NSS database must fail before any socket
	 * appears for QEMU to find. */
	if (!agent_cards_add(s->cards, &s->spec, s->n_slots, &db_dir, &created,
			     &error))
		return fail(error, "cannot create the card: ");
	if (db_dir != NULL)
		say("virtual card on NSS database %s (%s)", db_dir,
		    created ? "created now" : "existing");

	if (s->listen)
		s->ep = ccid_bridge_listen(s->bridge, &s->addr, &error);
	else
		s->ep = ccid_bridge_connect(s->bridge, &s->addr,
					    SERVE_CONNECT_RETRY_MS, &error);
	if (s->ep == NULL)
		return fail(error, "");
	s->ctl = agent_control_new(s->control_path, on_control, s, &error);
	if (s->ctl == NULL)
		return fail(error, "");

	print_config(s);
	say("serving %u %s card%s %s %s; control socket %s; stop with Ctrl-C",
	    s->n_slots, agent_card_kind_name(s->spec.kind),
	    s->n_slots == 1 ? "" : "s",
	    s->listen ? "on" : "to", s->addr_text, s->control_path);

	s->loop = g_main_loop_new(NULL, FALSE);
	s->signals = agent_stop_signals_new(s->loop);
	g_main_loop_run(s->loop);

	say("%s received: detaching the reader and exiting",
	    agent_stop_signals_received(s->signals) != NULL ?
	    agent_stop_signals_received(s->signals) : "stop request");
	/* QEMU first learns the device is gone, then the sockets close. */
	ccid_bridge_detach(s->bridge, SERVE_DETACH_FLUSH_MS);
	return AGENT_EXIT_OK;
}

static void serve_clear(struct serve *s)
{
	/* Endpoint and control socket first: their files disappear and no
	 * new peer arrives while the rest goes.  Then the device, which
	 * detaches the cards, then the cards. */
	g_clear_pointer(&s->ep, ccid_bridge_endpoint_free);
	g_clear_pointer(&s->ctl, agent_control_free);
	g_clear_pointer(&s->bridge, ccid_bridge_free);
	g_clear_pointer(&s->cards, agent_cardset_free);
	g_clear_pointer(&s->loop, g_main_loop_unref);
	ccid_bridge_addr_clear(&s->addr);
	agent_card_spec_clear(&s->spec);
	g_clear_pointer(&s->addr_text, g_free);
	g_clear_pointer(&s->serial, g_free);
	g_clear_pointer(&s->control_path, g_free);
	/* Last: until here a second signal must not kill the process. */
	g_clear_pointer(&s->signals, agent_stop_signals_free);
}

int agent_cmd_serve(int argc, char **argv)
{
	g_autofree char *card = NULL;
	g_autofree char *certs = NULL;
	g_autofree char *listen_at = NULL;
	g_autofree char *connect_to = NULL;
	g_autofree char *control = NULL;
	g_autofree char *usb_id = NULL;
	g_autofree char *serial = NULL;
	g_autofree char *data_path = NULL;
	g_autofree char *tls_creds = NULL;
	g_autofree char *allow_group = NULL;
	gint slots = 1;
	gboolean verbose = FALSE;
	const GOptionEntry entries[] = {
		{ "card", 'c', 0, G_OPTION_ARG_STRING, &card,
		  "Card in each slot: virtual (default), virtual:NSSDB_DIR, "
		  "loopback, pcsc:READER[,idle=MS][,lock_timeout=MS] (the "
		  "real card in a host reader, shared), "
		  "nss:NSSDB_DIR[,token=NAME][,timeout=MS] (a CAC card on the "
		  "keys of a PKCS#11 token), or piv[:DIR] (a writable virtual "
		  "PIV card stored in DIR); any of them may end in "
		  ",pin_guard=off to let the guest spend the card's last PIN "
		  "try (kept for the host user by default)", "CARD" },
		{ "slots", 's', 0, G_OPTION_ARG_INT, &slots,
		  "Number of slots, each with its own card (1-8, default 1)",
		  "N" },
		{ "certs", 0, 0, G_OPTION_ARG_STRING, &certs,
		  "Nicknames of the virtual card's three certificates",
		  "ID,SIGN,ENC" },
		{ "listen", 'l', 0, G_OPTION_ARG_STRING, &listen_at,
		  "Listen for QEMU on unix:PATH or tcp:HOST:PORT (default "
		  "unix:$XDG_RUNTIME_DIR/ccid-emu/ccid0.sock)", "ADDR" },
		{ "connect", 0, 0, G_OPTION_ARG_STRING, &connect_to,
		  "Connect to a QEMU chardev in server mode at unix:PATH or "
		  "tcp:HOST:PORT, and reconnect whenever it goes away",
		  "ADDR" },
		{ "tls-creds", 0, 0, G_OPTION_ARG_FILENAME, &tls_creds,
		  "TLS on a tcp: --listen or --connect, with the certificates "
		  "in DIR laid out as for QEMU's tls-creds-x509 (ca-cert.pem, "
		  "server-cert.pem/server-key.pem to listen, "
		  "client-cert.pem/client-key.pem to connect); the peer's "
		  "certificate must be signed by ca-cert.pem "
		  "(docs/remote-reader.md)", "DIR" },
		{ "allow-group", 0, 0, G_OPTION_ARG_STRING, &allow_group,
		  "Also let processes of GROUP connect to a unix --listen "
		  "socket (e.g. QEMU's group under libvirt); default: only "
		  "your own user", "GROUP" },
		{ "control", 0, 0, G_OPTION_ARG_FILENAME, &control,
		  "Control socket for 'ccid-agent ctl' (default: next to a "
		  "unix --listen socket, X.sock -> X.ctl, else "
		  "$XDG_RUNTIME_DIR/ccid-emu/ccid0.ctl)", "PATH" },
		{ "usb-id", 0, 0, G_OPTION_ARG_STRING, &usb_id,
		  "USB identity of the reader: scr335 (default; a VID:PID that "
		  "stock libccid lists), ccid-emu (the project's own "
		  "1209:CC1D), or VID:PID in hex", "ID" },
		{ "serial", 0, 0, G_OPTION_ARG_STRING, &serial,
		  "USB serial number string (default: derived from the "
		  "address, so each reader has its own and keeps it across "
		  "restarts)", "SERIAL" },
		{ "data-path", 0, 0, G_OPTION_ARG_STRING, &data_path,
		  "How bulk data travels to QEMU: auto (default: the faster "
		  "interrupt path for bulk-IN when the peer is QEMU's "
		  "usb-redir, else bulk), bulk, interrupt, or interrupt-both "
		  "(bulk-OUT too; behind uhci/ehci only, see docs/serve.md)",
		  "PATH" },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
		  "Log usbredir and device model debug messages on stderr",
		  NULL },
		{ NULL }
	};
	g_autoptr(GOptionContext) ctx =
		g_option_context_new("- serve an emulated CCID reader to QEMU");
	g_autoptr(GError) error = NULL;
	struct serve s = { 0 };
	g_autofree char *default_addr = NULL;
	const char *spec;
	int rc;

	g_option_context_add_main_entries(ctx, entries, NULL);
	g_option_context_set_description(ctx,
		"Runs in the foreground until SIGINT or SIGTERM.  stdout gets "
		"the QEMU arguments and\nthe libvirt <redirdev> element to "
		"use; events go to stderr.\n"
		"Exit status: 0 stopped by a signal, 1 could not serve (socket "
		"in use, card or\nNSS database unusable), 2 bad command line "
		"or address.\n");
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc > 1)
		return agent_usage_error(argv[0], "unexpected argument '%s'",
				   argv[1]);
	if (slots < 1 || slots > (gint)CCID_EMU_MAX_SLOTS)
		return agent_usage_error(argv[0], "--slots must be 1..%u, got %d",
				   CCID_EMU_MAX_SLOTS, slots);
	if (listen_at != NULL && connect_to != NULL)
		return agent_usage_error(argv[0], "--listen and --connect exclude "
				   "each other");
	if (!agent_usb_id_parse(usb_id, &s.usb_id, &error) ||
	    (serial != NULL && !agent_usb_serial_check(serial, &error)))
		return agent_usage_error(argv[0], "%s", error->message);
	if (!agent_card_spec_parse(card != NULL ? card : "virtual", &s.spec,
				   &error) ||
	    (certs != NULL && !agent_card_spec_set_nicknames(&s.spec, certs,
							      &error))) {
		agent_card_spec_clear(&s.spec);
		return agent_usage_error(argv[0], "%s", error->message);
	}
	if (certs != NULL && s.spec.kind != AGENT_CARD_VIRTUAL) {
		agent_card_spec_clear(&s.spec);
		return agent_usage_error(argv[0], "--certs only applies to virtual "
				   "cards");
	}

	if (!ccid_bridge_data_path_parse(data_path != NULL ? data_path : "auto",
					 &s.data_path, &error)) {
		agent_card_spec_clear(&s.spec);
		return agent_usage_error(argv[0], "--data-path: %s",
					 error->message);
	}
	s.verbose = verbose;
	s.n_slots = (unsigned)slots;
	s.listen = connect_to == NULL;
	if (connect_to != NULL) {
		spec = connect_to;
	} else if (listen_at != NULL) {
		spec = listen_at;
	} else {
		g_autofree char *path = g_build_filename(
			g_get_user_runtime_dir(), "ccid-emu", "ccid0.sock",
			NULL);

		default_addr = g_strdup_printf("unix:%s", path);
		spec = default_addr;
	}
	if (!ccid_bridge_addr_parse(spec, &s.addr, &error)) {
		agent_card_spec_clear(&s.spec);
		return agent_usage_error(argv[0], "bad address: %s", error->message);
	}
	if (!agent_sock_options_apply(&s.addr, s.listen, tls_creds, allow_group,
				      &error)) {
		serve_clear(&s);
		return agent_usage_error(argv[0], "%s", error->message);
	}
	s.addr_text = addr_text(&s.addr);
	s.serial = serial != NULL ? g_strdup(serial) :
		   agent_usb_serial_for(s.addr_text);
	s.control_path = control != NULL ? g_strdup(control) :
			 control_path_for(&s.addr, s.listen);
	if (s.addr.kind == CCID_ADDR_UNIX &&
	    strcmp(s.control_path, s.addr.path) == 0) {
		serve_clear(&s);
		return agent_usage_error(argv[0], "the control socket cannot be the "
				   "usbredir socket itself");
	}
	g_log_set_default_handler(on_glib_log, &s);
	/* A control client or QEMU that vanishes mid-write must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	rc = serve_run(&s);
	serve_clear(&s);
	g_log_set_default_handler(g_log_default_handler, NULL);
	return rc;
}
