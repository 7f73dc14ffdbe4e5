/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's command-line client: list, vms, vm add|remove, attach,
 * detach, insert, remove and watch, all through the D-Bus API
 * (dbus/org.ccidemu.Agent1.xml).  The bus starts the daemon when its
 * service file is installed.  JSON output is written with json-glib.
 *
 * Exit codes (docs/daemon.md): 0 done, 1 failed, 2 usage, 3 no such
 * entry/VM/session, 4 busy (held by another VM), 5 not supported for this
 * entry, 6 the daemon cannot be reached.
 */
#include "agent-dbus.h"
#include "agent_commands.h"
#include "agent_text_table.h"
#include "daemon_errors.h"

#include <errno.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define DAEMON_BUS_NAME "org.ccidemu.Agent1"
#define DAEMON_PATH "/org/ccidemu/Agent1"

static int exit_code_for(const GError *error)
{
	if (error->domain == DAEMON_ERROR) {
		switch (error->code) {
		case DAEMON_ERROR_NOT_FOUND:
			return AGENT_EXIT_NOT_FOUND;
		case DAEMON_ERROR_BUSY:
			return AGENT_EXIT_BUSY;
		case DAEMON_ERROR_NOT_SUPPORTED:
			return AGENT_EXIT_NOT_SUPPORTED;
		case DAEMON_ERROR_INVALID_ARGS:
			return AGENT_EXIT_USAGE;
		default:
			return AGENT_EXIT_FAILED;
		}
	}
	if (g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SPAWN_FAILED) ||
	    g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SPAWN_CHILD_EXITED) ||
	    error->domain == G_IO_ERROR)
		return AGENT_EXIT_NO_DAEMON;
	return AGENT_EXIT_FAILED;
}

/* Prints the error and returns its exit code. */
static int report(const char *argv0, GError *error)
{
	int code;

	g_dbus_error_strip_remote_error(error);
	code = exit_code_for(error);
	if (code == AGENT_EXIT_NO_DAEMON)
		fprintf(stderr, "%s: the daemon cannot be reached: %s (start "
			"it with 'ccid-agent daemon' or 'systemctl --user "
			"start ccid-agent')\n", argv0, error->message);
	else if (g_error_matches(error, G_DBUS_ERROR,
				 G_DBUS_ERROR_ACCESS_DENIED))
		fprintf(stderr, "%s: the bus does not let you call the daemon "
			"(AccessDenied; a system-wide daemon takes calls from "
			"root and the group libvirt, see docs/daemon.md): %s\n",
			argv0, error->message);
	else
		fprintf(stderr, "%s: %s\n", argv0, error->message);
	return code;
}

/* The session bus, or the system bus when CCID_AGENT_BUS=system (a
 * system-wide daemon, `ccid-agent daemon --system`). */
static GBusType client_bus(void)
{
	return g_strcmp0(g_getenv("CCID_AGENT_BUS"), "system") == 0 ?
	       G_BUS_TYPE_SYSTEM : G_BUS_TYPE_SESSION;
}

static CcidAgentManager *manager_proxy(GError **error)
{
	daemon_errors_register();
	return ccid_agent_manager_proxy_new_for_bus_sync(client_bus(),
		G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES |
		G_DBUS_PROXY_FLAGS_DO_NOT_CONNECT_SIGNALS, DAEMON_BUS_NAME,
		DAEMON_PATH, NULL, error);
}

static GDBusObjectManager *object_manager(GError **error)
{
	GDBusObjectManager *om;
	g_autofree char *owner = NULL;

	daemon_errors_register();
	om = ccid_agent_object_manager_client_new_for_bus_sync(
		client_bus(), G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_NONE,
		DAEMON_BUS_NAME, DAEMON_PATH, NULL, error);
	if (om == NULL)
		return NULL;
	owner = g_dbus_object_manager_client_get_name_owner(
		G_DBUS_OBJECT_MANAGER_CLIENT(om));
	if (owner == NULL) {
		g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER,
			    "nobody owns %s on the %s bus",
			    DAEMON_BUS_NAME, client_bus() == G_BUS_TYPE_SYSTEM ?
			    "system" : "session");
		g_object_unref(om);
		return NULL;
	}
	return om;
}

static void print_json(JsonNode *node)
{
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autofree char *text = NULL;

	json_generator_set_root(gen, node);
	json_generator_set_pretty(gen, FALSE);
	text = json_generator_to_data(gen, NULL);
	printf("%s\n", text);
	fflush(stdout);
}

static void add_strv(JsonBuilder *b, const char *name,
		     const char *const *v)
{
	json_builder_set_member_name(b, name);
	json_builder_begin_array(b);
	for (guint i = 0; v != NULL && v[i] != NULL; i++)
		json_builder_add_string_value(b, v[i]);
	json_builder_end_array(b);
}

static char *strv_text(const char *const *v)
{
	if (v == NULL || v[0] == NULL)
		return g_strdup("-");
	return g_strjoinv(",", (char **)v);
}

/* Entries or VMs in object path order (ids and names). */
static gint by_path(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(g_dbus_object_get_object_path(G_DBUS_OBJECT(a)),
			 g_dbus_object_get_object_path(G_DBUS_OBJECT(b)));
}

/* --- list, vms ------------------------------------------------------------ */

/* "host_holders": [{"process": "pcscd", "pid": 812}]: host processes
 * holding the physical reader. */
static void host_holders_json(JsonBuilder *b, CcidAgentEntry *e)
{
	GVariant *hh = ccid_agent_entry_get_host_holders(e);
	GVariantIter it;
	const char *name;
	guint32 pid;

	json_builder_set_member_name(b, "host_holders");
	json_builder_begin_array(b);
	if (hh != NULL && g_variant_is_of_type(hh, G_VARIANT_TYPE("a(su)"))) {
		g_variant_iter_init(&it, hh);
		while (g_variant_iter_next(&it, "(&su)", &name, &pid)) {
			json_builder_begin_object(b);
			json_builder_set_member_name(b, "process");
			json_builder_add_string_value(b, name);
			json_builder_set_member_name(b, "pid");
			json_builder_add_int_value(b, pid);
			json_builder_end_object(b);
		}
	}
	json_builder_end_array(b);
}

/* The VMs, then the host processes as "pcscd[812]". */
static char *holders_text(CcidAgentEntry *e)
{
	GVariant *hh = ccid_agent_entry_get_host_holders(e);
	g_autoptr(GString) s = g_string_new(NULL);
	const char *const *vms = ccid_agent_entry_get_holders(e);
	GVariantIter it;
	const char *name;
	guint32 pid;

	for (guint i = 0; vms != NULL && vms[i] != NULL; i++)
		g_string_append_printf(s, "%s%s", s->len ? "," : "", vms[i]);
	if (hh != NULL && g_variant_is_of_type(hh, G_VARIANT_TYPE("a(su)"))) {
		g_variant_iter_init(&it, hh);
		while (g_variant_iter_next(&it, "(&su)", &name, &pid))
			g_string_append_printf(s, "%s%s[%u]", s->len ? "," :
					       "", name, pid);
	}
	return g_strdup(s->len ? s->str : "-");
}

static void entry_json(JsonBuilder *b, CcidAgentEntry *e)
{
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "id");
	json_builder_add_string_value(b, ccid_agent_entry_get_id(e));
	json_builder_set_member_name(b, "label");
	json_builder_add_string_value(b, ccid_agent_entry_get_label(e));
	json_builder_set_member_name(b, "mode");
	json_builder_add_string_value(b, ccid_agent_entry_get_mode(e));
	json_builder_set_member_name(b, "card");
	json_builder_add_string_value(b, ccid_agent_entry_get_card(e));
	json_builder_set_member_name(b, "state");
	json_builder_add_string_value(b, ccid_agent_entry_get_state(e));
	json_builder_set_member_name(b, "atr");
	json_builder_add_string_value(b, ccid_agent_entry_get_atr(e));
	add_strv(b, "holders", ccid_agent_entry_get_holders(e));
	json_builder_set_member_name(b, "reason");
	json_builder_add_string_value(b, ccid_agent_entry_get_reason(e));
	json_builder_set_member_name(b, "single_session");
	json_builder_add_boolean_value(b,
		ccid_agent_entry_get_single_session(e));
	if (g_strcmp0(ccid_agent_entry_get_card(e), "pcsc") == 0) {
		json_builder_set_member_name(b, "idle_ms");
		json_builder_add_int_value(b, ccid_agent_entry_get_idle_ms(e));
		json_builder_set_member_name(b, "lock_timeout_ms");
		json_builder_add_int_value(b,
			ccid_agent_entry_get_lock_timeout_ms(e));
	}
	host_holders_json(b, e);
	json_builder_set_member_name(b, "peer");
	json_builder_add_string_value(b, ccid_agent_entry_get_peer(e));
	json_builder_set_member_name(b, "pin_guard_refusals");
	json_builder_add_int_value(b,
		ccid_agent_entry_get_pin_guard_refusals(e));
	json_builder_end_object(b);
}

static void vm_json(JsonBuilder *b, CcidAgentVm *v)
{
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "name");
	json_builder_add_string_value(b, ccid_agent_vm_get_name(v));
	json_builder_set_member_name(b, "qmp");
	json_builder_add_string_value(b, ccid_agent_vm_get_qmp(v));
	json_builder_set_member_name(b, "state");
	json_builder_add_string_value(b, ccid_agent_vm_get_state(v));
	add_strv(b, "entries", ccid_agent_vm_get_entries(v));
	json_builder_end_object(b);
}

static int run_listing(int argc, char **argv, gboolean vms)
{
	gboolean json = FALSE;
	GOptionEntry options[] = {
		{ "json", 'j', 0, G_OPTION_ARG_NONE, &json,
		  "one JSON array on stdout", NULL },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(GDBusObjectManager) om = NULL;
	g_autoptr(JsonBuilder) b = json_builder_new();
	g_autoptr(JsonNode) root = NULL;
	g_autoptr(AgentTextTable) table = agent_text_table_new(vms ? 4 : 6, 1);
	GList *objs;

	g_option_context_set_summary(ctx, vms ?
		"Lists the VMs the daemon knows and what is attached to them." :
		"Lists the entries (readers and cards), their states and "
		"holders.");
	g_option_context_add_main_entries(ctx, options, NULL);
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc > 1)
		return agent_usage_error(argv[0], "unexpected argument '%s'",
					 argv[1]);
	om = object_manager(&error);
	if (om == NULL)
		return report(argv[0], error);
	objs = g_list_sort(g_dbus_object_manager_get_objects(om), by_path);
	json_builder_begin_array(b);
	if (vms)
		agent_text_table_add(table, NULL, "NAME", "STATE", "ENTRIES",
				     "QMP");
	else
		agent_text_table_add(table, NULL, "ID", "STATE", "MODE",
				     "CARD", "HOLDERS", "LABEL");
	for (GList *l = objs; l != NULL; l = l->next) {
		CcidAgentObject *o = CCID_AGENT_OBJECT(l->data);
		CcidAgentEntry *e = ccid_agent_object_peek_entry(o);
		CcidAgentVm *v = ccid_agent_object_peek_vm(o);

		if (!vms && e != NULL) {
			g_autofree char *h = holders_text(e);
			/* Why it is unavailable, or what is not known: on a
			 * line of its own, under the entry. */
			g_autofree char *reason = *ccid_agent_entry_get_reason(
				e) != '\0' ? g_strconcat("reason: ",
				ccid_agent_entry_get_reason(e), NULL) : NULL;

			if (json)
				entry_json(b, e);
			else
				agent_text_table_add(table, reason,
					ccid_agent_entry_get_id(e),
					ccid_agent_entry_get_state(e),
					ccid_agent_entry_get_mode(e),
					ccid_agent_entry_get_card(e), h,
					ccid_agent_entry_get_label(e));
		} else if (vms && v != NULL) {
			g_autofree char *ents = strv_text(
				ccid_agent_vm_get_entries(v));

			if (json)
				vm_json(b, v);
			else
				agent_text_table_add(table, NULL,
					ccid_agent_vm_get_name(v),
					ccid_agent_vm_get_state(v), ents,
					ccid_agent_vm_get_qmp(v));
		}
	}
	g_list_free_full(objs, g_object_unref);
	json_builder_end_array(b);
	root = json_builder_get_root(b);
	if (json) {
		print_json(root);
	} else {
		g_autofree char *text = agent_text_table_render(table);

		fputs(text, stdout);
	}
	return AGENT_EXIT_OK;
}

int agent_cmd_list(int argc, char **argv)
{
	return run_listing(argc, argv, FALSE);
}

int agent_cmd_vms(int argc, char **argv)
{
	return run_listing(argc, argv, TRUE);
}

/* --- actions -------------------------------------------------------------- */

/* Parses no options but --help, and wants exactly @n arguments. */
static gboolean plain_args(int *argc, char ***argv, int n, const char *params,
			   const char *summary)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new(params);

	g_option_context_set_summary(ctx, summary);
	if (!agent_parse_options(ctx, argc, argv))
		return FALSE;
	if (*argc != n + 1) {
		agent_usage_error((*argv)[0], "expected %s", params);
		return FALSE;
	}
	return TRUE;
}

int agent_cmd_attach(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(CcidAgentManager) m = NULL;

	if (!plain_args(&argc, &argv, 2, "ENTRY VM", "Gives entry ENTRY (an "
			"id or a unique part of a label) to the running VM, "
			"hot-plugged."))
		return AGENT_EXIT_USAGE;
	m = manager_proxy(&error);
	if (m == NULL ||
	    !ccid_agent_manager_call_attach_sync(m, argv[1], argv[2], NULL,
						 &error))
		return report(argv[0], error);
	printf("attached %s to %s\n", argv[1], argv[2]);
	return AGENT_EXIT_OK;
}

int agent_cmd_detach(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(CcidAgentManager) m = NULL;

	if (!plain_args(&argc, &argv, 2, "ENTRY VM", "Takes entry ENTRY out "
			"of the VM (the guest sees the reader unplugged)."))
		return AGENT_EXIT_USAGE;
	m = manager_proxy(&error);
	if (m == NULL ||
	    !ccid_agent_manager_call_detach_sync(m, argv[1], argv[2], NULL,
						 &error))
		return report(argv[0], error);
	printf("detached %s from %s\n", argv[1], argv[2]);
	return AGENT_EXIT_OK;
}

static int move_card(int argc, char **argv, gboolean insert)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(CcidAgentManager) m = NULL;
	gboolean ok;

	if (!plain_args(&argc, &argv, 1, "ENTRY", insert ?
			"Pushes the card of a virtual entry back in, in every "
			"VM it is attached to." :
			"Pulls the card of a virtual entry out, in every VM "
			"it is attached to."))
		return AGENT_EXIT_USAGE;
	m = manager_proxy(&error);
	if (m == NULL)
		return report(argv[0], error);
	ok = insert ? ccid_agent_manager_call_insert_card_sync(m, argv[1],
							       NULL, &error) :
		      ccid_agent_manager_call_remove_card_sync(m, argv[1],
							       NULL, &error);
	if (!ok)
		return report(argv[0], error);
	printf("card of %s %s\n", argv[1], insert ? "inserted" : "removed");
	return AGENT_EXIT_OK;
}

int agent_cmd_insert(int argc, char **argv)
{
	return move_card(argc, argv, TRUE);
}

int agent_cmd_remove(int argc, char **argv)
{
	return move_card(argc, argv, FALSE);
}

int agent_cmd_vm(int argc, char **argv)
{
	g_autofree char *qmp = NULL;
	g_autofree char *libvirt = NULL;
	GOptionEntry options[] = {
		{ "qmp", 0, 0, G_OPTION_ARG_STRING, &qmp,
		  "the VM's QMP socket (QEMU -qmp unix:PATH,server=on,"
		  "wait=off)", "unix:PATH" },
		{ "libvirt", 0, 0, G_OPTION_ARG_STRING, &libvirt,
		  "the VM is the running libvirt domain NAME of this URI "
		  "(one the daemon watches; those appear by themselves)",
		  "URI" },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new(
		"add NAME --qmp unix:PATH | add NAME --libvirt URI | "
		"remove NAME");
	g_autoptr(GError) error = NULL;
	g_autoptr(CcidAgentManager) m = NULL;
	g_autofree char *path = NULL;

	g_option_context_set_summary(ctx, "Registers a running QEMU with the "
		"daemon by its QMP socket, or forgets it (detaching its "
		"entries first).");
	g_option_context_add_main_entries(ctx, options, NULL);
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc != 3 || (strcmp(argv[1], "add") != 0 &&
			  strcmp(argv[1], "remove") != 0))
		return agent_usage_error(argv[0], "expected 'add NAME --qmp "
					 "unix:PATH' or 'remove NAME'");
	if (qmp != NULL && libvirt != NULL)
		return agent_usage_error(argv[0], "--qmp and --libvirt exclude "
					 "each other");
	if (libvirt != NULL)
		qmp = g_strconcat("libvirt:", libvirt, NULL);
	if (strcmp(argv[1], "add") == 0 && qmp == NULL)
		return agent_usage_error(argv[0], "vm add %s needs --qmp "
					 "unix:PATH (QEMU's -qmp socket)",
					 argv[2]);
	if (strcmp(argv[1], "remove") == 0 && qmp != NULL)
		return agent_usage_error(argv[0], "vm remove takes no --qmp "
					 "or --libvirt");
	m = manager_proxy(&error);
	if (m == NULL)
		return report(argv[0], error);
	if (strcmp(argv[1], "add") == 0) {
		if (!ccid_agent_manager_call_add_vm_sync(m, argv[2], qmp, &path,
							 NULL, &error))
			return report(argv[0], error);
		printf("VM %s added (%s)\n", argv[2], path);
		return AGENT_EXIT_OK;
	}
	if (!ccid_agent_manager_call_remove_vm_sync(m, argv[2], NULL, &error))
		return report(argv[0], error);
	printf("VM %s removed\n", argv[2]);
	return AGENT_EXIT_OK;
}

/* --- qemu-args: cold plug --------------------------------------------------- */

/* A VM name made of @text: what QEMU and the daemon accept. */
static char *vm_name_from(const char *text)
{
	g_autofree char *base = g_strconcat("qemu-", text, NULL);

	g_strcanon(base, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789._-", '-');
	if (strlen(base) > 64)
		base[64] = '\0';
	return g_steal_pointer(&base);
}

int agent_cmd_qemu_args(int argc, char **argv)
{
	g_autofree char *vm = NULL;
	g_autofree char *qmp = NULL;
	GOptionEntry options[] = {
		{ "vm", 0, 0, G_OPTION_ARG_STRING, &vm,
		  "the VM's name (default: qemu-ENTRY)", "NAME" },
		{ "qmp", 0, 0, G_OPTION_ARG_FILENAME, &qmp,
		  "the QMP socket QEMU is to create (default "
		  "$XDG_RUNTIME_DIR/ccid-emu/NAME.qmp)", "PATH" },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("ENTRY...");
	g_autoptr(GError) error = NULL;
	g_autoptr(CcidAgentManager) m = NULL;
	g_autofree char *path = NULL;
	g_autofree char *addr = NULL;

	g_option_context_set_summary(ctx, "Cold plug: prints the QEMU "
		"arguments for a VM that starts later, and tells the daemon "
		"to attach the entries as soon as that QEMU runs (a remembered "
		"attachment, as after 'attach').");
	g_option_context_add_main_entries(ctx, options, NULL);
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc < 2)
		return agent_usage_error(argv[0], "expected ENTRY... (ids or "
					 "unique parts of labels)");
	if (vm == NULL)
		vm = vm_name_from(argv[1]);
	if (qmp == NULL) {
		g_autofree char *dir = g_build_filename(g_get_user_runtime_dir(),
							"ccid-emu", NULL);

		if (g_mkdir_with_parents(dir, 0700) != 0) {
			fprintf(stderr, "%s: cannot create %s: %s\n", argv[0],
				dir, g_strerror(errno));
			return AGENT_EXIT_FAILED;
		}
		qmp = g_strdup_printf("%s/%s.qmp", dir, vm);
	}
	addr = g_strconcat("unix:", qmp, NULL);
	m = manager_proxy(&error);
	if (m == NULL ||
	    !ccid_agent_manager_call_plan_vm_sync(m, vm, addr,
						  (const char *const *)argv + 1,
						  &path, NULL, &error))
		return report(argv[0], error);
	printf("# QEMU arguments for VM %s (the guest also needs a USB "
	       "controller, e.g. -device qemu-xhci);\n# the daemon attaches "
	       "the entries as soon as QEMU runs ('ccid-agent vm remove %s' "
	       "forgets it):\nqemu: -qmp unix:%s,server=on,wait=off\n", vm,
	       vm, qmp);
	return AGENT_EXIT_OK;
}

/* --- watch ---------------------------------------------------------------- */

struct watch {
	gboolean json;
	GMainLoop *loop;
};

/* One event: "event", then the object (@kind: "entry", "vm"; its @id),
 * @vm, @reason, @fields (a{sv} of strings and numbers, each a member of
 * its own; floating, consumed) and the properties that @changed. */
static void emit(struct watch *w, const char *event, const char *kind,
		 const char *id, const char *vm, const char *reason,
		 GVariant *fields, GVariant *changed)
{
	g_autoptr(GVariant) f = fields != NULL ? g_variant_ref_sink(fields) :
				NULL;
	GVariantIter it;
	const char *key;
	GVariant *value;

	if (w->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		g_autoptr(JsonNode) root = NULL;

		json_builder_begin_object(b);
		json_builder_set_member_name(b, "event");
		json_builder_add_string_value(b, event);
		if (kind != NULL) {
			json_builder_set_member_name(b, kind);
			json_builder_add_string_value(b, id);
		}
		if (vm != NULL) {
			json_builder_set_member_name(b, "vm");
			json_builder_add_string_value(b, vm);
		}
		if (reason != NULL) {
			json_builder_set_member_name(b, "reason");
			json_builder_add_string_value(b, reason);
		}
		if (f != NULL) {
			g_variant_iter_init(&it, f);
			while (g_variant_iter_loop(&it, "{&sv}", &key,
						   &value)) {
				json_builder_set_member_name(b, key);
				json_builder_add_value(b,
					json_gvariant_serialize(value));
			}
		}
		if (changed != NULL) {
			json_builder_set_member_name(b, "changed");
			json_builder_add_value(b,
				json_gvariant_serialize(changed));
		}
		json_builder_end_object(b);
		root = json_builder_get_root(b);
		print_json(root);
		return;
	}
	printf("%s", event);
	if (kind != NULL)
		printf(" %s=%s", kind, id);
	if (vm != NULL)
		printf(" vm=%s", vm);
	if (reason != NULL)
		printf(" reason=%s", reason);
	if (f != NULL) {
		g_variant_iter_init(&it, f);
		while (g_variant_iter_loop(&it, "{&sv}", &key, &value)) {
			g_autofree char *t = g_variant_is_of_type(value,
				G_VARIANT_TYPE_STRING) ?
				g_variant_dup_string(value, NULL) :
				g_variant_print(value, FALSE);

			printf(" %s=%s", key, t);
		}
	}
	if (changed != NULL) {
		g_autofree char *t = g_variant_print(changed, FALSE);

		printf(" %s", t);
	}
	printf("\n");
	fflush(stdout);
}

/* "entry" and its id, or "vm" and its name, of an object. */
static const char *object_id(GDBusObject *obj, const char **kind)
{
	CcidAgentObject *o = CCID_AGENT_OBJECT(obj);
	CcidAgentEntry *e = ccid_agent_object_peek_entry(o);
	CcidAgentVm *v = ccid_agent_object_peek_vm(o);

	*kind = e != NULL ? "entry" : "vm";
	if (e != NULL)
		return ccid_agent_entry_get_id(e);
	if (v != NULL)
		return ccid_agent_vm_get_name(v);
	*kind = "object";
	return g_dbus_object_get_object_path(obj);
}

static void on_props(GDBusObjectManagerClient *om, GDBusObjectProxy *obj,
		     GDBusProxy *iface, GVariant *changed,
		     const char *const *invalidated, gpointer data)
{
	const char *kind;
	const char *id = object_id(G_DBUS_OBJECT(obj), &kind);

	emit(data, "changed", kind, id, NULL, NULL, NULL, changed);
}

static void on_added(GDBusObjectManager *om, GDBusObject *obj, gpointer data)
{
	const char *kind;
	const char *id = object_id(obj, &kind);

	emit(data, "added", kind, id, NULL, NULL, NULL, NULL);
}

static void on_removed(GDBusObjectManager *om, GDBusObject *obj,
		       gpointer data)
{
	const char *kind;
	const char *id = object_id(obj, &kind);

	emit(data, "removed", kind, id, NULL, NULL, NULL, NULL);
}

static void on_started(CcidAgentManager *m, const char *entry, const char *vm,
		       gpointer data)
{
	emit(data, "session-started", "entry", entry, vm, NULL, NULL, NULL);
}

static void on_ended(CcidAgentManager *m, const char *entry, const char *vm,
		     const char *reason, gpointer data)
{
	emit(data, "session-ended", "entry", entry, vm, reason, NULL, NULL);
}

static void on_failed(CcidAgentManager *m, const char *entry, const char *vm,
		      const char *reason, gpointer data)
{
	emit(data, "session-failed", "entry", entry, vm, reason, NULL, NULL);
}

static void on_pin_guard(CcidAgentManager *m, const char *entry,
			 const char *vm, const char *command, guchar reference,
			 gpointer data)
{
	GVariantBuilder b;

	/* A builder, not a GVariantDict: the members keep this order. */
	g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
	g_variant_builder_add(&b, "{sv}", "command",
			      g_variant_new_string(command));
	g_variant_builder_add(&b, "{sv}", "reference",
			      g_variant_new_uint32(reference));
	emit(data, "pin-guard-refused", "entry", entry, vm, NULL,
	     g_variant_builder_end(&b), NULL);
}

static void on_owner(GObject *om, GParamSpec *pspec, gpointer data)
{
	struct watch *w = data;
	g_autofree char *owner = g_dbus_object_manager_client_get_name_owner(
		G_DBUS_OBJECT_MANAGER_CLIENT(om));

	if (owner == NULL) {
		emit(w, "daemon-gone", NULL, NULL, NULL, NULL, NULL, NULL);
		g_main_loop_quit(w->loop);
	}
}

static gboolean on_watch_signal(gpointer data)
{
	g_main_loop_quit(((struct watch *)data)->loop);
	return G_SOURCE_CONTINUE;
}

int agent_cmd_watch(int argc, char **argv)
{
	struct watch w = { 0 };
	GOptionEntry options[] = {
		{ "json", 'j', 0, G_OPTION_ARG_NONE, &w.json,
		  "one JSON object per line", NULL },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new(NULL);
	g_autoptr(GError) error = NULL;
	g_autoptr(GDBusObjectManager) om = NULL;
	g_autoptr(CcidAgentManager) m = NULL;
	guint s1, s2;

	g_option_context_set_summary(ctx, "Prints the daemon's events "
		"(sessions, state and holder changes, VMs coming and going, "
		"PIN commands the PIN guard refused) "
		"until interrupted.  The first line is a 'ready' event.");
	g_option_context_add_main_entries(ctx, options, NULL);
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc > 1)
		return agent_usage_error(argv[0], "unexpected argument '%s'",
					 argv[1]);
	om = object_manager(&error);
	if (om == NULL)
		return report(argv[0], error);
	m = ccid_agent_manager_proxy_new_for_bus_sync(client_bus(),
		G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES, DAEMON_BUS_NAME,
		DAEMON_PATH, NULL, &error);
	if (m == NULL)
		return report(argv[0], error);
	w.loop = g_main_loop_new(NULL, FALSE);
	g_signal_connect(om, "interface-proxy-properties-changed",
			 G_CALLBACK(on_props), &w);
	g_signal_connect(om, "object-added", G_CALLBACK(on_added), &w);
	g_signal_connect(om, "object-removed", G_CALLBACK(on_removed), &w);
	g_signal_connect(om, "notify::name-owner", G_CALLBACK(on_owner), &w);
	g_signal_connect(m, "session-started", G_CALLBACK(on_started), &w);
	g_signal_connect(m, "session-ended", G_CALLBACK(on_ended), &w);
	g_signal_connect(m, "session-failed", G_CALLBACK(on_failed), &w);
	g_signal_connect(m, "pin-guard-refused", G_CALLBACK(on_pin_guard), &w);
	emit(&w, "ready", NULL, NULL, NULL, NULL, NULL, NULL);
	s1 = g_unix_signal_add(SIGINT, on_watch_signal, &w);
	s2 = g_unix_signal_add(SIGTERM, on_watch_signal, &w);
	g_main_loop_run(w.loop);
	g_source_remove(s1);
	g_source_remove(s2);
	g_main_loop_unref(w.loop);
	return AGENT_EXIT_OK;
}
