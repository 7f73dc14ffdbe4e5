/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The interface between the daemon and its libvirt module
 * (libccid-agent-libvirt.so, daemon_libvirt.c), which
 * daemon_libvirt_loader.c loads with GModule on first use: libvirt pulls
 * in some 40 libraries (and ~100 ms of start-up for every ccid-agent
 * command), which only a daemon that watches libvirt should pay for.  The
 * module calls back into the program (daemon_vm_new_backend() and the
 * other daemon_vm_backend_*(), daemon_say()), which exports them
 * (export_dynamic).
 */
#ifndef CCID_DAEMON_LIBVIRT_MODULE_H
#define CCID_DAEMON_LIBVIRT_MODULE_H

#include "daemon_libvirt.h"

#include <gmodule.h>

G_BEGIN_DECLS

/* The module's file name, and the one symbol it exports. */
#define DAEMON_LIBVIRT_MODULE_FILE "libccid-agent-libvirt.so"
#define DAEMON_LIBVIRT_MODULE_SYMBOL "ccid_agent_libvirt_module"
/* Bumped when this table changes: a stale module is refused. */
#define DAEMON_LIBVIRT_MODULE_ABI 1u

/* The functions of daemon_libvirt.h, as the module implements them. */
struct daemon_libvirt_module {
	guint abi;
	daemon_libvirt *(*create)(const char *const *uris,
				  daemon_libvirt_domain_fn domain, void *user);
	void (*scan)(daemon_libvirt *lv);
	void (*destroy)(daemon_libvirt *lv);
	daemon_vm *(*vm_new)(daemon_libvirt *lv, const char *uri,
			     const char *name,
			     const struct daemon_vm_callbacks *cbs, void *user,
			     daemon_vm_ready_fn ready, void *ready_user);
};

G_MODULE_EXPORT const struct daemon_libvirt_module *
ccid_agent_libvirt_module(void);

G_END_DECLS

#endif /* CCID_DAEMON_LIBVIRT_MODULE_H */
