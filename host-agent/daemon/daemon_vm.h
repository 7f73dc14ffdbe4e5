/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A VM the daemon knows: a QEMU reached through its QMP socket, its run
 * state, and hot-plugging usb-redir devices into it.
 *
 * Plugging needs no socket file: the daemon makes a socketpair, hands one
 * end to QEMU with `getfd`, `chardev-add`s a socket chardev on that
 * descriptor (QEMU 7.2 accepts "addr": {"type": "fd"} for a connected
 * socket) and `device_add`s a usb-redir on it.  The other end is the
 * usbredir session's.  Unplugging is `device_del`, then waiting for
 * DEVICE_DELETED, then `chardev-remove` ("not found" means QEMU already
 * removed it with the device).
 */
#ifndef CCID_DAEMON_VM_H
#define CCID_DAEMON_VM_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct daemon_vm daemon_vm;

struct daemon_vm_callbacks {
	/* daemon_vm_get_state() changed. */
	void (*state_changed)(void *user, daemon_vm *vm);
	/* The VM is gone (QMP SHUTDOWN, or its socket closed); @reason is
	 * "vm-shutdown" or "vm-gone".  Called once. */
	void (*gone)(void *user, daemon_vm *vm, const char *reason,
		     const char *detail);
};

/* @error NULL: QMP works and the VM can take devices. */
typedef void (*daemon_vm_ready_fn)(void *user, daemon_vm *vm,
				   const GError *error);

/* Connects to the QMP unix socket @qmp_path.  @ready runs once. */
daemon_vm *daemon_vm_new(const char *name, const char *qmp_path,
			 const struct daemon_vm_callbacks *cbs, void *user,
			 daemon_vm_ready_fn ready, void *ready_user);
/* Accepts NULL.  Operations in flight complete with an error first. */
void daemon_vm_free(daemon_vm *vm);

const char *daemon_vm_get_name(const daemon_vm *vm);
const char *daemon_vm_get_qmp(const daemon_vm *vm);
/* "connecting", "running", "paused", "gone". */
const char *daemon_vm_get_state(const daemon_vm *vm);
gboolean daemon_vm_is_gone(const daemon_vm *vm);

/* @fd: our end of the new device's usbredir socket (the caller owns it),
 * or -1 with @error. */
typedef void (*daemon_vm_plug_fn)(void *user, int fd, const GError *error);
/* Hot-plugs a usb-redir device with QEMU id @dev_id (its chardev has the
 * same id). */
void daemon_vm_plug_redir(daemon_vm *vm, const char *dev_id,
			  daemon_vm_plug_fn done, void *user);

typedef void (*daemon_vm_unplug_fn)(void *user, const GError *error);
/* Unplugs device @dev_id and its chardev; the device is gone when @done
 * runs without an error.  A VM that is gone counts as unplugged. */
void daemon_vm_unplug_redir(daemon_vm *vm, const char *dev_id,
			    guint timeout_ms, daemon_vm_unplug_fn done,
			    void *user);

/* --- VMs reached some other way (libvirt: daemon_libvirt.c) ------------- */

/* How such a VM plugs and unplugs; @impl is the backend's.  @plug and
 * @unplug run only while the VM is running or paused; each calls its
 * @done exactly once (also when the VM goes away or is freed). */
struct daemon_vm_backend {
	void (*plug)(void *impl, const char *dev_id, daemon_vm_plug_fn done,
		     void *user);
	void (*unplug)(void *impl, const char *dev_id, guint timeout_ms,
		       daemon_vm_unplug_fn done, void *user);
	/* The VM is freed: finish what is in flight, free @impl. */
	void (*free)(void *impl);
};

/* A VM whose devices go through @backend; @address is what
 * daemon_vm_get_qmp() shows (e.g. "libvirt:qemu:///session").  State
 * "connecting" until daemon_vm_backend_ready(). */
daemon_vm *daemon_vm_new_backend(const char *name, const char *address,
				 const struct daemon_vm_backend *backend,
				 void *impl,
				 const struct daemon_vm_callbacks *cbs,
				 void *user, daemon_vm_ready_fn ready,
				 void *ready_user);
/* The backend found the VM (@error NULL: running, or paused) or not. */
void daemon_vm_backend_ready(daemon_vm *vm, gboolean paused,
			     const GError *error);
/* Paused or resumed (ignored unless running or paused). */
void daemon_vm_backend_set_paused(daemon_vm *vm, gboolean paused);
/* The VM stopped; @reason as for daemon_vm_callbacks.gone. */
void daemon_vm_backend_gone(daemon_vm *vm, const char *reason,
			    const char *detail);

G_END_DECLS

#endif /* CCID_DAEMON_VM_H */
