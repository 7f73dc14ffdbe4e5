/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An entry: one thing a user can give to VMs (today: a virtual card), its
 * state, and its sessions.  A session is the entry attached to one VM:
 * its own device model (ccid_bridge) and card, served over usbredir on a
 * socket hot-plugged into the VM (daemon_vm.h).
 *
 * Exclusivity is decided when Attach is called, before anything
 * asynchronous happens, so of many concurrent attaches to a
 * single-session entry exactly one wins; the others get
 * DAEMON_ERROR_BUSY naming the holder.
 */
#ifndef CCID_DAEMON_ENTRY_H
#define CCID_DAEMON_ENTRY_H

#include "agent_card_kinds.h"
#include "daemon_usb.h"
#include "daemon_vm.h"

#include <glib.h>

G_BEGIN_DECLS

typedef struct daemon_entry daemon_entry;

struct daemon_entry_callbacks {
	/* State, holders, reason or ATR changed. */
	void (*changed)(void *user, daemon_entry *entry);
	/* A session started, ended (@reason: "detached", "peer-closed",
	 * "vm-shutdown", "vm-gone") or failed to start (@reason: why). */
	void (*session_started)(void *user, daemon_entry *entry,
				const char *vm);
	void (*session_ended)(void *user, daemon_entry *entry, const char *vm,
			      const char *reason);
	void (*session_failed)(void *user, daemon_entry *entry, const char *vm,
			       const char *reason);
	/* The PIN-retry guard of @vm's session refused a PIN command
	 * (@command: "VERIFY", ...) that could have spent the last try of
	 * PIN @reference: the card keeps it for the host user.  changed()
	 * follows (the count). */
	void (*pin_guard_refused)(void *user, daemon_entry *entry,
				  const char *vm, const char *command,
				  guint8 reference);
};

/* @spec is taken over (cleared in the caller's copy). */
daemon_entry *daemon_entry_new(const char *id, const char *label,
			       struct agent_card_spec *spec,
			       gboolean single_session,
			       const struct daemon_entry_callbacks *cbs,
			       void *user);
/* Accepts NULL.  Sessions end without unplugging (the daemon exits). */
void daemon_entry_free(daemon_entry *entry);

const char *daemon_entry_get_id(const daemon_entry *entry);
const char *daemon_entry_get_label(const daemon_entry *entry);
const char *daemon_entry_get_mode(const daemon_entry *entry);
const char *daemon_entry_get_card(const daemon_entry *entry);
/* "card-present", "no-card" or "unavailable". */
const char *daemon_entry_get_state(const daemon_entry *entry);
const char *daemon_entry_get_reason(const daemon_entry *entry);
const char *daemon_entry_get_atr(const daemon_entry *entry);
gboolean daemon_entry_get_single_session(const daemon_entry *entry);
/* A card in a host reader (pcsc): its transaction policy; else 0. */
guint daemon_entry_get_idle_ms(const daemon_entry *entry);
guint daemon_entry_get_lock_timeout_ms(const daemon_entry *entry);
/* PIN commands the PIN-retry guard refused in this entry's sessions
 * since the daemon started. */
guint daemon_entry_get_pin_guard_refusals(const daemon_entry *entry);
/* VM names, in attach order (g_strfreev). */
char **daemon_entry_get_holders(const daemon_entry *entry);
gboolean daemon_entry_is_attached_to(const daemon_entry *entry,
				     const char *vm);

typedef void (*daemon_entry_done_fn)(void *user, const GError *error);

/* Refusals known at once (busy, attached already, VM gone) return FALSE
 * with @error and @done is not called; otherwise @done runs when the
 * device is in the VM or could not be put there. */
gboolean daemon_entry_attach(daemon_entry *entry, daemon_vm *vm,
			     daemon_entry_done_fn done, void *user,
			     GError **error);
gboolean daemon_entry_detach(daemon_entry *entry, const char *vm,
			     daemon_entry_done_fn done, void *user,
			     GError **error);
/* The VM went away: its sessions end now with @reason. */
void daemon_entry_vm_gone(daemon_entry *entry, const char *vm,
			  const char *reason);
/* The reader name or pattern of a pcsc entry, else NULL. */
const char *daemon_entry_get_reader_pattern(const daemon_entry *entry);
/* For an entry whose card sits in a host reader (pcsc): what pcscd shows
 * of that reader now (@atr: upper-case hex, may be NULL). */
void daemon_entry_set_reader(daemon_entry *entry, gboolean connected,
			     gboolean present, const char *atr);
/* ...and whether a host application holds that reader's card exclusively
 * (the entry is then unavailable, saying so; a disconnected reader is
 * never held). */
void daemon_entry_set_reader_exclusive(daemon_entry *entry,
				       gboolean exclusive);
/* Pushes the card in / pulls it out, in every VM and for later ones. */
gboolean daemon_entry_set_inserted(daemon_entry *entry, gboolean inserted,
				   daemon_entry_done_fn done, void *user,
				   GError **error);

/* --- passthrough entries: a real USB reader handed whole to one VM ---- */

/* Mode "passthrough", card "usb": attach claims the reader (taking it
 * from pcscd when pcscd alone holds it) and serves it raw with
 * usbredirhost (ccid_passthrough.h); detach releases it. */
daemon_entry *daemon_entry_new_passthrough(const char *id, const char *label,
					   const struct daemon_entry_callbacks *cbs,
					   void *user);
gboolean daemon_entry_is_passthrough(const daemon_entry *entry);
/* Where the reader is now (@selector "BUS-ADDR", NULL: unplugged) and
 * which host processes hold it (struct daemon_usb_holder, copied; may be
 * NULL).  pcscd alone is no obstacle (the session takes the reader from
 * it), nor is a kernel driver (detached for the session and bound again
 * after it); any other process makes the entry unavailable. */
void daemon_entry_set_usb(daemon_entry *entry, const char *selector,
			  const GArray *holders);
/* Host processes holding the reader (struct daemon_usb_holder); NULL for
 * other entries. */
const GArray *daemon_entry_get_host_holders(const daemon_entry *entry);
/* Links the two entries of one reader (or unlinks @a with NULL): a
 * session of one makes an Attach of the other Busy, naming the VMs. */
void daemon_entry_set_peer(daemon_entry *a, daemon_entry *b);
daemon_entry *daemon_entry_get_peer(const daemon_entry *entry);

G_END_DECLS

#endif /* CCID_DAEMON_ENTRY_H */
