/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tray view: a StatusNotifierItem (libayatana-appindicator3) whose
 * menu, exported as com.canonical.dbusmenu, has one submenu per VM and one
 * check item per entry with its state icon (icon-name) and an accessible
 * name that includes the state (accessible-desc).
 */
#pragma once

#include "menu_model.h"

#include <gtk/gtk.h>

typedef struct MenuTray MenuTray;

/* SHOW_WINDOW is called for the "Open window" item. */
MenuTray *menu_tray_new(CcidMenuModel *model, void (*show_window)(void *),
			void *data);
void menu_tray_free(MenuTray *tray);
/* Pops the tray's own menu up where the pointer is, with the first VM's
 * submenu open, or down again: what a tray host shows, for screenshots
 * (SIGUSR1). */
void menu_tray_toggle_popup(MenuTray *tray);
