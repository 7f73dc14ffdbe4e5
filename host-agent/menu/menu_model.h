/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one model behind ccid-menu's tray menu and window: the daemon's
 * entries and VMs (org.ccidemu.Agent1 over its object manager), turned
 * into one section per VM with one item per entry (menu_states.h).
 *
 * It follows the daemon through signals only: PropertiesChanged,
 * InterfacesAdded/Removed, the Manager's session signals and the bus
 * name's owner (the daemon going away and coming back).  "changed" is
 * emitted after every change; "message" carries what the user should be
 * told (a notification): id, title, body.
 */
#pragma once

#include "menu_states.h"

#include <glib-object.h>

#define CCID_MENU_TYPE_MODEL (ccid_menu_model_get_type())
G_DECLARE_FINAL_TYPE(CcidMenuModel, ccid_menu_model, CCID_MENU, MODEL,
		     GObject)

/* Connects to the session bus; NULL with an error when there is none.
 * The daemon need not be running. */
CcidMenuModel *ccid_menu_model_new(GError **error);

gboolean ccid_menu_model_daemon_running(CcidMenuModel *model);
/* One sentence for the top of the menu when there is nothing to choose
 * (daemon not running, no VMs), else NULL. */
const char *ccid_menu_model_status(CcidMenuModel *model);
/* MenuSectionInfo, VMs by name, entries by id; valid until the next
 * "changed". */
GPtrArray *ccid_menu_model_sections(CcidMenuModel *model);

/* The user chose ENTRY in VM's submenu: connect it, or disconnect it
 * when it is connected.  The outcome arrives as "changed" and "message". */
void ccid_menu_model_choose(CcidMenuModel *model, const char *entry_id,
			    const char *vm);
