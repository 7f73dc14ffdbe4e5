/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon_libvirt.h for the program: loads the libvirt module
 * (daemon_libvirt_module.h) on first use and forwards to it.  Without the
 * module (libvirt off, or the module missing), libvirt VMs are refused
 * clearly by a VM that is never ready.
 */
#include "daemon_libvirt_module.h"

#include "daemon_service.h"

#include <gio/gio.h>
#include <string.h>

/* The module next to the program (the build tree; a test's copy), else
 * where meson installs it; CCID_AGENT_LIBVIRT_MODULE names another. */
static char *module_path(void)
{
	const char *env = g_getenv("CCID_AGENT_LIBVIRT_MODULE");
	g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
	g_autofree char *dir = exe != NULL ? g_path_get_dirname(exe) : NULL;
	g_autofree char *beside = dir != NULL ? g_build_filename(dir,
		DAEMON_LIBVIRT_MODULE_FILE, NULL) : NULL;

	if (env != NULL && env[0] != '\0')
		return g_strdup(env);
	if (beside != NULL && g_file_test(beside, G_FILE_TEST_EXISTS))
		return g_steal_pointer(&beside);
	return g_build_filename(CCID_AGENT_MODULE_DIR,
				DAEMON_LIBVIRT_MODULE_FILE, NULL);
}

static const struct daemon_libvirt_module *load_module(GError **error)
{
	typedef const struct daemon_libvirt_module *(*get_fn)(void);
	static const struct daemon_libvirt_module *m;
	static char *failure;
	g_autofree char *path = NULL;
	GModule *mod;
	gpointer sym = NULL;

	if (m != NULL)
		return m;
	if (failure != NULL) {
		g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED,
				    failure);
		return NULL;
	}
	path = module_path();
	mod = g_module_open(path, G_MODULE_BIND_LOCAL);
	if (mod == NULL) {
		failure = g_strdup_printf("cannot load %s: %s (is ccid-emu "
					  "fully installed?)", path,
					  g_module_error());
	} else if (!g_module_symbol(mod, DAEMON_LIBVIRT_MODULE_SYMBOL, &sym) ||
		   sym == NULL ||
		   ((get_fn)sym)()->abi != DAEMON_LIBVIRT_MODULE_ABI) {
		failure = g_strdup_printf("%s is not this ccid-agent's libvirt "
					  "module (rebuild and reinstall)",
					  path);
		g_module_close(mod);
	} else {
		g_module_make_resident(mod);
		m = ((get_fn)sym)();
		return m;
	}
	g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_FAILED, failure);
	return NULL;
}

daemon_libvirt *daemon_libvirt_new(const char *const *uris,
				   daemon_libvirt_domain_fn domain, void *user)
{
	g_autoptr(GError) error = NULL;
	const struct daemon_libvirt_module *m = load_module(&error);

	if (m == NULL) {
		daemon_say("libvirt domains are left out: %s", error->message);
		return NULL;
	}
	return m->create(uris, domain, user);
}

void daemon_libvirt_scan(daemon_libvirt *lv)
{
	if (lv != NULL)
		load_module(NULL)->scan(lv);
}

void daemon_libvirt_free(daemon_libvirt *lv)
{
	if (lv != NULL)
		load_module(NULL)->destroy(lv);
}

/* --- a libvirt VM without libvirt: refused when "ready" ------------------- */

struct off_vm {
	daemon_vm *vm;
	char *uri;
	guint idle_id;
};

static void off_plug(void *impl, const char *dev_id, daemon_vm_plug_fn done,
		     void *user)
{
	g_autoptr(GError) error = g_error_new_literal(G_IO_ERROR,
		G_IO_ERROR_FAILED, "libvirt is not watched");

	done(user, -1, error);    /* never reached: the VM is never ready */
}

static void off_unplug(void *impl, const char *dev_id, guint timeout_ms,
		       daemon_vm_unplug_fn done, void *user)
{
	done(user, NULL);
}

static void off_free(void *impl)
{
	struct off_vm *o = impl;

	if (o->idle_id != 0)
		g_source_remove(o->idle_id);
	g_free(o->uri);
	g_free(o);
}

static const struct daemon_vm_backend off_backend = {
	.plug = off_plug,
	.unplug = off_unplug,
	.free = off_free,
};

static gboolean on_off_ready(gpointer data)
{
	struct off_vm *o = data;
	g_autoptr(GError) error = g_error_new(G_IO_ERROR, G_IO_ERROR_FAILED,
		"libvirt URI %s is not watched (the daemon's --libvirt options "
		"name the URIs it watches; --no-libvirt, or no libvirt module, "
		"leaves libvirt out)", o->uri);

	o->idle_id = 0;
	daemon_vm_backend_ready(o->vm, FALSE, error);
	return G_SOURCE_REMOVE;
}

daemon_vm *daemon_libvirt_vm_new(daemon_libvirt *lv, const char *uri,
				 const char *name,
				 const struct daemon_vm_callbacks *cbs,
				 void *user, daemon_vm_ready_fn ready,
				 void *ready_user)
{
	g_autofree char *address = NULL;
	struct off_vm *o;

	if (lv != NULL)
		return load_module(NULL)->vm_new(lv, uri, name, cbs, user,
						 ready, ready_user);
	address = g_strconcat(DAEMON_LIBVIRT_PREFIX, uri, NULL);
	o = g_new0(struct off_vm, 1);
	o->uri = g_strdup(uri);
	o->vm = daemon_vm_new_backend(name, address, &off_backend, o, cbs,
				      user, ready, ready_user);
	o->idle_id = g_idle_add(on_off_ready, o);
	return o->vm;
}

/* --- loading libvirt only when it can have domains ----------------------- */

/* The sockets a local libvirt daemon of @uri listens on (libvirt's
 * remote_sockets.c: the monolithic libvirtd, or virtproxyd, makes
 * libvirt-sock; the modular virtqemud, virtqemud-sock), in /run/libvirt
 * for qemu:///system and in the user's runtime directory for
 * qemu:///session.  NULL: not a local URI, reachable at any time. */
static GPtrArray *local_sockets(const char *uri)
{
	static const char *const names[] = { "libvirt-sock",
					      "virtqemud-sock" };
	g_autofree char *dir = NULL;
	GPtrArray *paths;

	if (strcmp(uri, "qemu:///system") == 0)
		dir = g_strdup("/run/libvirt");
	else if (strcmp(uri, "qemu:///session") == 0)
		dir = g_build_filename(g_get_user_runtime_dir(), "libvirt",
				       NULL);
	else
		return NULL;
	paths = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < G_N_ELEMENTS(names); i++)
		g_ptr_array_add(paths, g_build_filename(dir, names[i], NULL));
	return paths;
}

gboolean daemon_libvirt_reachable(const char *const *uris)
{
	for (guint i = 0; uris != NULL && uris[i] != NULL; i++) {
		g_autoptr(GPtrArray) paths = local_sockets(uris[i]);

		if (paths == NULL)
			return TRUE;
		for (guint j = 0; j < paths->len; j++)
			if (g_file_test(g_ptr_array_index(paths, j),
					G_FILE_TEST_EXISTS))
				return TRUE;
	}
	return FALSE;
}

struct daemon_libvirt_waiter {
	GPtrArray *monitors;            /* GFileMonitor, one per socket */
	GSourceFunc ready;
	void *user;
	guint idle_id;
};

static gboolean on_waiter_idle(gpointer data)
{
	daemon_libvirt_waiter *w = data;

	w->idle_id = 0;
	w->ready(w->user);       /* may free w */
	return G_SOURCE_REMOVE;
}

static void on_socket_changed(GFileMonitor *monitor, GFile *file,
			      GFile *other, GFileMonitorEvent event,
			      gpointer data)
{
	daemon_libvirt_waiter *w = data;

	if (event != G_FILE_MONITOR_EVENT_CREATED || w->idle_id != 0)
		return;
	/* Out of the monitor's signal, which the callback may free. */
	w->idle_id = g_idle_add(on_waiter_idle, w);
}

daemon_libvirt_waiter *daemon_libvirt_waiter_new(const char *const *uris,
						 GSourceFunc ready,
						 void *user)
{
	daemon_libvirt_waiter *w = g_new0(daemon_libvirt_waiter, 1);

	w->monitors = g_ptr_array_new_with_free_func(g_object_unref);
	w->ready = ready;
	w->user = user;
	for (guint i = 0; uris != NULL && uris[i] != NULL; i++) {
		g_autoptr(GPtrArray) paths = local_sockets(uris[i]);

		for (guint j = 0; paths != NULL && j < paths->len; j++) {
			g_autoptr(GFile) f = g_file_new_for_path(
				g_ptr_array_index(paths, j));
			g_autoptr(GError) error = NULL;
			/* GIO's inotify monitor also watches a path whose
			 * directory does not exist yet. */
			GFileMonitor *m = g_file_monitor_file(f,
				G_FILE_MONITOR_NONE, NULL, &error);

			if (m == NULL) {
				daemon_say("libvirt %s: cannot watch %s (%s); "
					   "restart the daemon once libvirt "
					   "runs", uris[i],
					   (const char *)g_ptr_array_index(
						   paths, j), error->message);
				continue;
			}
			g_signal_connect(m, "changed",
					 G_CALLBACK(on_socket_changed), w);
			g_ptr_array_add(w->monitors, m);
		}
	}
	return w;
}

void daemon_libvirt_waiter_free(daemon_libvirt_waiter *w)
{
	if (w == NULL)
		return;
	for (guint i = 0; i < w->monitors->len; i++)
		g_signal_handlers_disconnect_by_data(
			g_ptr_array_index(w->monitors, i), w);
	g_ptr_array_unref(w->monitors);
	if (w->idle_id != 0)
		g_source_remove(w->idle_id);
	g_free(w);
}
