/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Socket endpoints for any usbredir session, not just an emulated reader:
 * listen on / connect to a "unix:PATH" or "tcp:HOST:PORT" address (parsed
 * by ccid_bridge_addr_parse()) and hand each connected socket to an
 * attach callback.  One peer at a time: while the session says it is
 * attached, new peers are refused (listen) or no connection is tried
 * (connect).  `ccid-agent passthrough` uses it; ccid_bridge_socket.c has
 * the same behaviour wired to ccid_bridge.
 */
#ifndef CCID_EMU_CCID_ENDPOINT_H
#define CCID_EMU_CCID_ENDPOINT_H

#include <glib.h>

#include "ccid_bridge.h"

G_BEGIN_DECLS

struct ccid_endpoint_session {
	/* Takes ownership of @fd in every case; FALSE (with @error) refuses
	 * the peer. */
	gboolean (*attach)(void *user, int fd, const char *peer,
			   GError **error);
	gboolean (*is_attached)(void *user);
};

typedef struct ccid_endpoint ccid_endpoint;

/* Same semantics as ccid_bridge_listen() / ccid_bridge_connect(); errors
 * are in CCID_BRIDGE_ERROR.  @session is copied. */
ccid_endpoint *ccid_endpoint_listen(const struct ccid_endpoint_session *session,
				    void *user,
				    const struct ccid_bridge_addr *addr,
				    GError **error);
ccid_endpoint *ccid_endpoint_connect(const struct ccid_endpoint_session *session,
				     void *user,
				     const struct ccid_bridge_addr *addr,
				     unsigned retry_ms, GError **error);
/* Accepts NULL; removes a unix socket file it created. */
void ccid_endpoint_free(ccid_endpoint *ep);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_endpoint, ccid_endpoint_free)

/* "unix:PATH", "tcp:HOST:PORT" or "tcp:[V6]:PORT". */
char *ccid_endpoint_addr_describe(const struct ccid_bridge_addr *addr);

G_END_DECLS

#endif /* CCID_EMU_CCID_ENDPOINT_H */
