/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "menu_window.h"
#include "menu_widgets.h"

typedef struct {
	CcidMenuModel *model;
	GtkWidget *window;
	GtkWidget *status;      /* daemon absent, no VMs */
	GtkWidget *sections;    /* box of frames, one per VM */
	GtkWidget *message;     /* the last message */
	GHashTable *frames;     /* VM name -> GtkFrame */
	gboolean syncing;       /* we set the buttons, the user did not */
	gulong changed_id;
} MenuWindow;

#define ITEM_ENTRY "ccid-menu-entry"
#define ITEM_VM "ccid-menu-vm"
#define FRAME_ITEMS "ccid-menu-items"   /* entry id -> GtkCheckButton */

static void on_toggled(GtkToggleButton *button, MenuWindow *w)
{
	const char *entry = g_object_get_data(G_OBJECT(button), ITEM_ENTRY);
	const char *vm = g_object_get_data(G_OBJECT(button), ITEM_VM);

	if (w->syncing)
		return;
	/* The check mark follows the daemon, not the click: put it back
	 * until the daemon reports the session. */
	w->syncing = TRUE;
	gtk_toggle_button_set_active(button, !gtk_toggle_button_get_active(button));
	w->syncing = FALSE;
	ccid_menu_model_choose(w->model, entry, vm);
}

static GtkWidget *new_item(MenuWindow *w, const char *vm, const char *entry)
{
	GtkWidget *button = gtk_check_button_new();
	GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
	GtkWidget *image = gtk_image_new();
	GtkWidget *label = gtk_label_new(NULL);

	gtk_label_set_xalign(GTK_LABEL(label), 0);
	/* Reasons can be long: wrap them rather than widen the window. */
	gtk_label_set_line_wrap(GTK_LABEL(label), TRUE);
	gtk_label_set_max_width_chars(GTK_LABEL(label), 60);
	gtk_box_pack_start(GTK_BOX(box), image, FALSE, FALSE, 0);
	gtk_box_pack_start(GTK_BOX(box), label, TRUE, TRUE, 0);
	gtk_container_add(GTK_CONTAINER(button), box);
	g_object_set_data(G_OBJECT(button), "image", image);
	g_object_set_data(G_OBJECT(button), "label", label);
	g_object_set_data_full(G_OBJECT(button), ITEM_ENTRY, g_strdup(entry),
			       g_free);
	g_object_set_data_full(G_OBJECT(button), ITEM_VM, g_strdup(vm),
			       g_free);
	g_signal_connect(button, "toggled", G_CALLBACK(on_toggled), w);
	gtk_widget_show_all(button);
	return button;
}

static void update_item(MenuWindow *w, GtkWidget *button,
			const MenuItemInfo *it)
{
	const MenuCardStateInfo *si = menu_card_state_info(it->state);
	g_autofree char *text = menu_item_display_label(it);
	g_autofree char *name = menu_item_accessible_name(it);

	gtk_image_set_from_icon_name(g_object_get_data(G_OBJECT(button), "image"),
				     si->icon, GTK_ICON_SIZE_LARGE_TOOLBAR);
	gtk_label_set_text(g_object_get_data(G_OBJECT(button), "label"), text);
	gtk_widget_set_tooltip_text(button, name);
	atk_object_set_name(gtk_widget_get_accessible(button), name);
	gtk_widget_set_sensitive(button, it->sensitive);
	if (gtk_toggle_button_get_active(GTK_TOGGLE_BUTTON(button)) !=
	    it->connected)
		gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(button),
					     it->connected);
}

static GtkWidget *new_frame(const char *vm)
{
	GtkWidget *frame = gtk_frame_new(vm);
	GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 4);

	gtk_container_set_border_width(GTK_CONTAINER(box), 6);
	gtk_container_add(GTK_CONTAINER(frame), box);
	g_object_set_data_full(G_OBJECT(frame), FRAME_ITEMS,
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
		(GDestroyNotify)g_hash_table_unref);
	gtk_widget_show_all(frame);
	return frame;
}

static void update_frame(MenuWindow *w, GtkWidget *frame,
			 const MenuSectionInfo *s)
{
	GHashTable *items = g_object_get_data(G_OBJECT(frame), FRAME_ITEMS);
	GtkWidget *box = gtk_bin_get_child(GTK_BIN(frame));
	g_autofree char *title = menu_section_title(s);
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	gtk_frame_set_label(GTK_FRAME(frame), title);
	atk_object_set_name(gtk_widget_get_accessible(frame), title);
	for (guint i = 0; i < s->items->len; i++) {
		const MenuItemInfo *it = s->items->pdata[i];
		GtkWidget *button = g_hash_table_lookup(items, it->entry_id);

		if (button == NULL) {
			button = new_item(w, s->vm, it->entry_id);
			gtk_box_pack_start(GTK_BOX(box), button, FALSE, FALSE, 0);
			g_hash_table_insert(items, g_strdup(it->entry_id), button);
		}
		gtk_box_reorder_child(GTK_BOX(box), button, (int)i);
		update_item(w, button, it);
		g_hash_table_add(seen, it->entry_id);
	}
	menu_widgets_prune(items, seen);
}

static void on_model_changed(CcidMenuModel *model, MenuWindow *w)
{
	GPtrArray *sections = ccid_menu_model_sections(model);
	const char *status = ccid_menu_model_status(model);
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	w->syncing = TRUE;
	gtk_label_set_text(GTK_LABEL(w->status), status ? status : "");
	gtk_widget_set_visible(w->status, status != NULL);
	for (guint i = 0; i < sections->len; i++) {
		const MenuSectionInfo *s = sections->pdata[i];
		GtkWidget *frame = g_hash_table_lookup(w->frames, s->vm);

		if (frame == NULL) {
			frame = new_frame(s->vm);
			gtk_box_pack_start(GTK_BOX(w->sections), frame, FALSE,
					   FALSE, 0);
			g_hash_table_insert(w->frames, g_strdup(s->vm), frame);
		}
		gtk_box_reorder_child(GTK_BOX(w->sections), frame, (int)i);
		update_frame(w, frame, s);
		g_hash_table_add(seen, s->vm);
	}
	menu_widgets_prune(w->frames, seen);
	w->syncing = FALSE;
}

void menu_window_show_message(GtkWidget *window, const char *title,
			      const char *body)
{
	MenuWindow *w = g_object_get_data(G_OBJECT(window), "menu-window");
	g_autofree char *text = g_strdup_printf("%s: %s", title, body);

	if (w == NULL)
		return;
	gtk_label_set_text(GTK_LABEL(w->message), text);
	gtk_widget_set_visible(w->message, TRUE);
}

static void menu_window_free(MenuWindow *w)
{
	g_signal_handler_disconnect(w->model, w->changed_id);
	g_object_unref(w->model);
	g_hash_table_unref(w->frames);
	g_free(w);
}

GtkWidget *menu_window_new(GtkApplication *app, CcidMenuModel *model)
{
	MenuWindow *w = g_new0(MenuWindow, 1);
	GtkWidget *outer = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
	GtkWidget *scroll = gtk_scrolled_window_new(NULL, NULL);

	w->model = g_object_ref(model);
	w->frames = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	w->window = gtk_application_window_new(app);
	gtk_window_set_title(GTK_WINDOW(w->window), "Removable Devices");
	gtk_window_set_icon_name(GTK_WINDOW(w->window), "ccid-menu");
	gtk_window_set_default_size(GTK_WINDOW(w->window), 460, 320);
	gtk_container_set_border_width(GTK_CONTAINER(outer), 10);

	w->status = gtk_label_new(NULL);
	gtk_label_set_line_wrap(GTK_LABEL(w->status), TRUE);
	gtk_label_set_xalign(GTK_LABEL(w->status), 0);
	atk_object_set_name(gtk_widget_get_accessible(w->status), "Status");
	w->sections = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
	w->message = gtk_label_new(NULL);
	gtk_label_set_line_wrap(GTK_LABEL(w->message), TRUE);
	gtk_label_set_xalign(GTK_LABEL(w->message), 0);
	gtk_label_set_selectable(GTK_LABEL(w->message), TRUE);
	atk_object_set_name(gtk_widget_get_accessible(w->message), "Message");

	gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(scroll),
				       GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
	gtk_container_add(GTK_CONTAINER(scroll), w->sections);
	gtk_box_pack_start(GTK_BOX(outer), w->status, FALSE, FALSE, 0);
	gtk_box_pack_start(GTK_BOX(outer), scroll, TRUE, TRUE, 0);
	gtk_box_pack_end(GTK_BOX(outer), w->message, FALSE, FALSE, 0);
	gtk_container_add(GTK_CONTAINER(w->window), outer);
	gtk_widget_show_all(w->window);
	gtk_widget_hide(w->message);

	g_object_set_data_full(G_OBJECT(w->window), "menu-window", w,
			       (GDestroyNotify)menu_window_free);
	w->changed_id = g_signal_connect(model, "changed",
					 G_CALLBACK(on_model_changed), w);
	on_model_changed(model, w);
	return w->window;
}
