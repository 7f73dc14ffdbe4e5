/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's D-Bus side (dbus/org.ccidemu.Agent1.xml): the entries of
 * the configuration and the VMs as objects under /org/ccidemu/Agent1 with
 * an object manager, the Manager interface's methods and signals, and the
 * remembered VMs and attachments (daemon_state.h) restored at start and
 * kept up to date.  All on the thread-default main context.
 */
#ifndef CCID_DAEMON_SERVICE_H
#define CCID_DAEMON_SERVICE_H

#include "daemon_config.h"

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct daemon_service daemon_service;

/* @cfg stays the caller's and must outlive the service; its entries'
 * card specs are taken at export.  @state_path: the remembered VMs.
 * @discover: every PC/SC reader becomes a "Shared <reader>" entry
 * (daemon_readers.h). */
daemon_service *daemon_service_new(struct daemon_config *cfg,
				   const char *state_path, gboolean discover);
/* Before export: the libvirt URIs whose running domains are VMs
 * (daemon_libvirt.h); NULL or empty: none. */
void daemon_service_set_libvirt(daemon_service *svc, const char *const *uris);
/* Before export: every USB CCID reader becomes a passthrough entry
 * "<model>" (daemon_usb.h); on unless @discover was FALSE. */
void daemon_service_set_usb(daemon_service *svc, gboolean usb);
/* Exports the objects on @conn (NULL: on no bus, for the fuzz target:
 * daemon_service_private.h) and restores the remembered VMs; problems
 * with the state file go to stderr and to the ConfigErrors property. */
gboolean daemon_service_export(daemon_service *svc, GDBusConnection *conn,
			       GError **error);
guint daemon_service_n_entries(const daemon_service *svc);
/* Accepts NULL.  Ends every session (the VMs keep dead devices, which the
 * next daemon removes); the remembered state is left as it was. */
void daemon_service_free(daemon_service *svc);

/* "ccid-agent daemon: MESSAGE" on stderr (the journal under systemd). */
void daemon_say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

G_END_DECLS

#endif /* CCID_DAEMON_SERVICE_H */
