/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "menu_tray.h"
#include "menu_widgets.h"

#include <libayatana-appindicator/app-indicator.h>
#include <libdbusmenu-gtk/parser.h>
#include <stdio.h>

struct MenuTray {
	CcidMenuModel *model;
	AppIndicator *indicator;
	GtkWidget *menu;
	GtkWidget *status;           /* insensitive line: daemon absent, ... */
	GtkWidget *separator;
	GtkWidget *anchor;           /* where menu_tray_toggle_popup pops up */
	GHashTable *vms;             /* VM name -> its GtkMenuItem */
	gboolean syncing;
	gulong changed_id;
	void (*show_window)(void *);
	void *data;
};

#define ITEM_ENTRY "ccid-menu-entry"
#define ITEM_VM "ccid-menu-vm"
#define VM_ITEMS "ccid-menu-items"   /* entry id -> GtkCheckMenuItem */
#define ITEM_ICON "ccid-menu-icon"

static void on_activate(GtkMenuItem *item, MenuTray *t)
{
	if (t->syncing)
		return;
	/* GtkCheckMenuItem flipped itself: the mark follows the daemon. */
	t->syncing = TRUE;
	gtk_check_menu_item_set_active(GTK_CHECK_MENU_ITEM(item),
		!gtk_check_menu_item_get_active(GTK_CHECK_MENU_ITEM(item)));
	t->syncing = FALSE;
	ccid_menu_model_choose(t->model,
			       g_object_get_data(G_OBJECT(item), ITEM_ENTRY),
			       g_object_get_data(G_OBJECT(item), ITEM_VM));
}

/* dbusmenu's GTK parser exports no icon for check items: set the state
 * icon on the exported item itself (a check mark and an icon together
 * are valid dbusmenu). */
static void export_icon(GtkWidget *item)
{
	DbusmenuMenuitem *mi = dbusmenu_gtk_parse_get_cached_item(item);
	const char *icon = g_object_get_data(G_OBJECT(item), ITEM_ICON);

	if (mi != NULL && icon != NULL &&
	    g_strcmp0(dbusmenu_menuitem_property_get(mi, "icon-name"), icon) != 0)
		dbusmenu_menuitem_property_set(mi, "icon-name", icon);
}

static void update_item(MenuTray *t, GtkWidget *item, const MenuItemInfo *it)
{
	g_autofree char *text = menu_item_display_label(it);
	g_autofree char *name = menu_item_accessible_name(it);

	gtk_label_set_text(g_object_get_data(G_OBJECT(item), "label"), text);
	gtk_image_set_from_icon_name(g_object_get_data(G_OBJECT(item), "image"),
				     menu_card_state_info(it->state)->icon,
				     GTK_ICON_SIZE_MENU);
	atk_object_set_name(gtk_widget_get_accessible(item), name);
	gtk_widget_set_tooltip_text(item, name);
	gtk_widget_set_sensitive(item, it->sensitive);
	if (gtk_check_menu_item_get_active(GTK_CHECK_MENU_ITEM(item)) !=
	    it->connected)
		gtk_check_menu_item_set_active(GTK_CHECK_MENU_ITEM(item),
					       it->connected);
	g_object_set_data(G_OBJECT(item), ITEM_ICON,
			  (gpointer)menu_card_state_info(it->state)->icon);
	export_icon(item);
}

/* A check item with the state icon before its label, for the GtkMenu
 * itself (shown by XEmbed trays and on SIGUSR1); dbusmenu gets the label
 * and, from export_icon(), the icon. */
static GtkWidget *new_entry_item(void)
{
	GtkWidget *item = gtk_check_menu_item_new();
	GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
	GtkWidget *image = gtk_image_new();
	GtkWidget *label = gtk_label_new(NULL);

	gtk_label_set_xalign(GTK_LABEL(label), 0);
	gtk_box_pack_start(GTK_BOX(box), image, FALSE, FALSE, 0);
	gtk_box_pack_start(GTK_BOX(box), label, TRUE, TRUE, 0);
	gtk_container_add(GTK_CONTAINER(item), box);
	g_object_set_data(G_OBJECT(item), "image", image);
	g_object_set_data(G_OBJECT(item), "label", label);
	gtk_widget_show_all(item);
	return item;
}

static GtkWidget *new_vm_item(const char *vm)
{
	GtkWidget *item = gtk_menu_item_new_with_label(vm);

	/* The submenu is attached before the item enters the menu, so the
	 * dbusmenu parser sees it whole. */
	gtk_menu_item_set_submenu(GTK_MENU_ITEM(item), gtk_menu_new());
	g_object_set_data_full(G_OBJECT(item), VM_ITEMS,
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
		(GDestroyNotify)g_hash_table_unref);
	gtk_widget_show(item);
	return item;
}

static void update_vm(MenuTray *t, GtkWidget *vm_item,
		      const MenuSectionInfo *s)
{
	GHashTable *items = g_object_get_data(G_OBJECT(vm_item), VM_ITEMS);
	GtkWidget *sub = gtk_menu_item_get_submenu(GTK_MENU_ITEM(vm_item));
	g_autofree char *title = menu_section_title(s);
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	gtk_menu_item_set_label(GTK_MENU_ITEM(vm_item), title);
	for (guint i = 0; i < s->items->len; i++) {
		const MenuItemInfo *it = s->items->pdata[i];
		GtkWidget *item = g_hash_table_lookup(items, it->entry_id);

		if (item == NULL) {
			item = new_entry_item();
			g_object_set_data_full(G_OBJECT(item), ITEM_ENTRY,
					       g_strdup(it->entry_id), g_free);
			g_object_set_data_full(G_OBJECT(item), ITEM_VM,
					       g_strdup(s->vm), g_free);
			g_signal_connect(item, "activate",
					 G_CALLBACK(on_activate), t);
			gtk_widget_show(item);
			gtk_menu_shell_insert(GTK_MENU_SHELL(sub), item, (int)i);
			g_hash_table_insert(items, g_strdup(it->entry_id), item);
		}
		update_item(t, item, it);
		g_hash_table_add(seen, it->entry_id);
	}
	menu_widgets_prune(items, seen);
}

static void on_model_changed(CcidMenuModel *model, MenuTray *t)
{
	GPtrArray *sections = ccid_menu_model_sections(model);
	const char *status = ccid_menu_model_status(model);
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	t->syncing = TRUE;
	gtk_menu_item_set_label(GTK_MENU_ITEM(t->status), status ? status : "");
	gtk_widget_set_visible(t->status, status != NULL);
	for (guint i = 0; i < sections->len; i++) {
		const MenuSectionInfo *s = sections->pdata[i];
		GtkWidget *vm_item = g_hash_table_lookup(t->vms, s->vm);

		if (vm_item == NULL) {
			vm_item = new_vm_item(s->vm);
			update_vm(t, vm_item, s);
			/* after the status line */
			gtk_menu_shell_insert(GTK_MENU_SHELL(t->menu), vm_item,
					      (int)i + 1);
			g_hash_table_insert(t->vms, g_strdup(s->vm), vm_item);
		}
		update_vm(t, vm_item, s);
		g_hash_table_add(seen, s->vm);
	}
	menu_widgets_prune(t->vms, seen);
	app_indicator_set_status(t->indicator, APP_INDICATOR_STATUS_ACTIVE);
	app_indicator_set_icon_full(t->indicator,
		ccid_menu_model_daemon_running(model) ? "ccid-menu" :
			"ccid-emu-unavailable-symbolic",
		ccid_menu_model_daemon_running(model) ?
			"Smart-card readers" :
			"Smart-card readers: the daemon is not running");
	t->syncing = FALSE;
}

static void on_open_window(GtkMenuItem *item, MenuTray *t)
{
	t->show_window(t->data);
}

static void on_quit(GtkMenuItem *item, MenuTray *t)
{
	g_application_quit(g_application_get_default());
}

static void on_connection(AppIndicator *ind, gboolean connected,
			  MenuTray *t)
{
	if (!connected)
		fprintf(stderr, "ccid-menu: no StatusNotifierItem tray on this "
			"desktop (org.kde.StatusNotifierWatcher): run "
			"'ccid-menu --window' for the same menu in a window\n");
}

MenuTray *menu_tray_new(CcidMenuModel *model, void (*show_window)(void *),
			void *data)
{
	MenuTray *t = g_new0(MenuTray, 1);
	GtkWidget *open = gtk_menu_item_new_with_label("Open window");
	GtkWidget *quit = gtk_menu_item_new_with_label("Quit");

	t->model = g_object_ref(model);
	t->show_window = show_window;
	t->data = data;
	t->vms = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	t->menu = g_object_ref_sink(gtk_menu_new());
	t->status = gtk_menu_item_new_with_label("");
	gtk_widget_set_sensitive(t->status, FALSE);
	t->separator = gtk_separator_menu_item_new();
	gtk_menu_shell_append(GTK_MENU_SHELL(t->menu), t->status);
	gtk_menu_shell_append(GTK_MENU_SHELL(t->menu), t->separator);
	gtk_menu_shell_append(GTK_MENU_SHELL(t->menu), open);
	gtk_menu_shell_append(GTK_MENU_SHELL(t->menu), quit);
	g_signal_connect(open, "activate", G_CALLBACK(on_open_window), t);
	g_signal_connect(quit, "activate", G_CALLBACK(on_quit), t);
	gtk_widget_show_all(t->menu);

	t->indicator = app_indicator_new("ccid-menu", "ccid-menu",
		APP_INDICATOR_CATEGORY_HARDWARE);
	app_indicator_set_title(t->indicator, "Removable Devices");
	g_signal_connect(t->indicator, "connection-changed",
			 G_CALLBACK(on_connection), t);
	t->changed_id = g_signal_connect(model, "changed",
					 G_CALLBACK(on_model_changed), t);
	on_model_changed(model, t);
	app_indicator_set_menu(t->indicator, GTK_MENU(t->menu));
	/* The parser made the exported items just now: give them icons. */
	{
		GHashTableIter vi;
		gpointer vm_item;

		g_hash_table_iter_init(&vi, t->vms);
		while (g_hash_table_iter_next(&vi, NULL, &vm_item)) {
			GHashTableIter ii;
			gpointer item;

			g_hash_table_iter_init(&ii, g_object_get_data(vm_item,
								      VM_ITEMS));
			while (g_hash_table_iter_next(&ii, NULL, &item))
				export_icon(item);
		}
	}
	return t;
}

void menu_tray_toggle_popup(MenuTray *t)
{
	GList *children;

	if (t == NULL)
		return;
	if (gtk_widget_get_visible(t->menu)) {
		gtk_menu_popdown(GTK_MENU(t->menu));
		gtk_widget_hide(t->anchor);
		return;
	}
	/* No tray host draws us here: anchor the menu to a 1x1 popup
	 * window (below where --window opens) instead of a tray icon. */
	if (t->anchor == NULL) {
		t->anchor = gtk_window_new(GTK_WINDOW_POPUP);
		gtk_window_set_default_size(GTK_WINDOW(t->anchor), 1, 1);
		gtk_window_move(GTK_WINDOW(t->anchor), 4, 440);
	}
	gtk_widget_show(t->anchor);
	gtk_menu_popup_at_rect(GTK_MENU(t->menu),
			       gtk_widget_get_window(t->anchor),
			       &(GdkRectangle){ 0, 0, 1, 1 },
			       GDK_GRAVITY_SOUTH_WEST, GDK_GRAVITY_NORTH_WEST,
			       NULL);
	children = gtk_container_get_children(GTK_CONTAINER(t->menu));
	for (GList *l = children; l != NULL; l = l->next)
		if (gtk_widget_get_visible(l->data) &&
		    gtk_menu_item_get_submenu(l->data) != NULL) {
			gtk_menu_shell_select_item(GTK_MENU_SHELL(t->menu),
						   l->data);
			break;
		}
	g_list_free(children);
}

void menu_tray_free(MenuTray *t)
{
	if (t == NULL)
		return;
	g_signal_handler_disconnect(t->model, t->changed_id);
	g_clear_object(&t->indicator);
	g_hash_table_unref(t->vms);
	gtk_widget_destroy(t->menu);
	g_object_unref(t->menu);
	if (t->anchor != NULL)
		gtk_widget_destroy(t->anchor);
	g_object_unref(t->model);
	g_free(t);
}
