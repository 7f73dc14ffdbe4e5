/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "menu_model.h"

#include "agent-dbus.h"

#include <string.h>

#define DAEMON_BUS_NAME "org.ccidemu.Agent1"
#define DAEMON_PATH "/org/ccidemu/Agent1"

struct _CcidMenuModel {
	GObject parent;
	GDBusObjectManager *om;
	CcidAgentManager *manager;
	GCancellable *cancel;        /* our calls, cancelled at dispose */
	GHashTable *pending;         /* "ENTRY\nVM" of our Attach/Detach */
	GHashTable *last_state;      /* entry id -> its last State */
	GPtrArray *sections;         /* MenuSectionInfo */
	gboolean running;            /* the daemon owns its name */
	char *status;
};

G_DEFINE_TYPE(CcidMenuModel, ccid_menu_model, G_TYPE_OBJECT)

enum { SIG_CHANGED, SIG_MESSAGE, N_SIGNALS };
static guint signals[N_SIGNALS];

static char *pending_key(const char *entry, const char *vm)
{
	return g_strdup_printf("%s\n%s", entry, vm);
}

static void message(CcidMenuModel *m, const char *id, const char *title,
		    const char *body)
{
	g_signal_emit(m, signals[SIG_MESSAGE], 0, id, title, body);
}

static gint by_path(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(g_dbus_object_get_object_path(*(GDBusObject **)a),
			 g_dbus_object_get_object_path(*(GDBusObject **)b));
}

/* Entry and Vm proxies, each sorted by object path (ids, names). */
static void collect(CcidMenuModel *m, GPtrArray *entries, GPtrArray *vms)
{
	GList *objs = m->om ? g_dbus_object_manager_get_objects(m->om) : NULL;
	g_autoptr(GPtrArray) eo = g_ptr_array_new();
	g_autoptr(GPtrArray) vo = g_ptr_array_new();

	for (GList *l = objs; l != NULL; l = l->next) {
		CcidAgentObject *o = CCID_AGENT_OBJECT(l->data);

		if (ccid_agent_object_peek_entry(o) != NULL)
			g_ptr_array_add(eo, o);
		else if (ccid_agent_object_peek_vm(o) != NULL)
			g_ptr_array_add(vo, o);
	}
	g_ptr_array_sort(eo, by_path);
	g_ptr_array_sort(vo, by_path);
	for (guint i = 0; i < eo->len; i++)
		g_ptr_array_add(entries, g_object_ref(
			ccid_agent_object_peek_entry(eo->pdata[i])));
	for (guint i = 0; i < vo->len; i++)
		g_ptr_array_add(vms, g_object_ref(
			ccid_agent_object_peek_vm(vo->pdata[i])));
	g_list_free_full(objs, g_object_unref);
}

static CcidAgentEntry *find_entry(GPtrArray *entries, const char *id)
{
	for (guint i = 0; i < entries->len; i++)
		if (g_strcmp0(ccid_agent_entry_get_id(entries->pdata[i]),
			      id) == 0)
			return entries->pdata[i];
	return NULL;
}

/* The label of entry ID for messages (the id itself when unknown). */
static char *entry_label(CcidMenuModel *m, const char *id)
{
	g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func(g_object_unref);
	g_autoptr(GPtrArray) vms = g_ptr_array_new_with_free_func(g_object_unref);
	CcidAgentEntry *e;

	collect(m, entries, vms);
	e = find_entry(entries, id);
	if (e != NULL && ccid_agent_entry_get_label(e)[0] != '\0')
		return g_strdup(ccid_agent_entry_get_label(e));
	return g_strdup(id);
}

static MenuItemInfo *item_for(CcidMenuModel *m, CcidAgentEntry *e,
			      const char *vm, gboolean vm_usable)
{
	const MenuEntryFacts facts = {
		.id = ccid_agent_entry_get_id(e),
		.label = ccid_agent_entry_get_label(e),
		.state = ccid_agent_entry_get_state(e),
		.reason = ccid_agent_entry_get_reason(e),
		.holders = ccid_agent_entry_get_holders(e),
		.single_session = ccid_agent_entry_get_single_session(e),
	};
	g_autofree char *key = pending_key(facts.id, vm);

	return menu_item_from_entry(&facts, vm, vm_usable,
				    g_hash_table_contains(m->pending, key));
}

/* Tells about a card that moved in an entry some VM holds. */
static void note_card_moves(CcidMenuModel *m, GPtrArray *entries)
{
	for (guint i = 0; i < entries->len; i++) {
		CcidAgentEntry *e = entries->pdata[i];
		const char *id = ccid_agent_entry_get_id(e);
		const char *now = ccid_agent_entry_get_state(e);
		const char *before = g_hash_table_lookup(m->last_state, id);
		const char *const *holders = ccid_agent_entry_get_holders(e);

		if (before != NULL && g_strcmp0(before, now) != 0 &&
		    holders != NULL && holders[0] != NULL &&
		    (g_str_equal(now, "card-present") ||
		     g_str_equal(now, "no-card"))) {
			gboolean in = g_str_equal(now, "card-present");
			g_autofree char *hs = g_strjoinv(", ", (char **)holders);
			g_autofree char *nid = g_strdup_printf("card:%s", id);
			g_autofree char *body = g_strdup_printf(
				"%s, connected to %s",
				ccid_agent_entry_get_label(e), hs);

			message(m, nid, in ? "Card inserted" : "Card removed",
				body);
		}
		g_hash_table_insert(m->last_state, g_strdup(id), g_strdup(now));
	}
}

static void rebuild(CcidMenuModel *m)
{
	g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func(g_object_unref);
	g_autoptr(GPtrArray) vms = g_ptr_array_new_with_free_func(g_object_unref);
	g_autofree char *owner = NULL;
	gboolean running;

	if (m->om != NULL)
		owner = g_dbus_object_manager_client_get_name_owner(
			G_DBUS_OBJECT_MANAGER_CLIENT(m->om));
	running = owner != NULL;
	if (running != m->running) {
		m->running = running;
		if (running)
			message(m, "daemon", "Smart-card daemon running",
				"The ccid-agent daemon is back: the menu "
				"shows its readers again.");
		else
			message(m, "daemon", "Smart-card daemon stopped",
				"The ccid-agent daemon went away: nothing "
				"can be connected until it runs again.");
	}
	if (!running)
		g_hash_table_remove_all(m->last_state);

	collect(m, entries, vms);
	if (running)
		note_card_moves(m, entries);

	g_ptr_array_set_size(m->sections, 0);
	for (guint i = 0; running && i < vms->len; i++) {
		CcidAgentVm *v = vms->pdata[i];
		MenuSectionInfo *s = g_new0(MenuSectionInfo, 1);
		gboolean vm_usable;

		s->vm = g_strdup(ccid_agent_vm_get_name(v));
		s->vm_state = g_strdup(ccid_agent_vm_get_state(v));
		vm_usable = g_str_equal(s->vm_state, "running") ||
			     g_str_equal(s->vm_state, "paused");
		s->items = g_ptr_array_new_with_free_func(
			(GDestroyNotify)menu_item_info_free);
		for (guint j = 0; j < entries->len; j++)
			g_ptr_array_add(s->items, item_for(m, entries->pdata[j],
							   s->vm, vm_usable));
		g_ptr_array_add(m->sections, s);
	}

	g_clear_pointer(&m->status, g_free);
	if (!running)
		m->status = g_strdup(
			"The ccid-agent daemon is not running: start it with "
			"'ccid-agent daemon' or 'systemctl --user start "
			"ccid-agent'. This menu fills in when it starts.");
	else if (vms->len == 0)
		m->status = g_strdup(
			"No VMs: add a running QEMU with 'ccid-agent vm add "
			"NAME --qmp unix:PATH'.");
	g_signal_emit(m, signals[SIG_CHANGED], 0);
}

/* --- signals from the daemon ----------------------------------------------- */

static void on_om_changed(CcidMenuModel *m)
{
	rebuild(m);
}

static void on_props_changed(GDBusObjectManagerClient *om,
			     GDBusObjectProxy *obj, GDBusProxy *iface,
			     GVariant *changed, const char *const *invalidated,
			     CcidMenuModel *m)
{
	rebuild(m);
}

static void on_session_started(CcidAgentManager *mgr, const char *entry,
			       const char *vm, CcidMenuModel *m)
{
	g_autofree char *label = entry_label(m, entry);
	g_autofree char *id = g_strdup_printf("session:%s:%s", entry, vm);
	g_autofree char *body = g_strdup_printf(
		"%s is connected to VM %s: the guest sees the reader.",
		label, vm);

	message(m, id, "Reader shared", body);
}

static const char *reason_words(const char *reason)
{
	static const struct { const char *reason, *words; } words[] = {
		{ "detached", "disconnected" },
		{ "peer-closed", "QEMU closed the connection" },
		{ "vm-shutdown", "the VM shut down" },
		{ "vm-gone", "the VM is gone" },
		{ "vm-removed", "the VM was removed from the daemon" },
	};

	for (guint i = 0; i < G_N_ELEMENTS(words); i++)
		if (g_strcmp0(reason, words[i].reason) == 0)
			return words[i].words;
	return reason;
}

static void on_session_ended(CcidAgentManager *mgr, const char *entry,
			     const char *vm, const char *reason,
			     CcidMenuModel *m)
{
	g_autofree char *label = entry_label(m, entry);
	g_autofree char *id = g_strdup_printf("session:%s:%s", entry, vm);
	g_autofree char *body = g_strdup_printf("%s left VM %s: %s.", label,
						vm, reason_words(reason));

	message(m, id, "Reader unshared", body);
}

static void on_session_failed(CcidAgentManager *mgr, const char *entry,
			      const char *vm, const char *reason,
			      CcidMenuModel *m)
{
	g_autofree char *label = entry_label(m, entry);
	g_autofree char *id = g_strdup_printf("session:%s:%s", entry, vm);
	g_autofree char *title = g_strdup_printf(
		"Could not connect %s to VM %s", label, vm);

	message(m, id, title, reason);
}

/* A VM guessed at the card's PIN and the guard kept the last try: the
 * user needs to know, since the guest's user may have been refused a
 * right PIN too. */
static void on_pin_guard_refused(CcidAgentManager *mgr, const char *entry,
				 const char *vm, const char *command,
				 guchar reference, CcidMenuModel *m)
{
	g_autofree char *label = entry_label(m, entry);
	g_autofree char *id = g_strdup_printf("pin-guard:%s:%s", entry, vm);
	g_autofree char *body = g_strdup_printf(
		"VM %s sent a %s that could have used the last try of PIN "
		"0x%02X on %s. The PIN guard did not pass it to the card, so "
		"the card is not blocked: its last try is left for you.", vm,
		command, reference, label);

	message(m, id, "PIN try kept for you", body);
}

/* --- the user's choices ------------------------------------------------------ */

typedef struct {
	CcidMenuModel *m;
	char *entry, *vm;
	gboolean attach;
} Call;

static void call_done(GObject *src, GAsyncResult *res, gpointer data)
{
	Call *c = data;
	g_autoptr(GError) error = NULL;
	gboolean ok;

	ok = c->attach ?
		ccid_agent_manager_call_attach_finish(CCID_AGENT_MANAGER(src),
						      res, &error) :
		ccid_agent_manager_call_detach_finish(CCID_AGENT_MANAGER(src),
						      res, &error);
	if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
		g_autofree char *key = pending_key(c->entry, c->vm);

		g_hash_table_remove(c->m->pending, key);
		if (!ok) {
			g_autofree char *label = entry_label(c->m, c->entry);
			g_autofree char *id = g_strdup_printf(
				"session:%s:%s", c->entry, c->vm);
			g_autofree char *title = g_strdup_printf(
				c->attach ? "Could not connect %s to VM %s" :
					    "Could not disconnect %s from VM %s",
				label, c->vm);

			g_dbus_error_strip_remote_error(error);
			message(c->m, id, title, error->message);
		}
		rebuild(c->m);
	}
	g_object_unref(c->m);
	g_free(c->entry);
	g_free(c->vm);
	g_free(c);
}

static const MenuItemInfo *find_item(CcidMenuModel *m, const char *entry,
				     const char *vm)
{
	for (guint i = 0; i < m->sections->len; i++) {
		const MenuSectionInfo *s = m->sections->pdata[i];

		if (!g_str_equal(s->vm, vm))
			continue;
		for (guint j = 0; j < s->items->len; j++) {
			const MenuItemInfo *it = s->items->pdata[j];

			if (g_str_equal(it->entry_id, entry))
				return it;
		}
	}
	return NULL;
}

void ccid_menu_model_choose(CcidMenuModel *m, const char *entry,
			    const char *vm)
{
	const MenuItemInfo *it = find_item(m, entry, vm);
	Call *c;

	if (it == NULL || it->pending)
		return;
	c = g_new0(Call, 1);
	c->m = g_object_ref(m);
	c->entry = g_strdup(entry);
	c->vm = g_strdup(vm);
	c->attach = !it->connected;
	g_hash_table_add(m->pending, pending_key(entry, vm));
	/* The daemon decides about Busy and unavailable entries and says
	 * why; a greyed item cannot be chosen in the first place. */
	if (c->attach)
		ccid_agent_manager_call_attach(m->manager, entry, vm,
					       m->cancel, call_done, c);
	else
		ccid_agent_manager_call_detach(m->manager, entry, vm,
					       m->cancel, call_done, c);
	rebuild(m);
}

/* --- object ------------------------------------------------------------------- */

gboolean ccid_menu_model_daemon_running(CcidMenuModel *m)
{
	return m->running;
}

const char *ccid_menu_model_status(CcidMenuModel *m)
{
	return m->status;
}

GPtrArray *ccid_menu_model_sections(CcidMenuModel *m)
{
	return m->sections;
}

static void ccid_menu_model_dispose(GObject *obj)
{
	CcidMenuModel *m = CCID_MENU_MODEL(obj);

	g_cancellable_cancel(m->cancel);
	if (m->om != NULL)
		g_signal_handlers_disconnect_by_data(m->om, m);
	if (m->manager != NULL)
		g_signal_handlers_disconnect_by_data(m->manager, m);
	g_clear_object(&m->om);
	g_clear_object(&m->manager);
	G_OBJECT_CLASS(ccid_menu_model_parent_class)->dispose(obj);
}

static void ccid_menu_model_finalize(GObject *obj)
{
	CcidMenuModel *m = CCID_MENU_MODEL(obj);

	g_clear_object(&m->cancel);
	g_hash_table_unref(m->pending);
	g_hash_table_unref(m->last_state);
	g_ptr_array_unref(m->sections);
	g_free(m->status);
	G_OBJECT_CLASS(ccid_menu_model_parent_class)->finalize(obj);
}

static void ccid_menu_model_class_init(CcidMenuModelClass *klass)
{
	GObjectClass *oc = G_OBJECT_CLASS(klass);

	oc->dispose = ccid_menu_model_dispose;
	oc->finalize = ccid_menu_model_finalize;
	signals[SIG_CHANGED] = g_signal_new("changed",
		G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
		NULL, G_TYPE_NONE, 0);
	signals[SIG_MESSAGE] = g_signal_new("message",
		G_TYPE_FROM_CLASS(klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
		NULL, G_TYPE_NONE, 3, G_TYPE_STRING, G_TYPE_STRING,
		G_TYPE_STRING);
}

static void ccid_menu_model_init(CcidMenuModel *m)
{
	m->cancel = g_cancellable_new();
	m->pending = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					   NULL);
	m->last_state = g_hash_table_new_full(g_str_hash, g_str_equal,
					      g_free, g_free);
	m->sections = g_ptr_array_new_with_free_func(
		(GDestroyNotify)menu_section_info_free);
	m->running = FALSE;
}

CcidMenuModel *ccid_menu_model_new(GError **error)
{
	g_autoptr(CcidMenuModel) m = g_object_new(CCID_MENU_TYPE_MODEL, NULL);

	/* The object manager follows the name's owner: objects vanish when
	 * the daemon does and come back with it.  It starts the daemon
	 * once through D-Bus activation when that is installed. */
	m->om = ccid_agent_object_manager_client_new_for_bus_sync(
		G_BUS_TYPE_SESSION, G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_NONE,
		DAEMON_BUS_NAME, DAEMON_PATH, NULL, error);
	if (m->om == NULL) {
		g_prefix_error(error, "cannot watch %s on the session bus: ",
			       DAEMON_BUS_NAME);
		return NULL;
	}
	m->manager = ccid_agent_manager_proxy_new_for_bus_sync(
		G_BUS_TYPE_SESSION,
		G_DBUS_PROXY_FLAGS_DO_NOT_AUTO_START |
		G_DBUS_PROXY_FLAGS_DO_NOT_LOAD_PROPERTIES,
		DAEMON_BUS_NAME, DAEMON_PATH, NULL, error);
	if (m->manager == NULL) {
		g_prefix_error(error, "cannot reach %s: ", DAEMON_BUS_NAME);
		return NULL;
	}
	g_signal_connect_swapped(m->om, "notify::name-owner",
				 G_CALLBACK(on_om_changed), m);
	g_signal_connect_swapped(m->om, "object-added",
				 G_CALLBACK(on_om_changed), m);
	g_signal_connect_swapped(m->om, "object-removed",
				 G_CALLBACK(on_om_changed), m);
	g_signal_connect_swapped(m->om, "interface-added",
				 G_CALLBACK(on_om_changed), m);
	g_signal_connect_swapped(m->om, "interface-removed",
				 G_CALLBACK(on_om_changed), m);
	g_signal_connect(m->om, "interface-proxy-properties-changed",
			 G_CALLBACK(on_props_changed), m);
	g_signal_connect(m->manager, "session-started",
			 G_CALLBACK(on_session_started), m);
	g_signal_connect(m->manager, "session-ended",
			 G_CALLBACK(on_session_ended), m);
	g_signal_connect(m->manager, "session-failed",
			 G_CALLBACK(on_session_failed), m);
	g_signal_connect(m->manager, "pin-guard-refused",
			 G_CALLBACK(on_pin_guard_refused), m);
	/* First picture, quietly: no "daemon running" message at start. */
	{
		g_autofree char *owner = g_dbus_object_manager_client_get_name_owner(
			G_DBUS_OBJECT_MANAGER_CLIENT(m->om));
		m->running = owner != NULL;
	}
	rebuild(m);
	return g_steal_pointer(&m);
}
