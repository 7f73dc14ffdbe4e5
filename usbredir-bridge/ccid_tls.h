/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TLS for the usbredir endpoints, with GLib's TLS (glib-networking and
 * GnuTLS): x509 certificates in QEMU's tls-creds-x509 directory layout
 * (ca-cert.pem, server-cert.pem + server-key.pem, client-cert.pem +
 * client-key.pem), the peer's certificate always verified against
 * ca-cert.pem, a client certificate required from peers of a server.
 *
 * After the handshake the cleartext is piped (GIO async streams) to one end of a socket pair, and the session gets the other end as if it
 * were the plain socket: the bridge and passthrough code stay fd-based.
 */
#ifndef CCID_EMU_CCID_TLS_H
#define CCID_EMU_CCID_TLS_H

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct ccid_tls_creds ccid_tls_creds;

/* Loads the credentials of @dir for a server (server-cert.pem and
 * server-key.pem required) or a client (client-cert.pem and client-key.pem
 * if present).  ca-cert.pem is always required.  Errors name the file and
 * how to make it. */
ccid_tls_creds *ccid_tls_creds_load(const char *dir, gboolean server,
				    GError **error);
void ccid_tls_creds_free(ccid_tls_creds *creds);   /* accepts NULL */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_tls_creds, ccid_tls_creds_free)
const char *ccid_tls_creds_dir(const ccid_tls_creds *creds);

/* Called once: on success @fd is the cleartext end (owned by the callee)
 * and @peer describes the peer with its certificate's subject; on failure
 * @fd is -1 and @error says what was wrong with whom.  Not called if
 * @cancel was cancelled. */
typedef void (*ccid_tls_done_fn)(gpointer user, int fd, const char *peer,
				 const GError *error);

/* Handshakes on @conn (ours to keep: a server connection when @creds are a
 * server's, else a client one that checks the server's certificate names
 * @server_host) within @timeout_ms, then pipes the cleartext.  @peer names the peer's
 * address in messages. */
void ccid_tls_start(ccid_tls_creds *creds, GSocketConnection *conn,
		    const char *server_host, guint16 server_port,
		    const char *peer, guint timeout_ms, GCancellable *cancel,
		    ccid_tls_done_fn done, gpointer user);

G_END_DECLS

#endif /* CCID_EMU_CCID_TLS_H */
