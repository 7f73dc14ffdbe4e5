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
