/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvirt domains as VMs: the running domains of some libvirt URIs
 * (default qemu:///session and qemu:///system), their lifecycle events,
 * and usb-redir devices hot-plugged through libvirt's own API, so that
 * libvirt's view of the domain stays true (`virsh dumpxml` shows them).
 *
 * Attach: the daemon listens on a unix socket in a private directory,
 * virDomainAttachDeviceFlags(VIR_DOMAIN_AFFECT_LIVE) adds
 *   <redirdev bus='usb' type='unix'>
 *     <source mode='connect' path='SOCKET'/><alias name='ua-DEV_ID'/>
 *   </redirdev>
 * and QEMU connects to it.  Only a peer running as the domain's QEMU uid
 * (SO_PEERCRED; the uid comes from the domain's DAC seclabel) is taken.
 * Detach: virDomainDetachDeviceAlias, then the DEVICE_REMOVED event.
 *
 * Events come through libvirt-glib's GLib event loop implementation; the
 * blocking device calls run in worker threads.  Everything else is on the
 * thread-default main context.
 */
#ifndef CCID_DAEMON_LIBVIRT_H
#define CCID_DAEMON_LIBVIRT_H

#include "daemon_vm.h"

#include <glib.h>

G_BEGIN_DECLS

/* "libvirt:URI" is the address of a libvirt VM (what Qmp shows). */
#define DAEMON_LIBVIRT_PREFIX "libvirt:"

typedef struct daemon_libvirt daemon_libvirt;

/* A domain of @uri runs (found at the scan, or it started or resumed).
 * Domains that stop are told to their daemon_vm (its gone callback). */
typedef void (*daemon_libvirt_domain_fn)(void *user, const char *uri,
					 const char *name);

/* Opens each of @uris; a URI that cannot be opened is a message on
 * stderr and is tried again every 5 s.  No callback before
 * daemon_libvirt_scan().  (Set LIBVIRT_AUTOSTART=0 before any thread
 * runs to keep libvirt from starting a session libvirtd.) */
daemon_libvirt *daemon_libvirt_new(const char *const *uris,
				   daemon_libvirt_domain_fn domain, void *user);
/* Reports the running domains of the open URIs. */
void daemon_libvirt_scan(daemon_libvirt *lv);
/* Accepts NULL.  The VMs made by it must be freed first. */
void daemon_libvirt_free(daemon_libvirt *lv);

/* The VM of domain @name of @uri; @ready runs once, from the main loop:
 * an error when the URI is not open or the domain is not running. */
daemon_vm *daemon_libvirt_vm_new(daemon_libvirt *lv, const char *uri,
				 const char *name,
				 const struct daemon_vm_callbacks *cbs,
				 void *user, daemon_vm_ready_fn ready,
				 void *ready_user);

/* Loading libvirt costs the daemon some 11 MiB of RSS and 40 libraries,
 * so it is loaded only once one of @uris can have running domains: a
 * remote URI at once; qemu:///system and qemu:///session once their
 * daemon's socket exists.  A waiter calls @ready (once, from the main
 * loop) when that becomes true. */
gboolean daemon_libvirt_reachable(const char *const *uris);
typedef struct daemon_libvirt_waiter daemon_libvirt_waiter;
daemon_libvirt_waiter *daemon_libvirt_waiter_new(const char *const *uris,
						 GSourceFunc ready,
						 void *user);
/* Accepts NULL. */
void daemon_libvirt_waiter_free(daemon_libvirt_waiter *w);

G_END_DECLS

#endif /* CCID_DAEMON_LIBVIRT_H */
