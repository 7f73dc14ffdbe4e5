/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Entries and their sessions (see daemon_entry.h).
 */
#include "daemon_entry.h"

#include "agent_cards.h"
#include "agent_cardset.h"
#include "daemon_errors.h"

#include <ccid-emu/ccid_emu.h>
#include <ccid_bridge.h>
#include <string.h>
#include <unistd.h>

/* How long a guest may take to let a device go after device_del. */
#define ENTRY_UNPLUG_TIMEOUT_MS 5000u
/* How long the device may take to tell QEMU it is gone at shutdown. */
#define ENTRY_FLUSH_MS 200u

enum session_state { SESSION_ATTACHING, SESSION_ACTIVE, SESSION_DETACHING };

struct session {
	daemon_entry *entry;
	daemon_vm *vm;
	char *vm_name;
	char *dev_id;                /* QEMU id of the usb-redir and chardev */
	enum session_state state;
	ccid_bridge *bridge;
	agent_cardset *cards;
	daemon_entry_done_fn done;   /* the Attach or Detach waiting */
	void *done_user;
	char *end_reason;            /* why a detach started on its own */
	guint peer_closed_idle;
};

struct daemon_entry {
	char *id;
	char *label;
	struct agent_card_spec spec;
	gboolean single_session;
	struct daemon_entry_callbacks cbs;
	void *user;
	gboolean inserted;           /* the user's wish for the card */
	char *reason;                /* why unavailable, or NULL */
	/* A card in a host reader (pcsc): what pcscd shows of the reader. */
	gboolean has_reader;
	gboolean reader_connected;
	gboolean reader_present;
	char *reader_atr;
	char *reader_reason;
	GPtrArray *sessions;         /* struct session, attach order */
	guint next_dev;
};

static void changed(daemon_entry *e)
{
	if (e->cbs.changed != NULL)
		e->cbs.changed(e->user, e);
}

static struct session *find_session(const daemon_entry *e, const char *vm)
{
	for (guint i = 0; i < e->sessions->len; i++) {
		struct session *s = g_ptr_array_index(e->sessions, i);

		if (g_strcmp0(s->vm_name, vm) == 0)
			return s;
	}
	return NULL;
}

/* Off the entry's list and freed; the device model goes first (it
 * detaches the card), then the card. */
static void session_free(struct session *s)
{
	/* The bridge reports its own detach below: not a peer leaving. */
	s->state = SESSION_DETACHING;
	if (s->bridge != NULL && ccid_bridge_is_attached(s->bridge))
		ccid_bridge_detach(s->bridge, ENTRY_FLUSH_MS);
	g_clear_pointer(&s->bridge, ccid_bridge_free);
	g_clear_pointer(&s->cards, agent_cardset_free);
	if (s->peer_closed_idle != 0)
		g_source_remove(s->peer_closed_idle);
	g_free(s->vm_name);
	g_free(s->dev_id);
	g_free(s->end_reason);
	g_free(s);
}

static void session_remove(struct session *s)
{
	g_ptr_array_remove(s->entry->sessions, s);
}

static void finish_call(struct session *s, const GError *error)
{
	daemon_entry_done_fn done = s->done;

	s->done = NULL;
	if (done != NULL)
		done(s->done_user, error);
}

/* The session is over: the VM has no device any more, or no VM. */
static void session_end(struct session *s, const char *reason)
{
	daemon_entry *e = s->entry;
	g_autofree char *vm = g_strdup(s->vm_name);
	g_autofree char *why = g_strdup(reason);

	finish_call(s, NULL);
	session_remove(s);
	session_free(s);
	changed(e);
	if (e->cbs.session_ended != NULL)
		e->cbs.session_ended(e->user, e, vm, why);
}

static void session_fail(struct session *s, const GError *error)
{
	daemon_entry *e = s->entry;
	g_autofree char *vm = g_strdup(s->vm_name);
	g_autoptr(GError) err = g_error_new(DAEMON_ERROR, DAEMON_ERROR_FAILED,
		"cannot attach entry '%s' to VM '%s': %s", e->id, s->vm_name,
		error->message);

	finish_call(s, err);
	session_remove(s);
	session_free(s);
	changed(e);
	if (e->cbs.session_failed != NULL)
		e->cbs.session_failed(e->user, e, vm, err->message);
}

/* --- detach --------------------------------------------------------------- */

static void on_unplugged(void *user, const GError *error)
{
	struct session *s = user;

	if (error != NULL) {
		g_autoptr(GError) err = g_error_new(DAEMON_ERROR,
			DAEMON_ERROR_FAILED, "cannot detach entry '%s' from "
			"VM '%s': %s", s->entry->id, s->vm_name,
			error->message);

		s->state = SESSION_ACTIVE;
		finish_call(s, err);
		return;
	}
	session_end(s, s->end_reason != NULL ? s->end_reason : "detached");
}

static void session_start_detach(struct session *s, const char *reason)
{
	s->state = SESSION_DETACHING;
	g_free(s->end_reason);
	s->end_reason = g_strdup(reason);
	daemon_vm_unplug_redir(s->vm, s->dev_id, ENTRY_UNPLUG_TIMEOUT_MS,
			       on_unplugged, s);
}

gboolean daemon_entry_detach(daemon_entry *entry, const char *vm,
			     daemon_entry_done_fn done, void *user,
			     GError **error)
{
	struct session *s = find_session(entry, vm);

	if (s == NULL) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_NOT_FOUND,
			    "entry '%s' is not attached to VM '%s' (ccid-agent "
			    "list shows what is attached where)", entry->id,
			    vm);
		return FALSE;
	}
	if (s->state != SESSION_ACTIVE) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_BUSY,
			    "entry '%s' is being %s VM '%s' right now: try "
			    "again when that is done", entry->id,
			    s->state == SESSION_ATTACHING ? "attached to" :
			    "detached from", vm);
		return FALSE;
	}
	s->done = done;
	s->done_user = user;
	session_start_detach(s, "detached");
	return TRUE;
}

/* QEMU closed the usbredir socket while the VM still runs (or it is on
 * its way out): take the device out of the VM too. */
static gboolean on_peer_closed_idle(gpointer data)
{
	struct session *s = data;

	s->peer_closed_idle = 0;
	if (s->state == SESSION_ACTIVE)
		session_start_detach(s, daemon_vm_is_gone(s->vm) ?
				     "vm-gone" : "peer-closed");
	return G_SOURCE_REMOVE;
}

void daemon_entry_vm_gone(daemon_entry *entry, const char *vm,
			  const char *reason)
{
	struct session *s = find_session(entry, vm);

	/* Attaching and detaching sessions are finished by the VM's own
	 * operations, which fail or succeed when it goes. */
	if (s != NULL && s->state == SESSION_ACTIVE)
		session_end(s, reason);
}

/* --- attach --------------------------------------------------------------- */

static void on_bridge_event(void *user, enum ccid_bridge_event ev,
			    const char *peer)
{
	struct session *s = user;

	/* Never end the session inside the bridge's own callback. */
	if (ev == CCID_BRIDGE_EVENT_DETACHED && s->state == SESSION_ACTIVE &&
	    s->peer_closed_idle == 0)
		s->peer_closed_idle = g_idle_add(on_peer_closed_idle, s);
}

static void on_bridge_log(void *user, enum ccid_log_level level,
			  const char *msg)
{
	struct session *s = user;

	if (level <= CCID_LOG_WARNING)
		g_message("entry '%s', VM '%s': %s", s->entry->id, s->vm_name,
			  msg);
	else
		g_debug("entry '%s', VM '%s': %s", s->entry->id, s->vm_name,
			msg);
}

static void on_plugged(void *user, int fd, const GError *error)
{
	struct session *s = user;
	g_autoptr(GError) err = NULL;

	if (error != NULL) {
		session_fail(s, error);
		return;
	}
	if (!ccid_bridge_attach_fd(s->bridge, fd, s->vm_name, &err)) {
		session_fail(s, err);
		return;
	}
	s->state = SESSION_ACTIVE;
	finish_call(s, NULL);
	if (s->entry->cbs.session_started != NULL)
		s->entry->cbs.session_started(s->entry->user, s->entry,
					      s->vm_name);
}

static void on_card_moved_quietly(void *user, gboolean moved,
				  const GError *error)
{
	if (error != NULL)
		g_message("%s", error->message);
}

/* The device model and card of a new session. */
static gboolean session_make_device(struct session *s, GError **error)
{
	static const struct ccid_bridge_callbacks cbs = {
		.event = on_bridge_event,
		.log = on_bridge_log,
	};
	daemon_entry *e = s->entry;
	struct ccid_config cfg;

	ccid_config_init(&cfg);
	cfg.n_slots = 1;
	cfg.max_busy_slots = 1;
	s->bridge = ccid_bridge_new(&cfg, &cbs, s, error);
	if (s->bridge == NULL)
		return FALSE;
	s->cards = agent_cardset_new(ccid_bridge_get_dev(s->bridge), NULL);
	if (agent_cardset_add(s->cards, 0, &e->spec, error) == NULL) {
		g_prefix_error(error, "the %s card: ", agent_card_kind_name(
				       e->spec.kind));
		return FALSE;
	}
	/* A card the user pulled out stays out in new VMs too. */
	if (!e->inserted)
		agent_cardset_set_inserted(s->cards, 0, FALSE,
					   on_card_moved_quietly, NULL);
	return TRUE;
}

gboolean daemon_entry_attach(daemon_entry *entry, daemon_vm *vm,
			     daemon_entry_done_fn done, void *user,
			     GError **error)
{
	const char *name = daemon_vm_get_name(vm);
	struct session *s = find_session(entry, name);
	g_autoptr(GError) why = NULL;

	if (s != NULL) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_BUSY,
			    "entry '%s' is %s VM '%s' already (holder: %s)",
			    entry->id, s->state == SESSION_ACTIVE ?
			    "attached to" : s->state == SESSION_ATTACHING ?
			    "being attached to" : "being detached from",
			    name, name);
		return FALSE;
	}
	if (entry->single_session && entry->sessions->len > 0) {
		s = g_ptr_array_index(entry->sessions, 0);
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_BUSY,
			    "entry '%s' is single-session and held by VM '%s' "
			    "(holder: %s): detach it there first", entry->id,
			    s->vm_name, s->vm_name);
		return FALSE;
	}
	if (daemon_vm_is_gone(vm) ||
	    g_strcmp0(daemon_vm_get_state(vm), "connecting") == 0) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_FAILED,
			    "VM '%s' is not running (%s): start it again on "
			    "its QMP socket and the daemon finds it within "
			    "2 s; to attach as soon as it runs, use "
			    "'ccid-agent qemu-args %s --vm NAME' for a new VM",
			    name, daemon_vm_get_state(vm), entry->id);
		return FALSE;
	}
	s = g_new0(struct session, 1);
	s->entry = entry;
	s->vm = vm;
	s->vm_name = g_strdup(name);
	/* The prefix is how daemon_vm.c recognises devices of an earlier
	 * daemon. */
	s->dev_id = g_strdup_printf("ccidemu-%u-%s", ++entry->next_dev,
				    entry->id);
	g_strcanon(s->dev_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"
			      "UVWXYZ0123456789-_.", '_');
	s->state = SESSION_ATTACHING;
	if (!session_make_device(s, &why)) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_FAILED,
			    "cannot attach entry '%s' to VM '%s': %s",
			    entry->id, name, why->message);
		/* A card in a host reader has the reader's state; other
		 * cards are unavailable until an attach works again. */
		if (!entry->has_reader) {
			g_free(entry->reason);
			entry->reason = g_strdup(why->message);
		}
		session_free(s);
		changed(entry);
		return FALSE;
	}
	if (entry->reason != NULL) {
		g_clear_pointer(&entry->reason, g_free);
	}
	s->done = done;
	s->done_user = user;
	g_ptr_array_add(entry->sessions, s);
	changed(entry);
	daemon_vm_plug_redir(vm, s->dev_id, on_plugged, s);
	return TRUE;
}

/* --- card insert/remove --------------------------------------------------- */

struct move {
	daemon_entry *entry;
	guint waiting;
	GError *first_error;
	daemon_entry_done_fn done;
	void *user;
};

static void move_finish(struct move *m)
{
	if (--m->waiting > 0)
		return;
	m->done(m->user, m->first_error);
	g_clear_error(&m->first_error);
	g_free(m);
}

static void on_card_moved(void *user, gboolean moved, const GError *error)
{
	struct move *m = user;

	if (error != NULL && m->first_error == NULL)
		m->first_error = g_error_new(DAEMON_ERROR, DAEMON_ERROR_FAILED,
			"entry '%s': %s", m->entry->id, error->message);
	move_finish(m);
}

gboolean daemon_entry_set_inserted(daemon_entry *entry, gboolean inserted,
				   daemon_entry_done_fn done, void *user,
				   GError **error)
{
	const struct agent_card_kind_info *k = agent_card_kind_get(
		entry->spec.kind);
	struct move *m;

	if (k->set_inserted == NULL) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_NOT_SUPPORTED,
			    "entry '%s' %s: %s%s", entry->id, k->moved_what,
			    inserted ? "insert" : "remove", k->moved_how);
		return FALSE;
	}
	entry->inserted = inserted;
	m = g_new0(struct move, 1);
	m->entry = entry;
	m->done = done;
	m->user = user;
	m->waiting = 1;    /* this function's own reference */
	for (guint i = 0; i < entry->sessions->len; i++) {
		struct session *s = g_ptr_array_index(entry->sessions, i);

		if (s->cards == NULL)
			continue;
		m->waiting++;
		agent_cardset_set_inserted(s->cards, 0, inserted,
					   on_card_moved, m);
	}
	changed(entry);
	move_finish(m);
	return TRUE;
}

/* --- the entry ------------------------------------------------------------ */

daemon_entry *daemon_entry_new(const char *id, const char *label,
			       struct agent_card_spec *spec,
			       gboolean single_session,
			       const struct daemon_entry_callbacks *cbs,
			       void *user)
{
	daemon_entry *e = g_new0(daemon_entry, 1);

	e->id = g_strdup(id);
	e->label = g_strdup(label);
	e->spec = *spec;
	memset(spec, 0, sizeof(*spec));
	e->single_session = single_session;
	if (cbs != NULL)
		e->cbs = *cbs;
	e->user = user;
	e->inserted = TRUE;
	e->sessions = g_ptr_array_new();
	return e;
}

void daemon_entry_free(daemon_entry *entry)
{
	if (entry == NULL)
		return;
	while (entry->sessions->len > 0) {
		struct session *s = g_ptr_array_index(entry->sessions,
						       entry->sessions->len - 1);
		g_autoptr(GError) error = g_error_new(DAEMON_ERROR,
			DAEMON_ERROR_FAILED, "the daemon is shutting down");

		finish_call(s, error);
		session_remove(s);
		session_free(s);
	}
	g_ptr_array_unref(entry->sessions);
	agent_card_spec_clear(&entry->spec);
	g_free(entry->reason);
	g_free(entry->reader_atr);
	g_free(entry->reader_reason);
	g_free(entry->id);
	g_free(entry->label);
	g_free(entry);
}

const char *daemon_entry_get_id(const daemon_entry *entry)
{
	return entry->id;
}

const char *daemon_entry_get_label(const daemon_entry *entry)
{
	return entry->label;
}

const char *daemon_entry_get_mode(const daemon_entry *entry)
{
	/* Every VM gets its own device model; a pcsc card shares the real
	 * card with the host's applications and the other VMs. */
	return entry->spec.kind == AGENT_CARD_PCSC ? "shared" : "virtual";
}

const char *daemon_entry_get_reader_pattern(const daemon_entry *entry)
{
	return entry->spec.kind == AGENT_CARD_PCSC ? entry->spec.reader : NULL;
}

void daemon_entry_set_reader(daemon_entry *entry, gboolean connected,
			     gboolean present, const char *atr)
{
	g_autofree char *old_atr = entry->reader_atr;

	if (entry->has_reader && entry->reader_connected == connected &&
	    entry->reader_present == present && g_strcmp0(old_atr, atr) == 0) {
		entry->reader_atr = g_steal_pointer(&old_atr);
		return;
	}
	entry->has_reader = TRUE;
	entry->reader_connected = connected;
	entry->reader_present = connected && present;
	entry->reader_atr = g_strdup(entry->reader_present && atr != NULL ?
				     atr : "");
	g_free(entry->reader_reason);
	entry->reader_reason = connected ? NULL : g_strdup_printf(
		"reader '%s' is not connected (unplugged, or pcscd is not "
		"running)", entry->spec.reader != NULL ? entry->spec.reader :
		"");
	changed(entry);
}

const char *daemon_entry_get_card(const daemon_entry *entry)
{
	return agent_card_kind_name(entry->spec.kind);
}

const char *daemon_entry_get_state(const daemon_entry *entry)
{
	if (entry->reason != NULL)
		return "unavailable";
	if (entry->has_reader)
		return !entry->reader_connected ? "unavailable" :
		       entry->reader_present ? "card-present" : "no-card";
	return entry->inserted ? "card-present" : "no-card";
}

const char *daemon_entry_get_reason(const daemon_entry *entry)
{
	if (entry->reason != NULL)
		return entry->reason;
	return entry->reader_reason != NULL ? entry->reader_reason : "";
}

const char *daemon_entry_get_atr(const daemon_entry *entry)
{
	/* Known for a card in a host reader; for emulated cards only once a
	 * guest powers one on, which is not tracked yet. */
	return entry->has_reader && entry->reader_atr != NULL ?
	       entry->reader_atr : "";
}

gboolean daemon_entry_get_single_session(const daemon_entry *entry)
{
	return entry->single_session;
}

char **daemon_entry_get_holders(const daemon_entry *entry)
{
	GStrvBuilder *b = g_strv_builder_new();
	char **v;

	for (guint i = 0; i < entry->sessions->len; i++) {
		struct session *s = g_ptr_array_index(entry->sessions, i);

		g_strv_builder_add(b, s->vm_name);
	}
	v = g_strv_builder_end(b);
	g_strv_builder_unref(b);
	return v;
}

gboolean daemon_entry_is_attached_to(const daemon_entry *entry,
				     const char *vm)
{
	return find_session(entry, vm) != NULL;
}
