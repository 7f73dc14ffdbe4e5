/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What both views (tray and window) do when the model changes: widgets
 * kept by key, and the ones whose key the model no longer has go.
 */
#ifndef CCID_MENU_WIDGETS_H
#define CCID_MENU_WIDGETS_H

#include <gtk/gtk.h>

/* Destroys and forgets every widget of @widgets (key -> GtkWidget) whose
 * key is not in the set @seen. */
static inline void menu_widgets_prune(GHashTable *widgets, GHashTable *seen)
{
	GHashTableIter iter;
	gpointer key, value;

	g_hash_table_iter_init(&iter, widgets);
	while (g_hash_table_iter_next(&iter, &key, &value))
		if (!g_hash_table_contains(seen, key)) {
			gtk_widget_destroy(value);
			g_hash_table_iter_remove(&iter);
		}
}

#endif /* CCID_MENU_WIDGETS_H */
