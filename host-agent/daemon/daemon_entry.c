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
#include <ccid_passthrough.h>
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
	ccid_passthrough *pt;        /* a passthrough entry's real device */
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
	gboolean reader_exclusive;   /* a host application holds it */
	char *reader_atr;
	char *reader_reason;
	char *card_atr;              /* an emulated card's ATR, or NULL */
	GPtrArray *sessions;         /* struct session, attach order */
	guint next_dev;
	/* A passthrough entry: the USB reader itself (daemon_usb.h). */
	gboolean passthrough;
	char *usb_selector;          /* "BUS-ADDR" while plugged in */
	char *usb_reason;            /* why it cannot be passed through now */
	GArray *host_holders;        /* struct daemon_usb_holder */
	/* The other entry of the same physical reader (shared <->
	 * passthrough): their sessions exclude each other. */
	daemon_entry *peer;
	char *peer_reason;           /* the last reason naming the peer's VM */
	guint pin_refusals;          /* the PIN guard's, all sessions */
};

static void daemon_entry_set_host_holders(daemon_entry *entry,
					  const GArray *holders);

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
	/* Releases the device (and tells pcscd it is back, if it was told
	 * it left). */
	if (s->pt != NULL)
		ccid_passthrough_free_full(g_steal_pointer(&s->pt),
					   ENTRY_FLUSH_MS);
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
	if (s->pt != NULL ? !ccid_passthrough_attach_fd(s->pt, fd, s->vm_name,
							&err) :
	    !ccid_bridge_attach_fd(s->bridge, fd, s->vm_name, &err)) {
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

/* --- passthrough ----------------------------------------------------------- */

static void on_pt_event(void *user, enum ccid_passthrough_event ev,
			const char *detail)
{
	struct session *s = user;

	if (ev == CCID_PT_EVENT_DETACHED && s->state == SESSION_ACTIVE &&
	    s->peer_closed_idle == 0)
		s->peer_closed_idle = g_idle_add(on_peer_closed_idle, s);
	else if (ev == CCID_PT_EVENT_DEVICE_GONE ||
		 ev == CCID_PT_EVENT_DEVICE_BACK ||
		 ev == CCID_PT_EVENT_CLAIM_LOST)
		g_message("entry '%s', VM '%s': %s%s", s->entry->id,
			  s->vm_name, ev == CCID_PT_EVENT_DEVICE_GONE ?
			  "reader unplugged: " : ev == CCID_PT_EVENT_DEVICE_BACK
			  ? "reader back: " : "reader lost: ", detail);
}

static void on_pt_log(void *user, enum ccid_passthrough_level level,
		      const char *msg)
{
	struct session *s = user;

	if (level <= CCID_PT_LOG_WARNING)
		g_message("entry '%s', VM '%s': %s", s->entry->id, s->vm_name,
			  msg);
	else
		g_debug("entry '%s', VM '%s': %s", s->entry->id, s->vm_name,
			msg);
}

/* Claims the real reader for a passthrough session, taking it from pcscd
 * (ccid_passthrough_options.take_from_pcscd). */
static gboolean session_open_usb(struct session *s, GError **error)
{
	static const struct ccid_passthrough_callbacks cbs = {
		.event = on_pt_event,
		.log = on_pt_log,
	};
	/* The whole device goes to the VM, as the user picked "<model>":
	 * kernel drivers of a composite device's other interfaces (a
	 * YubiKey's HID) are detached for the session and bound again
	 * after it. */
	struct ccid_passthrough_options opts = {
		.take_from_pcscd = TRUE,
		.force = TRUE,
	};
	struct ccid_usb_selector sel;

	if (s->entry->usb_selector == NULL) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_FAILED,
			    "the reader is unplugged");
		return FALSE;
	}
	if (!ccid_usb_selector_parse(s->entry->usb_selector, &sel, error))
		return FALSE;
	s->pt = ccid_passthrough_new(&sel, &opts, &cbs, s, error);
	ccid_usb_selector_clear(&sel);
	return s->pt != NULL;
}

/* Shared and passthrough sessions of one reader exclude each other, and
 * a passthrough entry has one VM; refused with Busy naming the holders. */
static gboolean check_exclusive(daemon_entry *entry, const char *vm,
				GError **error)
{
	daemon_entry *peer = entry->peer;

	if (entry->passthrough && entry->sessions->len > 0) {
		struct session *s = g_ptr_array_index(entry->sessions, 0);

		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_BUSY,
			    "entry '%s' is passed through to VM '%s' (holder: "
			    "%s): a passthrough reader serves one VM; detach "
			    "it there first", entry->id, s->vm_name,
			    s->vm_name);
		return FALSE;
	}
	if (peer != NULL && peer->sessions->len > 0) {
		g_auto(GStrv) vms = daemon_entry_get_holders(peer);
		g_autofree char *names = g_strjoinv(", ", vms);

		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_BUSY,
			    "entry '%s' is the same reader as entry '%s', "
			    "which VM%s %s hold%s (holder%s: %s): shared and "
			    "passthrough use of a reader exclude each other; "
			    "detach '%s' first", entry->id, peer->id,
			    vms[1] != NULL ? "s" : "", names,
			    vms[1] != NULL ? "" : "s",
			    vms[1] != NULL ? "s" : "", names, peer->id);
		return FALSE;
	}
	if (entry->passthrough && entry->usb_reason != NULL) {
		/* Held by a host process: Busy, naming it. */
		g_set_error(error, DAEMON_ERROR, entry->usb_selector != NULL &&
			    entry->host_holders->len > 0 ? DAEMON_ERROR_BUSY :
			    DAEMON_ERROR_FAILED, "cannot attach entry '%s' to "
			    "VM '%s': %s", entry->id, vm, entry->usb_reason);
		return FALSE;
	}
	return TRUE;
}

/* The session's PIN guard kept the card's last try from its VM: counted
 * for the entry (the property) and told as an event of its own. */
static void on_pin_refused(void *user, unsigned index, const char *command,
			   guint8 reference)
{
	struct session *s = user;
	daemon_entry *e = s->entry;

	e->pin_refusals++;
	if (e->cbs.pin_guard_refused != NULL)
		e->cbs.pin_guard_refused(e->user, e, s->vm_name, command,
					 reference);
	changed(e);
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

	if (e->passthrough)
		return session_open_usb(s, error);
	ccid_config_init(&cfg);
	cfg.n_slots = 1;
	cfg.max_busy_slots = 1;
	s->bridge = ccid_bridge_new(&cfg, &cbs, s, error);
	if (s->bridge == NULL)
		return FALSE;
	s->cards = agent_cardset_new(ccid_bridge_get_dev(s->bridge), NULL);
	agent_cardset_set_pin_refused_handler(s->cards, on_pin_refused, s);
	if (agent_cardset_add(s->cards, 0, &e->spec, error) == NULL) {
		g_prefix_error(error, "the %s card: ", agent_card_kind_name(
				       e->spec.kind));
		return FALSE;
	}
	/* The ATR the emulated card presents, for the Atr property. */
	{
		g_autofree char *atr = agent_cardset_atr_hex(s->cards, 0);

		if (atr != NULL && g_strcmp0(atr, e->card_atr) != 0) {
			g_free(e->card_atr);
			e->card_atr = g_steal_pointer(&atr);
		}
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
	if (!check_exclusive(entry, name, error))
		return FALSE;
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
			    "its QMP socket and the daemon finds it at once; "
			    "to attach as soon as it runs, use "
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
		g_set_error(error, DAEMON_ERROR, g_error_matches(why,
			    CCID_USB_ERROR, CCID_USB_ERROR_BUSY) ?
			    DAEMON_ERROR_BUSY : DAEMON_ERROR_FAILED,
			    "cannot attach entry '%s' to VM '%s': %s",
			    entry->id, name, why->message);
		/* A card in a host reader has the reader's state; other
		 * cards are unavailable until an attach works again. */
		if (!entry->has_reader && !entry->passthrough) {
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

	if (entry->passthrough) {
		g_set_error(error, DAEMON_ERROR, DAEMON_ERROR_NOT_SUPPORTED,
			    "entry '%s' is a real reader passed through: its "
			    "card moves with the real card", entry->id);
		return FALSE;
	}
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
	/* Kinds with a fixed ATR know it before any card exists; a virtual
	 * card's is learnt at the first attach. */
	if (agent_card_kind_get(e->spec.kind)->atr_hex != NULL)
		e->card_atr = agent_card_kind_get(e->spec.kind)->atr_hex(NULL);
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
	if (entry->peer != NULL)
		entry->peer->peer = NULL;
	g_free(entry->usb_selector);
	g_free(entry->usb_reason);
	g_free(entry->peer_reason);
	daemon_entry_set_host_holders(entry, NULL);
	if (entry->host_holders != NULL)
		g_array_unref(entry->host_holders);
	agent_card_spec_clear(&entry->spec);
	g_free(entry->reason);
	g_free(entry->reader_atr);
	g_free(entry->card_atr);
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
	if (entry->passthrough)
		return "passthrough";
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
	if (!connected)
		entry->reader_exclusive = FALSE;
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

void daemon_entry_set_reader_exclusive(daemon_entry *entry,
				       gboolean exclusive)
{
	exclusive = exclusive && entry->has_reader && entry->reader_connected;
	if (entry->reader_exclusive == exclusive)
		return;
	entry->reader_exclusive = exclusive;
	changed(entry);
}

const char *daemon_entry_get_card(const daemon_entry *entry)
{
	if (entry->passthrough)
		return "usb";
	return agent_card_kind_name(entry->spec.kind);
}

/* The other entry of this reader passes it through to a VM. */
static gboolean passed_through(const daemon_entry *entry)
{
	return !entry->passthrough && entry->peer != NULL &&
	       entry->peer->sessions->len > 0;
}

const char *daemon_entry_get_state(const daemon_entry *entry)
{
	if (entry->reason != NULL)
		return "unavailable";
	/* Held by us, the reader is fine whatever else was said of it. */
	if (entry->passthrough && entry->usb_reason != NULL &&
	    entry->sessions->len == 0)
		return "unavailable";
	if (passed_through(entry))
		return "unavailable";
	if (entry->passthrough)
		/* The card as pcscd last saw it (it cannot while a VM has
		 * the reader).  Never reported (no pcscd, or a reader it does
		 * not drive): not known, so no card is claimed, and the
		 * reason says it is unknown. */
		return entry->has_reader && entry->reader_present ?
		       "card-present" : "no-card";
	if (entry->has_reader)
		return !entry->reader_connected || entry->reader_exclusive ?
		       "unavailable" :
		       entry->reader_present ? "card-present" : "no-card";
	return entry->inserted ? "card-present" : "no-card";
}

/* Who holds it is pcscd's to know (a client of it), not ours. */
#define READER_HELD_EXCLUSIVELY "a host application holds the card " \
	"exclusively (PC/SC SCARD_SHARE_EXCLUSIVE): the VMs get it when that " \
	"application lets go of it"

/* The reason of a passthrough entry whose card nobody reported: the
 * daemon does not open a reader it may pass through to look inside. */
#define PASSTHROUGH_CARD_UNKNOWN "card state unknown: pcscd has not " \
	"reported this reader (pcscd is not running, or does not drive it); " \
	"a VM it is passed through to sees the card if there is one"

const char *daemon_entry_get_reason(const daemon_entry *entry)
{
	if (entry->reason != NULL)
		return entry->reason;
	if (entry->passthrough) {
		if (entry->usb_reason != NULL && entry->sessions->len == 0)
			return entry->usb_reason;
		return entry->has_reader ? "" : PASSTHROUGH_CARD_UNKNOWN;
	}
	if (passed_through(entry)) {
		struct session *s = g_ptr_array_index(entry->peer->sessions, 0);
		daemon_entry *e = (daemon_entry *)entry;

		g_autofree char *why = g_strdup_printf("the reader is passed "
			"through to VM '%s' (entry '%s')", s->vm_name,
			entry->peer->id);

		/* Kept with the entry (the caller does not free it), and
		 * replaced only when it changes, so that an earlier answer
		 * stays valid. */
		if (g_strcmp0(e->peer_reason, why) != 0) {
			g_free(e->peer_reason);
			e->peer_reason = g_steal_pointer(&why);
		}
		return e->peer_reason;
	}
	if (entry->reader_reason != NULL)
		return entry->reader_reason;
	return entry->reader_exclusive ? READER_HELD_EXCLUSIVELY : "";
}

const char *daemon_entry_get_atr(const daemon_entry *entry)
{
	/* A card in a host reader: what pcscd shows; an emulated card: what
	 * it presents (a virtual card's from its first attach on). */
	if (entry->has_reader)
		return entry->reader_atr != NULL ? entry->reader_atr : "";
	return entry->card_atr != NULL ? entry->card_atr : "";
}

gboolean daemon_entry_get_single_session(const daemon_entry *entry)
{
	return entry->single_session;
}

guint daemon_entry_get_pin_guard_refusals(const daemon_entry *entry)
{
	return entry->pin_refusals;
}

guint daemon_entry_get_idle_ms(const daemon_entry *entry)
{
	return entry->spec.kind == AGENT_CARD_PCSC ? entry->spec.idle_ms : 0;
}

guint daemon_entry_get_lock_timeout_ms(const daemon_entry *entry)
{
	return entry->spec.kind == AGENT_CARD_PCSC ?
	       entry->spec.lock_timeout_ms : 0;
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

/* --- passthrough entries ------------------------------------------------------ */

daemon_entry *daemon_entry_new_passthrough(const char *id, const char *label,
					   const struct daemon_entry_callbacks *cbs,
					   void *user)
{
	struct agent_card_spec none;
	daemon_entry *e;

	memset(&none, 0, sizeof(none));
	e = daemon_entry_new(id, label, &none, FALSE, cbs, user);
	e->passthrough = TRUE;
	e->host_holders = g_array_new(FALSE, FALSE,
				      sizeof(struct daemon_usb_holder));
	return e;
}

gboolean daemon_entry_is_passthrough(const daemon_entry *entry)
{
	return entry->passthrough;
}

void daemon_entry_set_peer(daemon_entry *a, daemon_entry *b)
{
	if (a->peer == b)
		return;
	if (a->peer != NULL)
		a->peer->peer = NULL;
	if (b != NULL && b->peer != NULL)
		b->peer->peer = NULL;
	a->peer = b;
	if (b != NULL)
		b->peer = a;
}

daemon_entry *daemon_entry_get_peer(const daemon_entry *entry)
{
	return entry->peer;
}

static void daemon_entry_set_host_holders(daemon_entry *entry,
					  const GArray *holders)
{
	if (entry->host_holders == NULL)
		return;
	for (guint i = 0; i < entry->host_holders->len; i++)
		g_free(g_array_index(entry->host_holders,
				     struct daemon_usb_holder, i).name);
	g_array_set_size(entry->host_holders, 0);
	for (guint i = 0; holders != NULL && i < holders->len; i++) {
		struct daemon_usb_holder h = g_array_index(holders,
			struct daemon_usb_holder, i);

		h.name = g_strdup(h.name);
		g_array_append_val(entry->host_holders, h);
	}
}

const GArray *daemon_entry_get_host_holders(const daemon_entry *entry)
{
	return entry->host_holders;
}

void daemon_entry_set_usb(daemon_entry *entry, const char *selector,
			  const GArray *holders)
{
	g_autofree char *who = NULL;
	gboolean only_pcscd = holders != NULL && holders->len > 0;

	g_free(entry->usb_selector);
	entry->usb_selector = g_strdup(selector);
	daemon_entry_set_host_holders(entry, holders);
	for (guint i = 0; holders != NULL && i < holders->len; i++)
		if (strcmp(g_array_index(holders, struct daemon_usb_holder,
					 i).name, "pcscd") != 0)
			only_pcscd = FALSE;
	who = daemon_usb_describe_holders(holders);
	g_clear_pointer(&entry->usb_reason, g_free);
	/* A kernel driver is no obstacle: the session detaches it and
	 * binds it again after (ccid_passthrough_options.force). */
	if (selector == NULL)
		entry->usb_reason = g_strdup("the reader is unplugged");
	else if (*who != '\0' && !only_pcscd)
		/* pcscd alone is no obstacle: the reader is taken from it
		 * for the time of the passthrough. */
		entry->usb_reason = g_strdup_printf("held by host process %s: "
			"stop it first", who);
	changed(entry);
}
