/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `ccid-menu --window`: the model (menu_model.h) as an ordinary window,
 * for desktops without a tray and for tests: one frame per VM, one check
 * button per entry with its state icon, a status line and the last
 * message.  Widgets are updated in place so assistive technologies see
 * state changes, not new objects.
 */
#pragma once

#include "menu_model.h"

#include <gtk/gtk.h>

GtkWidget *menu_window_new(GtkApplication *app, CcidMenuModel *model);
/* Shows TITLE and BODY in the window's message line. */
void menu_window_show_message(GtkWidget *window, const char *title,
			      const char *body);
