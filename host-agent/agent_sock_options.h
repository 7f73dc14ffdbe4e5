/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The socket security options `serve` and `passthrough` share:
 * --tls-creds DIR and --allow-group GROUP, checked against the address
 * they apply to, and the QEMU arguments that match a TLS setup.
 */
#ifndef CCID_AGENT_SOCK_OPTIONS_H
#define CCID_AGENT_SOCK_OPTIONS_H

#include <ccid_bridge.h>
#include <glib.h>

G_BEGIN_DECLS

/* Stores @tls_dir and @group (either may be NULL) in @addr; an error when
 * they do not fit the address (TLS on a unix socket, a group on tcp:). */
gboolean agent_sock_options_apply(struct ccid_bridge_addr *addr, gboolean listen,
				  const char *tls_dir, const char *group,
				  GError **error);

/* Comment lines on stdout: the -object and chardev option QEMU needs to
 * meet a TLS endpoint. */
void agent_sock_print_qemu_tls(const struct ccid_bridge_addr *addr,
			       gboolean agent_listens);

G_END_DECLS

#endif /* CCID_AGENT_SOCK_OPTIONS_H */
