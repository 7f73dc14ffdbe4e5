/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * --tls-creds and --allow-group (see agent_sock_options.h).
 */
#include "agent_sock_options.h"

#include <stdio.h>

gboolean agent_sock_options_apply(struct ccid_bridge_addr *addr, gboolean listen,
				  const char *tls_dir, const char *group,
				  GError **error)
{
	if (tls_dir != NULL && addr->kind != CCID_ADDR_TCP) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--tls-creds needs a tcp:HOST:PORT address; a unix "
			    "socket is reachable only by your user (and "
			    "--allow-group)");
		return FALSE;
	}
	if (group != NULL && !(listen && addr->kind == CCID_ADDR_UNIX)) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--allow-group applies to a unix --listen socket; "
			    "over tcp: use --tls-creds and client certificates");
		return FALSE;
	}
	if (group != NULL &&
	    !ccid_sock_access_parse_group(group, &addr->access, error))
		return FALSE;
	if (tls_dir != NULL) {
		g_free(addr->tls_dir);
		addr->tls_dir = g_strdup(tls_dir);
	}
	return TRUE;
}

void agent_sock_print_qemu_tls(const struct ccid_bridge_addr *addr,
			       gboolean agent_listens)
{
	/* QEMU's side of the same layout: it is the client when we listen,
	 * and verifies the client's certificate when it listens. */
	printf("# TLS: add to QEMU -object tls-creds-x509,id=tls0,dir=DIR,"
	       "endpoint=%s and tls-creds=tls0 to its -chardev; DIR holds "
	       "ca-cert.pem and %s (docs/remote-reader.md)\n",
	       agent_listens ? "client" : "server,verify-peer=on",
	       agent_listens ? "client-cert.pem, client-key.pem" :
	       "server-cert.pem, server-key.pem");
}
