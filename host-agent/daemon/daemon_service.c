/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's D-Bus objects and methods (see daemon_service.h): entries
 * and VMs exported with an object manager, Attach/Detach/... handled by
 * daemon_entry.c and daemon_vm.c, and the remembered VMs and attachments
 * (daemon_state.c) kept up to date.
 */
#include "daemon_service.h"
#include "daemon_service_private.h"

#include "agent-dbus.h"
#include "daemon_entry.h"
#include "daemon_errors.h"
#include "daemon_libvirt.h"
#include "daemon_readers.h"
#include "daemon_state.h"
#include "daemon_usb.h"
#include "daemon_vm.h"

#include <ccid_card_pcsc.h>
#include <stdio.h>
#include <string.h>

#define DAEMON_PATH "/org/ccidemu/Agent1"

struct entry_rec {
	daemon_service *d;
	daemon_entry *entry;
	CcidAgentObjectSkeleton *obj;
	CcidAgentEntry *iface;
	char *reader;                     /* discovered: pcscd's reader name */
	guint32 channel_id;               /* its SCARD_ATTR_CHANNEL_ID, or 0 */
	/* A passthrough entry: the USB reader (daemon_usb.h) as last
	 * reported. */
	char *usb_id;
	char *usb_model, *usb_serial;
	guint8 usb_bus, usb_addr;
	gboolean usb_present;
};

/* A remembered VM that is not there is looked for again when its QMP
 * socket appears (a GFileMonitor on the socket's directory: inotify).
 * Every VM_RETRY_MS only while a socket file is there that does not
 * answer (a stopped or hung QEMU, or the file of a killed one: no event
 * comes when it answers again), or where the directory cannot be
 * watched.  After the socket appears QEMU may not listen yet (bind, then
 * listen): a few quick tries follow. */
#define VM_RETRY_MS 2000u
#define VM_QUICK_MS 50u
#define VM_QUICK_TRIES 40u

struct vm_rec {
	daemon_service *d;
	char *name;
	char *qmp;                        /* "unix:PATH" */
	daemon_vm *vm;                    /* the current connection */
	CcidAgentObjectSkeleton *obj;     /* NULL until known (QMP answered
					   * once, or remembered) */
	CcidAgentVm *iface;
	daemon_call *adding;              /* AddVm waiting for QMP */
	daemon_call *removing;            /* RemoveVm waiting for detaches */
	guint detaches;
	GPtrArray *remembered;            /* entry ids to attach (char *) */
	guint retry_id;                   /* reconnect timer */
	guint remove_id;                  /* remove_vm_idle() pending */
	gboolean waiting;                 /* gone: waiting for it to return */
	GFileMonitor *qmp_dir_monitor;    /* while waiting (QMP VMs) */
	guint quick_left;                 /* quick tries after an event */
};

struct daemon_service {
	struct daemon_config *cfg;        /* the caller's */
	GDBusConnection *conn;
	GDBusObjectManagerServer *om;
	CcidAgentManager *manager;
	GPtrArray *entries;               /* struct entry_rec */
	GHashTable *vms;                  /* name -> struct vm_rec */
	char *state_path;                 /* remembered VMs and attachments */
	gboolean stopping;                /* no state written while stopping */
	gboolean discover;                /* PC/SC readers become entries */
	daemon_readers *readers;
	char **libvirt_uris;              /* NULL: no libvirt */
	daemon_libvirt_waiter *libvirt_waiter; /* libvirt not loaded yet */
	daemon_libvirt *libvirt;
	daemon_usb *usb;                  /* USB readers: passthrough entries */
	gboolean no_usb;                  /* --no-usb */
};

static daemon_say_fn say_hook;

void daemon_service_set_say(daemon_say_fn fn)
{
	say_hook = fn;
}

void daemon_say(const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (say_hook != NULL) {
		say_hook(msg);
		return;
	}
	fprintf(stderr, "ccid-agent daemon: %s\n", msg);
	fflush(stderr);
}

#define say daemon_say

/* --- properties ------------------------------------------------------------ */

static void update_vm_entries(daemon_service *d)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, d->vms);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct vm_rec *r = v;
		g_autoptr(GStrvBuilder) b = g_strv_builder_new();
		g_auto(GStrv) ids = NULL;

		if (r->iface == NULL)
			continue;
		for (guint i = 0; i < d->entries->len; i++) {
			struct entry_rec *e = g_ptr_array_index(d->entries, i);

			if (daemon_entry_is_attached_to(e->entry, r->name))
				g_strv_builder_add(b, daemon_entry_get_id(
							   e->entry));
		}
		ids = g_strv_builder_end(b);
		ccid_agent_vm_set_entries(r->iface, (const char *const *)ids);
	}
}

/* HostHolders and Peer (the physical reader's two entries). */
static void update_entry_usb(struct entry_rec *r)
{
	const GArray *hh = daemon_entry_get_host_holders(r->entry);
	daemon_entry *peer = daemon_entry_get_peer(r->entry);
	GVariantBuilder b;

	g_variant_builder_init(&b, G_VARIANT_TYPE("a(su)"));
	for (guint i = 0; hh != NULL && i < hh->len; i++) {
		const struct daemon_usb_holder *h = &g_array_index(hh,
			struct daemon_usb_holder, i);

		g_variant_builder_add(&b, "(su)", h->name, (guint32)h->pid);
	}
	ccid_agent_entry_set_host_holders(r->iface, g_variant_builder_end(&b));
	ccid_agent_entry_set_peer(r->iface, peer != NULL ?
				  daemon_entry_get_id(peer) : "");
}

static void update_entry(struct entry_rec *r)
{
	daemon_entry *e = r->entry;
	g_auto(GStrv) holders = daemon_entry_get_holders(e);

	ccid_agent_entry_set_id(r->iface, daemon_entry_get_id(e));
	ccid_agent_entry_set_label(r->iface, daemon_entry_get_label(e));
	ccid_agent_entry_set_mode(r->iface, daemon_entry_get_mode(e));
	ccid_agent_entry_set_card(r->iface, daemon_entry_get_card(e));
	ccid_agent_entry_set_state(r->iface, daemon_entry_get_state(e));
	ccid_agent_entry_set_atr(r->iface, daemon_entry_get_atr(e));
	ccid_agent_entry_set_holders(r->iface, (const char *const *)holders);
	ccid_agent_entry_set_reason(r->iface, daemon_entry_get_reason(e));
	ccid_agent_entry_set_single_session(r->iface,
		daemon_entry_get_single_session(e));
	ccid_agent_entry_set_idle_ms(r->iface, daemon_entry_get_idle_ms(e));
	ccid_agent_entry_set_lock_timeout_ms(r->iface,
		daemon_entry_get_lock_timeout_ms(e));
	ccid_agent_entry_set_pin_guard_refusals(r->iface,
		daemon_entry_get_pin_guard_refusals(e));
	update_entry_usb(r);
}

static void on_entry_changed(void *user, daemon_entry *entry)
{
	struct entry_rec *r = user;
	daemon_entry *peer = daemon_entry_get_peer(entry);

	update_entry(r);
	/* A session of one entry of a reader changes the other's state. */
	for (guint i = 0; peer != NULL && i < r->d->entries->len; i++) {
		struct entry_rec *p = g_ptr_array_index(r->d->entries, i);

		if (p->entry == peer)
			update_entry(p);
	}
	update_vm_entries(r->d);
}

static void remember(daemon_service *d, const char *vm, const char *entry,
		     gboolean attached);

static void on_session_started(void *user, daemon_entry *entry,
			       const char *vm)
{
	struct entry_rec *r = user;

	say("entry '%s' attached to VM '%s'", daemon_entry_get_id(entry), vm);
	remember(r->d, vm, daemon_entry_get_id(entry), TRUE);
	ccid_agent_manager_emit_session_started(r->d->manager,
		daemon_entry_get_id(entry), vm);
}

static void on_session_ended(void *user, daemon_entry *entry, const char *vm,
			     const char *reason)
{
	struct entry_rec *r = user;

	say("entry '%s' left VM '%s' (%s)", daemon_entry_get_id(entry), vm,
	    reason);
	/* Only the user's detach forgets: an entry comes back to a VM that
	 * exited when it returns. */
	if (strcmp(reason, "detached") == 0)
		remember(r->d, vm, daemon_entry_get_id(entry), FALSE);
	ccid_agent_manager_emit_session_ended(r->d->manager,
		daemon_entry_get_id(entry), vm, reason);
}

static void on_session_failed(void *user, daemon_entry *entry, const char *vm,
			      const char *reason)
{
	struct entry_rec *r = user;

	say("%s", reason);
	ccid_agent_manager_emit_session_failed(r->d->manager,
		daemon_entry_get_id(entry), vm, reason);
}

/* Said at info level too (agent_cardset logs the slot's line), so the
 * daemon's own log names the entry and the VM. */
static void on_pin_guard_refused(void *user, daemon_entry *entry,
				 const char *vm, const char *command,
				 guint8 reference)
{
	struct entry_rec *r = user;

	say("entry '%s': the PIN guard kept the last try of PIN reference "
	    "0x%02X from VM '%s' (refused its %s)", daemon_entry_get_id(entry),
	    reference, vm, command);
	ccid_agent_manager_emit_pin_guard_refused(r->d->manager,
		daemon_entry_get_id(entry), vm, command, reference);
}

static const struct daemon_entry_callbacks entry_cbs = {
	.changed = on_entry_changed,
	.session_started = on_session_started,
	.session_ended = on_session_ended,
	.session_failed = on_session_failed,
	.pin_guard_refused = on_pin_guard_refused,
};

/* --- lookups --------------------------------------------------------------- */

/* ENTRY: an id, or a part of exactly one label (case-insensitive). */
static struct entry_rec *find_entry(daemon_service *d, const char *text,
				    GError **error)
{
	g_autofree char *want = g_utf8_casefold(text, -1);
	g_autoptr(GString) ids = g_string_new(NULL);
	struct entry_rec *found = NULL;
	guint matches = 0;

	for (guint i = 0; i < d->entries->len; i++) {
		struct entry_rec *r = g_ptr_array_index(d->entries, i);

		if (strcmp(daemon_entry_get_id(r->entry), text) == 0)
			return r;
	}
	for (guint i = 0; i < d->entries->len; i++) {
		struct entry_rec *r = g_ptr_array_index(d->entries, i);
		g_autofree char *label = g_utf8_casefold(
			daemon_entry_get_label(r->entry), -1);

		g_string_append_printf(ids, "%s%s", i ? ", " : "",
				       daemon_entry_get_id(r->entry));
		if (text[0] != '\0' && strstr(label, want) != NULL) {
			found = r;
			matches++;
		}
	}
	if (matches == 1)
		return found;
	if (matches == 0)
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_NOT_FOUND,
			    "no entry '%s' (entries: %s; 'ccid-agent list' "
			    "shows them)", text, ids->str);
	else
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_INVALID_ARGS,
			    "'%s' is part of %u entry labels: give an id "
			    "(entries: %s)", text, matches, ids->str);
	return NULL;
}

static struct vm_rec *find_vm(daemon_service *d, const char *name,
			      GError **error)
{
	struct vm_rec *r = g_hash_table_lookup(d->vms, name);

	if (r == NULL || r->obj == NULL) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_NOT_FOUND,
			    "no VM '%s' (add it with 'ccid-agent vm add %s "
			    "--qmp unix:PATH'; 'ccid-agent vms' lists the "
			    "VMs)", name, name);
		return NULL;
	}
	return r;
}

/* --- method calls ---------------------------------------------------------- */

/* A method call being answered: through D-Bus, or through a callback
 * (daemon_service_private.h).  Answered exactly once, which frees it. */
struct daemon_call {
	GDBusMethodInvocation *inv;
	daemon_call_reply_fn fn;
	void *user;
	GVariant *args;
};

/* Answers @c with @value (a tuple, possibly floating; NULL: no value) or
 * @error.  Accepts NULL. */
static void call_return(daemon_call *c, GVariant *value, const GError *error)
{
	/* Without a call (AddVm's answer for a VM nobody is adding) the
	 * value is only freed. */
	if (value != NULL)
		g_variant_ref_sink(value);
	if (c != NULL && c->inv != NULL && error != NULL)
		g_dbus_method_invocation_return_gerror(c->inv, error);
	else if (c != NULL && c->inv != NULL)
		g_dbus_method_invocation_return_value(c->inv, value);
	else if (c != NULL)
		c->fn(c->user, value, error);
	if (value != NULL)
		g_variant_unref(value);
	if (c != NULL && c->args != NULL)
		g_variant_unref(c->args);
	g_free(c);
}

static void complete(daemon_call *c, const GError *error)
{
	call_return(c, NULL, error);
}

static void on_call_done(void *user, const GError *error)
{
	complete(user, error);
}

/* --- entry methods --------------------------------------------------------- */

/* The (entry, VM) arguments of Attach and Detach, looked up: NULL, with
 * @error naming what is not there, unless both are. */
static struct vm_rec *find_entry_and_vm(daemon_service *d, GVariant *args,
					struct entry_rec **e, const char **vm,
					GError **error)
{
	const char *entry;

	g_variant_get(args, "(&s&s)", &entry, vm);
	*e = find_entry(d, entry, error);
	return *e != NULL ? find_vm(d, *vm, error) : NULL;
}

static void call_attach(daemon_service *d, daemon_call *inv, GVariant *args)
{
	g_autoptr(GError) error = NULL;
	const char *vm;
	struct entry_rec *e;
	struct vm_rec *v = find_entry_and_vm(d, args, &e, &vm, &error);

	/* Who holds a USB reader is looked at every 2 s; an attach decides
	 * on what holds it now. */
	if (v != NULL && daemon_entry_is_passthrough(e->entry))
		daemon_usb_refresh(d->usb);
	if (v == NULL || !daemon_entry_attach(e->entry, v->vm, on_call_done,
					      inv, &error))
		complete(inv, error);
}

static void call_detach(daemon_service *d, daemon_call *inv, GVariant *args)
{
	g_autoptr(GError) error = NULL;
	const char *vm;
	struct entry_rec *e;
	struct vm_rec *v = find_entry_and_vm(d, args, &e, &vm, &error);

	if (v == NULL || !daemon_entry_detach(e->entry, vm, on_call_done, inv,
					      &error))
		complete(inv, error);
}

static void set_inserted(daemon_service *d, daemon_call *inv, GVariant *args,
			 gboolean inserted)
{
	g_autoptr(GError) error = NULL;
	const char *entry;
	struct entry_rec *e;

	g_variant_get(args, "(&s)", &entry);
	e = find_entry(d, entry, &error);
	if (e == NULL || !daemon_entry_set_inserted(e->entry, inserted,
						    on_call_done, inv, &error))
		complete(inv, error);
}

static void call_insert(daemon_service *d, daemon_call *inv, GVariant *args)
{
	set_inserted(d, inv, args, TRUE);
}

static void call_remove(daemon_service *d, daemon_call *inv, GVariant *args)
{
	set_inserted(d, inv, args, FALSE);
}

/* --- VMs ------------------------------------------------------------------- */

static char *object_path(const char *kind, const char *name)
{
	g_autofree char *esc = g_dbus_escape_object_path(name);

	return g_strdup_printf(DAEMON_PATH "/%s/%s", kind, esc);
}

/* --- remembered VMs and attachments ----------------------------------------- */

static void save_state(daemon_service *d)
{
	g_autoptr(GArray) vms = g_array_new(FALSE, TRUE,
					    sizeof(struct daemon_state_vm));
	g_autoptr(GError) error = NULL;
	GHashTableIter it;
	gpointer v;

	if (d->stopping)
		return;
	g_hash_table_iter_init(&it, d->vms);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct vm_rec *r = v;
		struct daemon_state_vm sv;

		if (r->obj == NULL || r->removing != NULL)
			continue;
		/* A libvirt domain is found again anyway: kept for its
		 * attachments only. */
		if (g_str_has_prefix(r->qmp, DAEMON_LIBVIRT_PREFIX) &&
		    r->remembered->len == 0)
			continue;
		sv.name = r->name;
		sv.qmp = r->qmp;
		g_ptr_array_add(r->remembered, NULL);
		sv.entries = (char **)r->remembered->pdata;
		g_array_append_val(vms, sv);
	}
	if (!daemon_state_save(d->state_path, vms, &error))
		say("%s", error->message);
	g_hash_table_iter_init(&it, d->vms);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct vm_rec *r = v;

		if (r->obj != NULL && r->removing == NULL &&
		    (!g_str_has_prefix(r->qmp, DAEMON_LIBVIRT_PREFIX) ||
		     r->remembered->len > 1))
			g_ptr_array_remove_index(r->remembered,
						 r->remembered->len - 1);
	}
}

static gboolean remembered_has(struct vm_rec *r, const char *entry)
{
	for (guint i = 0; i < r->remembered->len; i++)
		if (strcmp(g_ptr_array_index(r->remembered, i), entry) == 0)
			return TRUE;
	return FALSE;
}

static void remember(daemon_service *d, const char *vm, const char *entry,
		     gboolean attached)
{
	struct vm_rec *r = g_hash_table_lookup(d->vms, vm);

	if (r == NULL || remembered_has(r, entry) == attached)
		return;
	if (attached) {
		g_ptr_array_add(r->remembered, g_strdup(entry));
	} else {
		for (guint i = 0; i < r->remembered->len; i++)
			if (strcmp(g_ptr_array_index(r->remembered, i),
				   entry) == 0)
				g_ptr_array_remove_index(r->remembered, i);
	}
	save_state(d);
}

static void on_reattached(void *user, const GError *error)
{
	if (error != NULL)
		say("%s", error->message);
}

/* The VM is (back) there: its remembered entries come back to it. */
static void reattach(struct vm_rec *r)
{
	daemon_service *d = r->d;

	for (guint i = 0; i < r->remembered->len; i++) {
		const char *id = g_ptr_array_index(r->remembered, i);
		g_autoptr(GError) error = NULL;
		struct entry_rec *e = NULL;

		for (guint j = 0; j < d->entries->len && e == NULL; j++) {
			struct entry_rec *c = g_ptr_array_index(d->entries, j);

			if (strcmp(daemon_entry_get_id(c->entry), id) == 0)
				e = c;
		}
		if (e == NULL) {
			say("VM '%s': remembered entry '%s' no longer exists",
			    r->name, id);
			continue;
		}
		if (daemon_entry_is_attached_to(e->entry, r->name))
			continue;
		say("VM '%s': attaching remembered entry '%s'", r->name, id);
		if (!daemon_entry_attach(e->entry, r->vm, on_reattached, NULL,
					 &error))
			say("%s", error->message);
	}
}

/* A new entry may be remembered by VMs that are there. */
static void reattach_all(daemon_service *d)
{
	GHashTableIter it;
	gpointer v;

	g_hash_table_iter_init(&it, d->vms);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct vm_rec *r = v;

		if (r->vm != NULL && r->removing == NULL &&
		    !daemon_vm_is_gone(r->vm) &&
		    g_strcmp0(daemon_vm_get_state(r->vm), "connecting") != 0)
			reattach(r);
	}
}

/* --- VMs ------------------------------------------------------------------- */

static void vm_connect(struct vm_rec *r);
static void unwatch_qmp_dir(struct vm_rec *r);

static void vm_rec_free(gpointer p)
{
	struct vm_rec *r = p;
	g_autoptr(GError) error = NULL;

	if (r->retry_id != 0)
		g_source_remove(r->retry_id);
	/* Freed first (daemon_service_free): the idle must not run later. */
	if (r->remove_id != 0)
		g_source_remove(r->remove_id);
	unwatch_qmp_dir(r);
	/* No session may outlive its VM's record. */
	for (guint i = 0; i < r->d->entries->len; i++) {
		struct entry_rec *e = g_ptr_array_index(r->d->entries, i);

		daemon_entry_vm_gone(e->entry, r->name, "vm-removed");
	}

	if (r->obj != NULL) {
		g_dbus_object_manager_server_unexport(r->d->om,
			g_dbus_object_get_object_path(G_DBUS_OBJECT(r->obj)));
		g_object_unref(r->obj);
		g_object_unref(r->iface);
	}
	error = g_error_new(DAEMON_ERROR, DAEMON_ERROR_FAILED,
			    "VM '%s' was removed", r->name);
	if (r->adding != NULL)
		complete(r->adding, error);
	if (r->removing != NULL)
		complete(r->removing, NULL);
	daemon_vm_free(r->vm);
	g_ptr_array_unref(r->remembered);
	g_free(r->qmp);
	g_free(r->name);
	g_free(r);
}

/* Removal out of any callback of the VM itself. */
static gboolean remove_vm_idle(gpointer data)
{
	struct vm_rec *r = data;
	daemon_service *d = r->d;
	gboolean known = r->obj != NULL;

	r->remove_id = 0;
	g_hash_table_remove(d->vms, r->name);
	if (known)
		save_state(d);
	return G_SOURCE_REMOVE;
}

static void set_vm_state(struct vm_rec *r, const char *state)
{
	if (r->iface != NULL)
		ccid_agent_vm_set_state(r->iface, state);
}

static void on_vm_state(void *user, daemon_vm *vm)
{
	struct vm_rec *r = user;

	if (vm == r->vm)
		set_vm_state(r, daemon_vm_get_state(vm));
}

/* A libvirt daemon started (daemon_libvirt_waiter): libvirt is loaded
 * now, the remembered libvirt VMs (refused until now) look again, and
 * the running domains come. */
static void on_libvirt_domain(void *user, const char *uri,
			      const char *name);

static gboolean on_libvirt_reachable(gpointer data)
{
	daemon_service *d = data;
	GHashTableIter it;
	struct vm_rec *r;

	g_clear_pointer(&d->libvirt_waiter, daemon_libvirt_waiter_free);
	d->libvirt = daemon_libvirt_new((const char *const *)d->libvirt_uris,
					on_libvirt_domain, d);
	if (d->libvirt == NULL)
		return G_SOURCE_REMOVE;
	g_hash_table_iter_init(&it, d->vms);
	while (g_hash_table_iter_next(&it, NULL, (gpointer *)&r))
		if (g_str_has_prefix(r->qmp, DAEMON_LIBVIRT_PREFIX))
			vm_connect(r);
	daemon_libvirt_scan(d->libvirt);
	return G_SOURCE_REMOVE;
}

static gboolean on_vm_retry(gpointer data)
{
	struct vm_rec *r = data;

	r->retry_id = 0;
	vm_connect(r);
	return G_SOURCE_REMOVE;
}

static void unwatch_qmp_dir(struct vm_rec *r)
{
	if (r->qmp_dir_monitor == NULL)
		return;
	g_signal_handlers_disconnect_by_data(r->qmp_dir_monitor, r);
	g_file_monitor_cancel(r->qmp_dir_monitor);
	g_clear_object(&r->qmp_dir_monitor);
}

/* Something changed in the QMP socket's directory: if it is the socket
 * (QEMU bound it again), the VM is looked for at once. */
static void on_qmp_dir_changed(GFileMonitor *mon, GFile *file, GFile *other,
			       GFileMonitorEvent event, gpointer data)
{
	struct vm_rec *r = data;
	g_autofree char *want = g_path_get_basename(r->qmp + strlen("unix:"));
	g_autofree char *name = g_file_get_basename(file);
	g_autofree char *to = other != NULL ? g_file_get_basename(other) :
			      NULL;

	if (r->waiting && r->removing == NULL &&
	    (event == G_FILE_MONITOR_EVENT_DELETED ||
	     event == G_FILE_MONITOR_EVENT_MOVED_OUT) &&
	    g_strcmp0(name, want) == 0 && r->quick_left == 0) {
		/* No file, nothing to poll: its next one is an event. */
		if (r->retry_id != 0) {
			g_source_remove(r->retry_id);
			r->retry_id = 0;
		}
		say("VM '%s': its QMP socket %s was removed; waiting for it "
		    "to appear", r->name, r->qmp + strlen("unix:"));
		return;
	}
	if (!r->waiting || r->removing != NULL ||
	    (event != G_FILE_MONITOR_EVENT_CREATED &&
	     event != G_FILE_MONITOR_EVENT_CHANGED &&
	     event != G_FILE_MONITOR_EVENT_ATTRIBUTE_CHANGED &&
	     event != G_FILE_MONITOR_EVENT_MOVED_IN &&
	     event != G_FILE_MONITOR_EVENT_RENAMED) ||
	    (g_strcmp0(name, want) != 0 && g_strcmp0(to, want) != 0))
		return;
	say("VM '%s': its QMP socket %s appeared; connecting", r->name,
	    r->qmp + strlen("unix:"));
	r->quick_left = VM_QUICK_TRIES;
	if (r->retry_id != 0)
		g_source_remove(r->retry_id);
	/* Out of the monitor's signal. */
	r->retry_id = g_idle_add(on_vm_retry, r);
}

/* Watches the QMP socket's directory; FALSE when it cannot be. */
static gboolean watch_qmp_dir(struct vm_rec *r)
{
	g_autofree char *dir = NULL;
	g_autoptr(GFile) f = NULL;
	g_autoptr(GError) error = NULL;

	if (r->qmp_dir_monitor != NULL)
		return TRUE;
	dir = g_path_get_dirname(r->qmp + strlen("unix:"));
	f = g_file_new_for_path(dir);
	r->qmp_dir_monitor = g_file_monitor_directory(f, G_FILE_MONITOR_NONE,
						      NULL, &error);
	if (r->qmp_dir_monitor == NULL) {
		say("VM '%s': cannot watch %s (%s); looking for its QMP "
		    "socket every %u s instead", r->name, dir, error->message,
		    VM_RETRY_MS / 1000);
		return FALSE;
	}
	g_signal_connect(r->qmp_dir_monitor, "changed",
			 G_CALLBACK(on_qmp_dir_changed), r);
	return TRUE;
}

/* A known VM is not there (any more): look for it again when its QMP
 * socket appears, with a new connection (out of the old one's
 * callbacks). */
static void schedule_retry(struct vm_rec *r)
{
	gboolean watched;

	/* libvirt tells when a domain starts (on_libvirt_domain). */
	if (g_str_has_prefix(r->qmp, DAEMON_LIBVIRT_PREFIX) ||
	    r->removing != NULL)
		return;
	r->waiting = TRUE;
	watched = watch_qmp_dir(r);
	if (r->retry_id != 0)
		return;
	if (r->quick_left > 0) {
		/* The socket appeared; QEMU may not listen on it yet. */
		r->quick_left--;
		r->retry_id = g_timeout_add(VM_QUICK_MS, on_vm_retry, r);
	} else if (!watched || g_file_test(r->qmp + strlen("unix:"),
					   G_FILE_TEST_EXISTS)) {
		r->retry_id = g_timeout_add(VM_RETRY_MS, on_vm_retry, r);
	}
}

static void on_vm_gone(void *user, daemon_vm *vm, const char *reason,
		       const char *detail)
{
	struct vm_rec *r = user;
	daemon_service *d = r->d;

	say("VM '%s' is gone (%s: %s); its sessions end", r->name, reason,
	    detail);
	for (guint i = 0; i < d->entries->len; i++) {
		struct entry_rec *e = g_ptr_array_index(d->entries, i);

		daemon_entry_vm_gone(e->entry, r->name, reason);
	}
	schedule_retry(r);
}

static void export_vm(struct vm_rec *r, const char *state)
{
	g_autofree char *path = object_path("vm", r->name);

	r->obj = ccid_agent_object_skeleton_new(path);
	r->iface = ccid_agent_vm_skeleton_new();
	ccid_agent_vm_set_name(r->iface, r->name);
	ccid_agent_vm_set_qmp(r->iface, r->qmp);
	ccid_agent_vm_set_state(r->iface, state);
	ccid_agent_object_skeleton_set_vm(r->obj, r->iface);
	g_dbus_object_manager_server_export(r->d->om,
					    G_DBUS_OBJECT_SKELETON(r->obj));
	update_vm_entries(r->d);
}

static void on_vm_ready(void *user, daemon_vm *vm, const GError *error)
{
	struct vm_rec *r = user;
	g_autofree char *path = object_path("vm", r->name);
	daemon_call *inv = g_steal_pointer(&r->adding);

	if (error != NULL && r->obj != NULL) {
		/* Remembered: it may come (back) later. */
		g_debug("VM '%s': %s", r->name, error->message);
		set_vm_state(r, "gone");
		schedule_retry(r);
		return;
	}
	if (error != NULL) {
		g_autoptr(GError) err = g_error_new(DAEMON_ERROR,
			DAEMON_ERROR_FAILED, "cannot add VM '%s': %s", r->name,
			error->message);

		say("%s", err->message);
		complete(inv, err);
		if (r->remove_id == 0)
			r->remove_id = g_idle_add(remove_vm_idle, r);
		return;
	}
	/* There: no more watching for it. */
	r->waiting = FALSE;
	r->quick_left = 0;
	unwatch_qmp_dir(r);
	if (r->obj == NULL) {
		export_vm(r, daemon_vm_get_state(vm));
		save_state(r->d);
	}
	set_vm_state(r, daemon_vm_get_state(vm));
	say("VM '%s' %s (QMP %s, %s)", r->name, inv != NULL ? "added" :
	    "is there", r->qmp, daemon_vm_get_state(vm));
	call_return(inv, g_variant_new("(o)", path), NULL);
	reattach(r);
}

/* A new connection to the VM's QMP socket (the first, or after the VM
 * went away). */
static void vm_connect(struct vm_rec *r)
{
	static const struct daemon_vm_callbacks vm_cbs = {
		.state_changed = on_vm_state,
		.gone = on_vm_gone,
	};

	g_clear_pointer(&r->vm, daemon_vm_free);
	if (r->retry_id != 0) {
		g_source_remove(r->retry_id);
		r->retry_id = 0;
	}
	if (g_str_has_prefix(r->qmp, DAEMON_LIBVIRT_PREFIX))
		r->vm = daemon_libvirt_vm_new(r->d->libvirt,
			r->qmp + strlen(DAEMON_LIBVIRT_PREFIX), r->name,
			&vm_cbs, r, on_vm_ready, r);
	else
		r->vm = daemon_vm_new(r->name, r->qmp + strlen("unix:"),
				      &vm_cbs, r, on_vm_ready, r);
}

static struct vm_rec *vm_rec_new(daemon_service *d, const char *name,
				 const char *qmp)
{
	struct vm_rec *r = g_new0(struct vm_rec, 1);

	r->d = d;
	r->name = g_strdup(name);
	r->qmp = g_strdup(qmp);
	r->remembered = g_ptr_array_new_with_free_func(g_free);
	g_hash_table_insert(d->vms, r->name, r);
	return r;
}

static gboolean valid_vm_name(const char *name)
{
	if (name[0] == '\0' || strlen(name) > 64)
		return FALSE;
	for (const char *p = name; *p != '\0'; p++)
		if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != '.')
			return FALSE;
	return TRUE;
}

/* The VMs of the state file, each looked for (and its entries attached)
 * as if it had come back. */
static void restore_vms(daemon_service *d, GPtrArray *errors)
{
	g_autoptr(GArray) vms = daemon_state_load(d->state_path, errors);

	for (guint i = 0; i < vms->len; i++) {
		struct daemon_state_vm *v = &g_array_index(vms,
			struct daemon_state_vm, i);
		struct vm_rec *r;

		if (!valid_vm_name(v->name) ||
		    g_hash_table_contains(d->vms, v->name)) {
			g_ptr_array_add(errors, g_strdup_printf("%s: VM '%s': "
				"bad or repeated name; not remembered",
				d->state_path, v->name));
			continue;
		}
		r = vm_rec_new(d, v->name, v->qmp);
		for (guint j = 0; v->entries[j] != NULL; j++)
			g_ptr_array_add(r->remembered, g_strdup(v->entries[j]));
		export_vm(r, "connecting");
		vm_connect(r);
	}
}

/* A new VM's name and QMP address are usable and the name is free. */
static gboolean check_new_vm(daemon_service *d, const char *name,
			     const char *qmp, GError **error)
{
	struct vm_rec *r;

	if (!valid_vm_name(name)) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_INVALID_ARGS,
			    "VM name '%s': use 1 to 64 letters, digits, '-', "
			    "'_' or '.'", name);
		return FALSE;
	}
	if ((!g_str_has_prefix(qmp, "unix:") || qmp[5] == '\0') &&
	    (!g_str_has_prefix(qmp, DAEMON_LIBVIRT_PREFIX) ||
	     qmp[strlen(DAEMON_LIBVIRT_PREFIX)] == '\0')) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_INVALID_ARGS,
			    "QMP address '%s' of VM '%s': write unix:PATH, the "
			    "PATH of QEMU's -qmp unix:PATH,server=on,wait=off "
			    "(or libvirt:URI for the libvirt domain of that "
			    "name)", qmp, name);
		return FALSE;
	}
	r = g_hash_table_lookup(d->vms, name);
	if (r != NULL) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_BUSY,
			    "VM '%s' is already registered (QMP %s): "
			    "'ccid-agent vm remove %s' first", name, r->qmp,
			    name);
		return FALSE;
	}
	return TRUE;
}

/* A libvirt domain runs (daemon_libvirt.h): a VM of that name, new or
 * back. */
static void on_libvirt_domain(void *user, const char *uri, const char *name)
{
	daemon_service *d = user;
	g_autofree char *address = g_strconcat(DAEMON_LIBVIRT_PREFIX, uri,
					       NULL);
	struct vm_rec *r = g_hash_table_lookup(d->vms, name);

	if (r == NULL) {
		if (!valid_vm_name(name)) {
			say("libvirt %s: domain '%s' left out: a VM name is 1 "
			    "to 64 letters, digits, '-', '_' or '.'", uri,
			    name);
			return;
		}
		r = vm_rec_new(d, name, address);
		export_vm(r, "connecting");
		say("libvirt %s: domain '%s' is VM '%s'", uri, name, name);
		vm_connect(r);
		return;
	}
	if (strcmp(r->qmp, address) != 0) {
		say("libvirt %s: domain '%s' left out: VM '%s' is %s", uri,
		    name, name, r->qmp);
		return;
	}
	if (r->removing == NULL && r->adding == NULL &&
	    (r->vm == NULL || daemon_vm_is_gone(r->vm)))
		vm_connect(r);
}

static void call_add_vm(daemon_service *d, daemon_call *inv, GVariant *args)
{
	g_autoptr(GError) error = NULL;
	const char *name, *qmp;
	struct vm_rec *r;

	g_variant_get(args, "(&s&s)", &name, &qmp);
	if (!check_new_vm(d, name, qmp, &error)) {
		complete(inv, error);
		return;
	}
	r = vm_rec_new(d, name, qmp);
	r->adding = inv;
	vm_connect(r);
}

static void call_plan_vm(daemon_service *d, daemon_call *inv, GVariant *args)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) ids = g_ptr_array_new();
	g_autofree char *path = NULL;
	g_autofree const char **entries = NULL;
	const char *name, *qmp;
	struct vm_rec *r;

	g_variant_get(args, "(&s&s^a&s)", &name, &qmp, &entries);
	path = object_path("vm", name);
	if (!check_new_vm(d, name, qmp, &error)) {
		complete(inv, error);
		return;
	}
	for (guint i = 0; entries[i] != NULL; i++) {
		struct entry_rec *e = find_entry(d, entries[i], &error);

		if (e == NULL) {
			complete(inv, error);
			return;
		}
		g_ptr_array_add(ids, (gpointer)daemon_entry_get_id(e->entry));
	}
	r = vm_rec_new(d, name, qmp);
	for (guint i = 0; i < ids->len; i++)
		if (!remembered_has(r, g_ptr_array_index(ids, i)))
			g_ptr_array_add(r->remembered,
					g_strdup(g_ptr_array_index(ids, i)));
	export_vm(r, "connecting");
	save_state(d);
	say("VM '%s' planned (QMP %s): %u entr%s attached when it runs",
	    name, qmp, r->remembered->len,
	    r->remembered->len == 1 ? "y" : "ies");
	vm_connect(r);
	call_return(inv, g_variant_new("(o)", path), NULL);
}

static void vm_rec_detach_done(struct vm_rec *r)
{
	if (--r->detaches > 0)
		return;
	if (r->remove_id == 0)
		r->remove_id = g_idle_add(remove_vm_idle, r);
}

static void on_remove_detached(void *user, const GError *error)
{
	struct vm_rec *r = user;

	if (error != NULL)
		say("removing VM '%s': %s", r->name, error->message);
	vm_rec_detach_done(r);
}

static void call_remove_vm(daemon_service *d, daemon_call *inv, GVariant *args)
{
	g_autoptr(GError) error = NULL;
	const char *name;
	struct vm_rec *r;

	g_variant_get(args, "(&s)", &name);
	r = find_vm(d, name, &error);
	if (r == NULL) {
		complete(inv, error);
		return;
	}
	if (r->removing != NULL) {
		error = g_error_new(DAEMON_ERROR, DAEMON_ERROR_BUSY,
				    "VM '%s' is being removed already", name);
		complete(inv, error);
		return;
	}
	r->removing = inv;
	if (r->retry_id != 0) {
		g_source_remove(r->retry_id);
		r->retry_id = 0;
	}
	unwatch_qmp_dir(r);
	r->detaches = 1;    /* this function's own */
	for (guint i = 0; i < d->entries->len; i++) {
		struct entry_rec *e = g_ptr_array_index(d->entries, i);
		g_autoptr(GError) why = NULL;

		if (!daemon_entry_is_attached_to(e->entry, name))
			continue;
		r->detaches++;
		if (!daemon_entry_detach(e->entry, name, on_remove_detached, r,
					 &why))
			on_remove_detached(r, why);
	}
	vm_rec_detach_done(r);
}

/* The Manager interface's methods (dbus/org.ccidemu.Agent1.xml), for
 * D-Bus and for daemon_service_call(). */
static const struct method {
	const char *name;
	const char *args;                 /* the in arguments, a tuple */
	void (*call)(daemon_service *d, daemon_call *c, GVariant *args);
} methods[] = {
	{ "Attach",     "(ss)",   call_attach },
	{ "Detach",     "(ss)",   call_detach },
	{ "InsertCard", "(s)",    call_insert },
	{ "RemoveCard", "(s)",    call_remove },
	{ "AddVm",      "(ss)",   call_add_vm },
	{ "PlanVm",     "(ssas)", call_plan_vm },
	{ "RemoveVm",   "(s)",    call_remove_vm },
};

/* Runs @c's method on @args (the call holds a reference until it is
 * answered: the methods keep strings from it). */
static void dispatch(daemon_service *d, daemon_call *c, const char *method,
		     GVariant *args)
{
	c->args = g_variant_ref_sink(args);
	for (gsize i = 0; i < G_N_ELEMENTS(methods); i++) {
		if (strcmp(methods[i].name, method) != 0)
			continue;
		if (!g_variant_is_of_type(args, G_VARIANT_TYPE(methods[i].args)))
			break;
		methods[i].call(d, c, args);
		return;
	}
	{
		g_autoptr(GError) error = g_error_new(DAEMON_ERROR,
			DAEMON_ERROR_INVALID_ARGS, "no method %s%s on %s",
			method, g_variant_get_type_string(args), DAEMON_PATH);

		complete(c, error);
	}
}

void daemon_service_call(daemon_service *d, const char *method, GVariant *args,
			 daemon_call_reply_fn fn, void *user)
{
	daemon_call *c = g_new0(daemon_call, 1);

	c->fn = fn;
	c->user = user;
	dispatch(d, c, method, args);
}

/* Every "handle-*" signal of the generated skeleton: the arguments are
 * taken from the invocation, the same way for each method. */
static gboolean on_handle(daemon_service *d, GDBusMethodInvocation *inv)
{
	daemon_call *c = g_new0(daemon_call, 1);

	c->inv = inv;
	dispatch(d, c, g_dbus_method_invocation_get_method_name(inv),
		 g_dbus_method_invocation_get_parameters(inv));
	return TRUE;
}

static gboolean handle_ss(CcidAgentManager *m, GDBusMethodInvocation *inv,
			  const char *a, const char *b, gpointer d)
{
	return on_handle(d, inv);
}

static gboolean handle_s(CcidAgentManager *m, GDBusMethodInvocation *inv,
			 const char *a, gpointer d)
{
	return on_handle(d, inv);
}

static gboolean handle_ssas(CcidAgentManager *m, GDBusMethodInvocation *inv,
			    const char *a, const char *b,
			    const char *const *c, gpointer d)
{
	return on_handle(d, inv);
}

/* --- bus ------------------------------------------------------------------- */

static struct entry_rec *add_entry(daemon_service *d, const char *id,
				   const char *label,
				   struct agent_card_spec *spec,
				   gboolean single_session)
{
	struct entry_rec *r = g_new0(struct entry_rec, 1);
	g_autofree char *path = object_path("entry", id);

	r->d = d;
	r->entry = daemon_entry_new(id, label, spec, single_session,
				    &entry_cbs, r);
	r->obj = ccid_agent_object_skeleton_new(path);
	r->iface = ccid_agent_entry_skeleton_new();
	update_entry(r);
	ccid_agent_object_skeleton_set_entry(r->obj, r->iface);
	g_dbus_object_manager_server_export(d->om,
					    G_DBUS_OBJECT_SKELETON(r->obj));
	g_ptr_array_add(d->entries, r);
	return r;
}

/* Virtual and nss: entries in one daemon: libcacard set up for both
 * before the first card (agent_card_kinds_prepare_cacard), so either may
 * be attached first.  Only then: it opens the NSS databases. */
static void prepare_cacard(daemon_service *d)
{
	const struct agent_card_spec *soft = NULL, *hw = NULL;
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < d->cfg->entries->len; i++) {
		const struct agent_card_spec *spec = &g_array_index(
			d->cfg->entries, struct daemon_entry_config, i).spec;

		if (spec->kind == AGENT_CARD_VIRTUAL && soft == NULL)
			soft = spec;
		else if (spec->kind == AGENT_CARD_NSS && hw == NULL)
			hw = spec;
	}
	if (soft != NULL && hw != NULL &&
	    !agent_card_kinds_prepare_cacard(soft, hw, &error))
		say("cannot set up libcacard for virtual and nss cards "
		    "together: %s (the kind attached first works)",
		    error->message);
}

static void export_entries(daemon_service *d)
{
	prepare_cacard(d);
	for (guint i = 0; i < d->cfg->entries->len; i++) {
		struct daemon_entry_config *c = &g_array_index(d->cfg->entries,
			struct daemon_entry_config, i);

		struct entry_rec *r = add_entry(d, c->id, c->label, &c->spec,
						c->single_session);

		/* Not known to be there until the reader watcher says so. */
		if (d->discover &&
		    daemon_entry_get_reader_pattern(r->entry) != NULL)
			daemon_entry_set_reader(r->entry, FALSE, FALSE, NULL);
	}
}

/* --- PC/SC readers as "Shared <reader>" entries ----------------------------- */

static struct entry_rec *entry_by_id(daemon_service *d, const char *id)
{
	for (guint i = 0; i < d->entries->len; i++) {
		struct entry_rec *r = g_ptr_array_index(d->entries, i);

		if (strcmp(daemon_entry_get_id(r->entry), id) == 0)
			return r;
	}
	return NULL;
}

static struct entry_rec *entry_by_reader(daemon_service *d, const char *name)
{
	for (guint i = 0; i < d->entries->len; i++) {
		struct entry_rec *r = g_ptr_array_index(d->entries, i);

		if (g_strcmp0(r->reader, name) == 0)
			return r;
	}
	return NULL;
}

/* "pcsc-" and the reader name in lower case, other characters as '-':
 * stable while the reader keeps its name (pcscd names a reader by model,
 * serial where known, and index). */
static char *reader_entry_id(daemon_service *d, const char *name)
{
	GString *id = g_string_new("pcsc-");
	g_autofree char *base = NULL;

	for (const char *p = name; *p != '\0' && id->len < 60; p++) {
		if (g_ascii_isalnum(*p))
			g_string_append_c(id, g_ascii_tolower(*p));
		else if (id->str[id->len - 1] != '-')
			g_string_append_c(id, '-');
	}
	while (id->len > 5 && id->str[id->len - 1] == '-')
		g_string_truncate(id, id->len - 1);
	base = g_strdup(id->str);
	for (guint n = 2; entry_by_id(d, id->str) != NULL; n++)
		g_string_printf(id, "%s-%u", base, n);
	return g_string_free(id, FALSE);
}

/* A configured pcsc entry (card=pcsc:PATTERN) shows the reader its
 * pattern names as the card will pick it: the exact name, else the one
 * reader whose name contains it. */
static void configured_reader_state(struct entry_rec *r,
				    const GPtrArray *readers)
{
	const char *pattern = daemon_entry_get_reader_pattern(r->entry);
	const struct daemon_reader *hit = NULL;
	guint n_sub = 0;

	if (pattern == NULL)
		return;
	for (guint i = 0; i < readers->len; i++) {
		const struct daemon_reader *rd = g_ptr_array_index(readers, i);

		if (strcmp(rd->name, pattern) == 0) {
			hit = rd;
			n_sub = 1;
			break;
		}
		if (strstr(rd->name, pattern) != NULL && n_sub++ == 0)
			hit = rd;
	}
	if (n_sub == 1) {
		daemon_entry_set_reader(r->entry, TRUE, hit->present, hit->atr);
		daemon_entry_set_reader_exclusive(r->entry, hit->exclusive);
	} else {
		daemon_entry_set_reader(r->entry, FALSE, FALSE, NULL);
	}
}

static void correlate_readers(daemon_service *d);

static void on_readers(void *user, const GPtrArray *readers)
{
	daemon_service *d = user;
	gboolean added = FALSE;

	for (guint i = 0; i < readers->len; i++) {
		const struct daemon_reader *rd = g_ptr_array_index(readers, i);
		struct entry_rec *r = entry_by_reader(d, rd->name);

		if (r == NULL) {
			struct agent_card_spec spec = { .kind = AGENT_CARD_PCSC };
			struct ccid_card_pcsc_config defaults;
			g_autofree char *id = reader_entry_id(d, rd->name);
			g_autofree char *label = g_strconcat("Shared ",
							     rd->name, NULL);
			const struct daemon_reader_config *pol =
				daemon_config_find_reader(d->cfg, rd->name);

			/* The exact name, never parsed as a pattern. */
			ccid_card_pcsc_config_init(&defaults);
			spec.reader = g_strdup(rd->name);
			spec.idle_ms = defaults.idle_ms;
			spec.lock_timeout_ms = defaults.lock_timeout_ms;
			/* Its [reader NAME] policy, if agent.conf has one. */
			if (pol != NULL) {
				spec.idle_ms = pol->idle_ms;
				spec.lock_timeout_ms = pol->lock_timeout_ms;
			}
			r = add_entry(d, id, label, &spec,
				      pol != NULL && pol->single_session);
			r->reader = g_strdup(rd->name);
			say("PC/SC reader '%s' is entry '%s'", rd->name, id);
			added = TRUE;
		}
		daemon_entry_set_reader(r->entry, TRUE, rd->present, rd->atr);
		daemon_entry_set_reader_exclusive(r->entry, rd->exclusive);
		r->channel_id = rd->channel_id;
	}
	/* A reader that left stays an entry, unavailable, with its id. */
	for (guint i = 0; i < d->entries->len; i++) {
		struct entry_rec *r = g_ptr_array_index(d->entries, i);
		gboolean seen = FALSE;

		if (r->reader == NULL) {
			configured_reader_state(r, readers);
			continue;
		}
		for (guint j = 0; j < readers->len && !seen; j++)
			seen = strcmp(((const struct daemon_reader *)
				       g_ptr_array_index(readers, j))->name,
				      r->reader) == 0;
		if (!seen)
			daemon_entry_set_reader(r->entry, FALSE, FALSE, NULL);
	}
	/* pcscd came, went or took a reader: who holds the USB readers. */
	daemon_usb_refresh(d->usb);
	correlate_readers(d);
	if (added)
		reattach_all(d);
}

static void entry_rec_free(gpointer p)
{
	struct entry_rec *r = p;

	g_free(r->reader);
	g_free(r->usb_id);
	g_free(r->usb_model);
	g_free(r->usb_serial);
	daemon_entry_free(r->entry);
	g_object_unref(r->obj);
	g_object_unref(r->iface);
	g_free(r);
}

static void report_restore(daemon_service *d);
static void usb_start(daemon_service *d);

gboolean daemon_service_export(daemon_service *d, GDBusConnection *conn,
			       GError **error)
{
	/* NULL: on no bus; calls come through daemon_service_call(). */
	d->conn = conn != NULL ? g_object_ref(conn) : NULL;
	d->om = g_dbus_object_manager_server_new(DAEMON_PATH);
	d->manager = ccid_agent_manager_skeleton_new();
	ccid_agent_manager_set_version(d->manager, CCID_EMU_VERSION);
	g_signal_connect(d->manager, "handle-attach",
			 G_CALLBACK(handle_ss), d);
	g_signal_connect(d->manager, "handle-detach",
			 G_CALLBACK(handle_ss), d);
	g_signal_connect(d->manager, "handle-insert-card",
			 G_CALLBACK(handle_s), d);
	g_signal_connect(d->manager, "handle-remove-card",
			 G_CALLBACK(handle_s), d);
	g_signal_connect(d->manager, "handle-add-vm",
			 G_CALLBACK(handle_ss), d);
	g_signal_connect(d->manager, "handle-plan-vm",
			 G_CALLBACK(handle_ssas), d);
	g_signal_connect(d->manager, "handle-remove-vm",
			 G_CALLBACK(handle_s), d);
	if (conn != NULL && !g_dbus_interface_skeleton_export(
		    G_DBUS_INTERFACE_SKELETON(d->manager), conn, DAEMON_PATH,
		    error)) {
		g_prefix_error(error, "cannot export %s: ", DAEMON_PATH);
		return FALSE;
	}
	export_entries(d);
	if (d->libvirt_uris != NULL &&
	    daemon_libvirt_reachable((const char *const *)d->libvirt_uris))
		d->libvirt = daemon_libvirt_new(
			(const char *const *)d->libvirt_uris,
			on_libvirt_domain, d);
	else if (d->libvirt_uris != NULL)
		d->libvirt_waiter = daemon_libvirt_waiter_new(
			(const char *const *)d->libvirt_uris,
			on_libvirt_reachable, d);
	report_restore(d);
	if (d->libvirt != NULL)
		daemon_libvirt_scan(d->libvirt);
	if (d->discover)
		d->readers = daemon_readers_new(on_readers, d);
	if (d->discover && !d->no_usb)
		usb_start(d);
	g_ptr_array_add(d->cfg->errors, NULL);
	ccid_agent_manager_set_config_errors(d->manager,
		(const char *const *)d->cfg->errors->pdata);
	g_ptr_array_remove_index(d->cfg->errors, d->cfg->errors->len - 1);
	g_dbus_object_manager_server_set_connection(d->om, conn);
	return TRUE;
}

/* The state file's VMs, its problems on stderr (and in ConfigErrors). */
static void report_restore(daemon_service *d)
{
	guint before = d->cfg->errors->len;

	restore_vms(d, d->cfg->errors);
	for (guint i = before; i < d->cfg->errors->len; i++)
		say("remembered VMs: %s", (const char *)
		    g_ptr_array_index(d->cfg->errors, i));
}

daemon_service *daemon_service_new(struct daemon_config *cfg,
				   const char *state_path, gboolean discover)
{
	daemon_service *d = g_new0(daemon_service, 1);

	d->discover = discover;
	daemon_errors_register();
	d->cfg = cfg;
	d->state_path = g_strdup(state_path);
	d->entries = g_ptr_array_new_with_free_func(entry_rec_free);
	d->vms = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
				       vm_rec_free);
	return d;
}

void daemon_service_set_libvirt(daemon_service *d, const char *const *uris)
{
	g_strfreev(d->libvirt_uris);
	d->libvirt_uris = g_strdupv((char **)uris);
}

void daemon_service_set_usb(daemon_service *d, gboolean usb)
{
	d->no_usb = !usb;
}

guint daemon_service_n_entries(const daemon_service *d)
{
	return d->entries->len;
}

void daemon_service_free(daemon_service *d)
{
	if (d == NULL)
		return;
	/* VMs first (their operations end), then the entries' sessions;
	 * what is remembered stays as it was. */
	d->stopping = TRUE;
	g_clear_pointer(&d->readers, daemon_readers_free);
	g_clear_pointer(&d->usb, daemon_usb_free);
	g_hash_table_remove_all(d->vms);
	g_clear_pointer(&d->libvirt_waiter, daemon_libvirt_waiter_free);
	g_clear_pointer(&d->libvirt, daemon_libvirt_free);
	g_strfreev(d->libvirt_uris);
	g_ptr_array_set_size(d->entries, 0);
	g_hash_table_unref(d->vms);
	g_ptr_array_unref(d->entries);
	if (d->om != NULL)
		g_dbus_object_manager_server_set_connection(d->om, NULL);
	if (d->manager != NULL && d->conn != NULL)
		g_dbus_interface_skeleton_unexport(
			G_DBUS_INTERFACE_SKELETON(d->manager));
	g_clear_object(&d->om);
	g_clear_object(&d->manager);
	g_clear_object(&d->conn);
	g_free(d->state_path);
	g_free(d);
}

/* --- USB readers as passthrough entries "<model>" ---------------------------- */

/* A passthrough entry and the PC/SC reader entry of the same reader:
 * pcscd's SCARD_ATTR_CHANNEL_ID names the USB bus and address (libccid:
 * 0x0020BBAA); without it, the reader name holds the USB serial number,
 * or (no serial) starts with the model and no other USB reader has that
 * model.  Returns how they matched, or NULL. */
static const char *same_reader(daemon_service *d, const struct entry_rec *u,
			       const struct entry_rec *p)
{
	guint models = 0;

	if (!u->usb_present)
		return NULL;
	if (p->channel_id != 0)
		return p->channel_id == (0x00200000u | (guint32)u->usb_bus << 8 |
					 u->usb_addr) ? "channel id" : NULL;
	if (u->usb_serial != NULL && *u->usb_serial != '\0')
		return strstr(p->reader, u->usb_serial) != NULL ?
		       "serial number" : NULL;
	if (!g_str_has_prefix(p->reader, u->usb_model))
		return NULL;
	for (guint i = 0; i < d->entries->len; i++) {
		struct entry_rec *o = g_ptr_array_index(d->entries, i);

		if (o->usb_id != NULL && o->usb_present &&
		    g_strcmp0(o->usb_model, u->usb_model) == 0)
			models++;
	}
	return models == 1 ? "model" : NULL;
}

static void correlate_readers(daemon_service *d)
{
	for (guint i = 0; i < d->entries->len; i++) {
		struct entry_rec *u = g_ptr_array_index(d->entries, i);
		daemon_entry *old;

		if (u->usb_id == NULL || !u->usb_present)
			continue;
		old = daemon_entry_get_peer(u->entry);
		for (guint j = 0; j < d->entries->len; j++) {
			struct entry_rec *p = g_ptr_array_index(d->entries, j);
			const char *how = p->reader != NULL ?
					  same_reader(d, u, p) : NULL;

			if (how == NULL)
				continue;
			if (old != p->entry) {
				struct entry_rec *o = NULL;

				for (guint k = 0; old != NULL &&
				     k < d->entries->len; k++) {
					o = g_ptr_array_index(d->entries, k);
					if (o->entry == old)
						break;
					o = NULL;
				}
				daemon_entry_set_peer(u->entry, p->entry);
				say("entries '%s' and '%s' are one reader (by "
				    "%s)", daemon_entry_get_id(u->entry),
				    daemon_entry_get_id(p->entry), how);
				update_entry(p);
				if (o != NULL)
					update_entry(o);
			}
			/* The card as pcscd saw it, while pcscd drives it. */
			if (g_strcmp0(daemon_entry_get_state(p->entry),
				      "unavailable") != 0)
				daemon_entry_set_reader(u->entry, TRUE,
					strcmp(daemon_entry_get_state(p->entry),
					       "card-present") == 0,
					daemon_entry_get_atr(p->entry));
			update_entry(u);
			break;
		}
	}
}

static void on_usb(void *user, const struct daemon_usb_reader *rd)
{
	daemon_service *d = user;
	struct entry_rec *r = NULL;

	for (guint i = 0; i < d->entries->len && r == NULL; i++) {
		struct entry_rec *c = g_ptr_array_index(d->entries, i);

		if (g_strcmp0(c->usb_id, rd->id) == 0)
			r = c;
	}
	if (r == NULL) {
		g_autofree char *path = NULL;
		char *id = g_strdup(rd->id);

		/* An id a configured entry took already gets a number. */
		for (guint n = 2; entry_by_id(d, id) != NULL; n++) {
			g_free(id);
			id = g_strdup_printf("%s-%u", rd->id, n);
		}
		path = object_path("entry", id);
		r = g_new0(struct entry_rec, 1);
		r->d = d;
		r->usb_id = g_strdup(rd->id);
		r->entry = daemon_entry_new_passthrough(id, rd->model,
							&entry_cbs, r);
		r->obj = ccid_agent_object_skeleton_new(path);
		r->iface = ccid_agent_entry_skeleton_new();
		ccid_agent_object_skeleton_set_entry(r->obj, r->iface);
		g_ptr_array_add(d->entries, r);
		say("USB reader %04x:%04x '%s' (%s) is passthrough entry '%s'",
		    rd->vid, rd->pid, rd->model, rd->port_path, id);
		g_free(id);
		update_entry(r);
		g_dbus_object_manager_server_export(d->om,
			G_DBUS_OBJECT_SKELETON(r->obj));
	}
	g_free(r->usb_model);
	r->usb_model = g_strdup(rd->model);
	g_free(r->usb_serial);
	r->usb_serial = g_strdup(rd->serial);
	r->usb_bus = rd->bus;
	r->usb_addr = rd->addr;
	r->usb_present = rd->present;
	daemon_entry_set_usb(r->entry, rd->present ? rd->selector : NULL,
			     rd->holders);
	correlate_readers(d);
	reattach_all(d);
}

static void usb_start(daemon_service *d)
{
	g_autoptr(GError) error = NULL;

	d->usb = daemon_usb_new(on_usb, d, &error);
	if (d->usb == NULL)
		say("no passthrough entries: %s", error->message);
}
