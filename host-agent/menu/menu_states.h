/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What ccid-menu shows for one entry in one VM's submenu: the one table of
 * card states (icon, symbolic icon, words) and the texts built from it, so
 * the tray and the window say exactly the same thing.
 */
#pragma once

#include <glib.h>

typedef enum {
	MENU_CARD_PRESENT,
	MENU_CARD_NONE,
	MENU_CARD_UNAVAILABLE,
} MenuCardState;

typedef struct {
	const char *daemon_state;  /* the Entry.State value, or NULL */
	const char *icon;          /* full-colour icon in hicolor */
	const char *symbolic;      /* its -symbolic variant */
	const char *words;         /* for accessible names and tooltips */
} MenuCardStateInfo;

const MenuCardStateInfo *menu_card_state_info(MenuCardState state);
/* The state for an Entry.State string; unknown strings are unavailable. */
MenuCardState menu_card_state_from_daemon(const char *state);

/* One entry as seen from one VM. */
typedef struct {
	char *entry_id;
	char *label;
	char *detail;        /* holder or reason when unavailable, else NULL */
	MenuCardState state;
	gboolean connected;  /* the VM holds this entry */
	gboolean sensitive;  /* choosing it does something */
	gboolean pending;    /* an Attach or Detach of ours is under way */
} MenuItemInfo;

/* One VM's submenu. */
typedef struct {
	char *vm;
	char *vm_state;      /* Vm.State: running, paused, connecting, gone */
	GPtrArray *items;    /* MenuItemInfo */
} MenuSectionInfo;

/* What the daemon says about one entry (its Entry properties). */
typedef struct {
	const char *id;
	const char *label;
	const char *state;              /* Entry.State */
	const char *reason;             /* Entry.Reason */
	const char *const *holders;     /* Entry.Holders, may be NULL */
	gboolean single_session;
} MenuEntryFacts;

/* The entry as VM's submenu shows it.  VM_USABLE: the VM can take a
 * device (running or paused); PENDING: our own Attach or Detach of this
 * entry and VM is under way.  An entry is unavailable in VM when the
 * daemon says so (with its reason) or when it is single-session and
 * another VM holds it ("in use by VM X"); a connected entry can always be
 * disconnected. */
MenuItemInfo *menu_item_from_entry(const MenuEntryFacts *entry,
				   const char *vm, gboolean vm_usable,
				   gboolean pending);
void menu_item_info_free(MenuItemInfo *item);
void menu_section_info_free(MenuSectionInfo *section);

/* "Virtual CAC card (ccid-emu), card present, connected". */
char *menu_item_accessible_name(const MenuItemInfo *item);
/* What the item reads on screen: the label, plus the holder or reason
 * of an unavailable entry, e.g. "Lab card (in use by VM win11)". */
char *menu_item_display_label(const MenuItemInfo *item);
/* "vm1" or "vm1 (paused)". */
char *menu_section_title(const MenuSectionInfo *section);
