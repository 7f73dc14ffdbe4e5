/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-menu: the "Removable Devices" menu of ccid-agent's daemon.  One
 * model (menu_model.c) feeds the tray menu (menu_tray.c) and the window
 * (menu_window.c); what the user must know goes out as a GNotification,
 * into the window's message line, and to stderr.
 *
 *   ccid-menu              the tray icon and its menu
 *   ccid-menu --window     the same menu as a window
 *   ccid-menu --window --tray   both, one model
 */
#include "menu_model.h"
#include "menu_tray.h"
#include "menu_window.h"

#include <glib-unix.h>
#include <stdio.h>

typedef struct {
	GtkApplication *app;
	CcidMenuModel *model;
	MenuTray *tray;
	GtkWidget *window;
	gboolean want_window, want_tray, no_notify, version;
} Menu;

static void show_window(void *data)
{
	Menu *menu = data;

	if (menu->window == NULL) {
		menu->window = menu_window_new(menu->app, menu->model);
		g_object_add_weak_pointer(G_OBJECT(menu->window),
					  (gpointer *)&menu->window);
	}
	gtk_window_present(GTK_WINDOW(menu->window));
}

static void on_message(CcidMenuModel *model, const char *id,
		       const char *title, const char *body, Menu *menu)
{
	fprintf(stderr, "ccid-menu: %s: %s\n", title, body);
	if (menu->window != NULL)
		menu_window_show_message(menu->window, title, body);
	if (!menu->no_notify) {
		g_autoptr(GNotification) n = g_notification_new(title);

		g_notification_set_body(n, body);
		g_notification_set_category(n, "device");
		g_application_send_notification(G_APPLICATION(menu->app), id, n);
	}
}

static void on_activate(GtkApplication *app, Menu *menu)
{
	g_autoptr(GError) error = NULL;

	if (menu->model != NULL)
		return;
	menu->model = ccid_menu_model_new(&error);
	if (menu->model == NULL) {
		fprintf(stderr, "ccid-menu: %s\n", error->message);
		g_application_quit(G_APPLICATION(app));
		return;
	}
	if (!ccid_menu_model_daemon_running(menu->model))
		fprintf(stderr, "ccid-menu: %s\n",
			ccid_menu_model_status(menu->model));
	g_signal_connect(menu->model, "message", G_CALLBACK(on_message), menu);
	if (menu->want_tray) {
		menu->tray = menu_tray_new(menu->model, show_window, menu);
		g_application_hold(G_APPLICATION(app));
	}
	if (menu->want_window)
		show_window(menu);
}

static gboolean on_signal(gpointer data)
{
	g_application_quit(G_APPLICATION(data));
	return G_SOURCE_CONTINUE;
}

static gboolean on_usr1(gpointer data)
{
	menu_tray_toggle_popup(((Menu *)data)->tray);
	return G_SOURCE_CONTINUE;
}

static gint on_options(GApplication *app, GVariantDict *opts, Menu *menu)
{
	if (menu->version) {
		printf("ccid-menu %s\n", CCID_EMU_VERSION);
		return 0;
	}
	if (!gtk_init_check(NULL, NULL)) {
		fprintf(stderr, "ccid-menu: cannot open the display (DISPLAY "
			"or WAYLAND_DISPLAY): run it inside a desktop session\n");
		return 1;
	}
	if (!menu->want_window)
		menu->want_tray = TRUE;
	return -1;
}

int main(int argc, char **argv)
{
	Menu menu = { 0 };
	const GOptionEntry options[] = {
		{ "window", 'w', 0, G_OPTION_ARG_NONE, &menu.want_window,
		  "Show the menu as a window (for desktops without a tray)",
		  NULL },
		{ "tray", 't', 0, G_OPTION_ARG_NONE, &menu.want_tray,
		  "Also put the menu in the tray (the default without --window)",
		  NULL },
		{ "no-notify", 0, 0, G_OPTION_ARG_NONE, &menu.no_notify,
		  "Send no desktop notifications", NULL },
		{ "version", 0, 0, G_OPTION_ARG_NONE, &menu.version,
		  "Print the version and exit", NULL },
		{ NULL },
	};
	int status;

	/* Not unique: a tray and a window may run side by side, and the
	 * menu holds no state of its own (the daemon does). */
	menu.app = gtk_application_new("org.ccidemu.Menu",
				       G_APPLICATION_NON_UNIQUE);
	g_application_add_main_option_entries(G_APPLICATION(menu.app), options);
	g_application_set_option_context_summary(G_APPLICATION(menu.app),
		"The Removable Devices menu of ccid-agent's daemon: connect "
		"smart-card readers to VMs and disconnect them.");
	g_signal_connect(menu.app, "handle-local-options",
			 G_CALLBACK(on_options), &menu);
	g_signal_connect(menu.app, "activate", G_CALLBACK(on_activate), &menu);
	g_unix_signal_add(SIGTERM, on_signal, menu.app);
	g_unix_signal_add(SIGINT, on_signal, menu.app);
	g_unix_signal_add(SIGUSR1, on_usr1, &menu);
	status = g_application_run(G_APPLICATION(menu.app), argc, argv);
	if (menu.window != NULL)
		gtk_widget_destroy(menu.window);
	menu_tray_free(menu.tray);
	g_clear_object(&menu.model);
	g_object_unref(menu.app);
	return status;
}
