/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Socket addresses ("unix:PATH", "tcp:HOST:PORT") and the two ways to meet
 * QEMU: listen (QEMU's chardev connects, possibly with reconnect=) or
 * connect (QEMU's chardev is a server).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "ccid_bridge.h"
#include "ccid_endpoint.h"

void ccid_bridge_addr_clear(struct ccid_bridge_addr *addr)
{
	g_clear_pointer(&addr->path, g_free);
	g_clear_pointer(&addr->host, g_free);
	g_clear_pointer(&addr->tls_dir, g_free);
	addr->port = 0;
}

gboolean ccid_bridge_addr_parse(const char *spec, struct ccid_bridge_addr *addr,
				GError **error)
{
	const char *rest, *colon;
	char *end = NULL;
	unsigned long port;

	memset(addr, 0, sizeof(*addr));
	if (!spec || !*spec) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
			    "empty socket address; use unix:PATH or tcp:HOST:PORT");
		return FALSE;
	}
	if (g_str_has_prefix(spec, "unix:")) {
		struct sockaddr_un sun;

		rest = spec + 5;
		if (!*rest) {
			g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
				    "'%s': unix socket path is empty", spec);
			return FALSE;
		}
		if (strlen(rest) >= sizeof(sun.sun_path)) {
			g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
				    "'%s': unix socket path is longer than %zu bytes",
				    spec, sizeof(sun.sun_path) - 1);
			return FALSE;
		}
		addr->kind = CCID_ADDR_UNIX;
		addr->path = g_strdup(rest);
		return TRUE;
	}
	if (!g_str_has_prefix(spec, "tcp:")) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
			    "'%s': unknown socket address kind; use unix:PATH or "
			    "tcp:HOST:PORT", spec);
		return FALSE;
	}
	rest = spec + 4;
	if (*rest == '[') {
		const char *close = strchr(rest, ']');

		if (!close || close[1] != ':') {
			g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
				    "'%s': expected tcp:[IPV6]:PORT", spec);
			return FALSE;
		}
		addr->host = g_strndup(rest + 1, (gsize)(close - rest - 1));
		colon = close + 1;
	} else {
		colon = strrchr(rest, ':');
		if (!colon) {
			g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
				    "'%s': expected tcp:HOST:PORT", spec);
			return FALSE;
		}
		addr->host = g_strndup(rest, (gsize)(colon - rest));
	}
	if (!*addr->host) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
			    "'%s': host is empty", spec);
		ccid_bridge_addr_clear(addr);
		return FALSE;
	}
	/* One way to write each address, so that what we print reads back
	 * the same (found by fuzz_sock_setup: "tcp:0tcp:[::]:7"). */
	if (strpbrk(addr->host, "[]") != NULL ||
	    (*rest != '[' && strchr(addr->host, ':') != NULL)) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
			    "'%s': an IPv6 address goes in brackets, e.g. "
			    "tcp:[::1]:7000", spec);
		ccid_bridge_addr_clear(addr);
		return FALSE;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port == 0 || port > 65535) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
			    "'%s': port must be a number from 1 to 65535", spec);
		ccid_bridge_addr_clear(addr);
		return FALSE;
	}
	addr->kind = CCID_ADDR_TCP;
	addr->port = (guint16)port;
	return TRUE;
}

/* The bridge is one kind of session an endpoint can feed; passthrough is
 * the other (ccid_endpoint.c holds the socket logic for both). */
struct ccid_bridge_endpoint {
	ccid_endpoint *ep;
};

static gboolean bridge_session_attach(void *user, int fd, const char *peer,
				      GError **error)
{
	return ccid_bridge_attach_fd(user, fd, peer, error);
}

static gboolean bridge_session_is_attached(void *user)
{
	return ccid_bridge_is_attached(user);
}

static const struct ccid_endpoint_session bridge_session = {
	.attach = bridge_session_attach,
	.is_attached = bridge_session_is_attached,
};

static ccid_bridge_endpoint *bridge_endpoint_wrap(ccid_endpoint *ep)
{
	ccid_bridge_endpoint *bep;

	if (!ep)
		return NULL;
	bep = g_new0(ccid_bridge_endpoint, 1);
	bep->ep = ep;
	return bep;
}

ccid_bridge_endpoint *ccid_bridge_listen(ccid_bridge *bridge,
					 const struct ccid_bridge_addr *addr,
					 GError **error)
{
	return bridge_endpoint_wrap(ccid_endpoint_listen(&bridge_session, bridge,
							 addr, error));
}

ccid_bridge_endpoint *ccid_bridge_connect(ccid_bridge *bridge,
					  const struct ccid_bridge_addr *addr,
					  unsigned retry_ms, GError **error)
{
	return bridge_endpoint_wrap(ccid_endpoint_connect(&bridge_session, bridge,
							  addr, retry_ms, error));
}

void ccid_bridge_endpoint_free(ccid_bridge_endpoint *bep)
{
	if (!bep)
		return;
	ccid_endpoint_free(bep->ep);
	g_free(bep);
}
