/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Listen and connect endpoints with an attach callback (see
 * ccid_endpoint.h).  The behaviour is ccid_bridge_socket.c's: a stale unix
 * socket is replaced, a live one is an error, a second peer is refused,
 * connect retries until the peer is there and after it goes away.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

#include "ccid_endpoint.h"

struct ccid_endpoint {
	struct ccid_endpoint_session session;
	void *user;
	struct ccid_bridge_addr addr;
	int listen_fd;
	guint accept_id;
	bool unlink_path;       /* we created the unix socket file */
	dev_t sock_dev;         /* ... and this is it */
	ino_t sock_ino;
	unsigned retry_ms;
	guint retry_id;
	bool warned_unreachable;
};

char *ccid_endpoint_addr_describe(const struct ccid_bridge_addr *addr)
{
	if (addr->kind == CCID_ADDR_UNIX)
		return g_strdup_printf("unix:%s", addr->path);
	if (strchr(addr->host, ':'))
		return g_strdup_printf("tcp:[%s]:%u", addr->host, addr->port);
	return g_strdup_printf("tcp:%s:%u", addr->host, addr->port);
}

static struct addrinfo *addr_resolve(const struct ccid_bridge_addr *addr,
				     bool passive, GError **error)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	char port[8];
	int rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	g_snprintf(port, sizeof(port), "%u", addr->port);
	rc = getaddrinfo(addr->host, port, &hints, &res);
	if (rc != 0) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
			    "cannot resolve host '%s': %s", addr->host,
			    gai_strerror(rc));
		return NULL;
	}
	return res;
}

static void socket_tune(int fd, int family)
{
	int one = 1;

	/* Replies are small and latency-bound: no Nagle. */
	if (family == AF_INET || family == AF_INET6)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- listen ------------------------------------------------------------ */

static gboolean endpoint_accept_cb(gint fd, GIOCondition cond, gpointer data)
{
	ccid_endpoint *ep = data;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	g_autoptr(GError) error = NULL;
	g_autofree char *peer = NULL;
	int cfd;

	cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (cfd < 0)
		return G_SOURCE_CONTINUE;  /* EAGAIN, ECONNABORTED: try again */
	if (ss.ss_family == AF_UNIX) {
		peer = ccid_endpoint_addr_describe(&ep->addr);
	} else {
		char host[NI_MAXHOST], serv[NI_MAXSERV];

		if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
				sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			peer = g_strdup_printf("tcp:%s:%s", host, serv);
		else
			peer = g_strdup("tcp peer");
	}
	socket_tune(cfd, ss.ss_family);
	/* One VM at a time: a second QEMU is refused, the first keeps the
	 * reader. */
	if (!ep->session.attach(ep->user, cfd, peer, &error))
		g_message("refused connection from %s: %s", peer, error->message);
	return G_SOURCE_CONTINUE;
}

static int listen_unix(ccid_endpoint *ep, GError **error)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = ep->addr.path;
	g_autofree char *dir = g_path_get_dirname(path);
	struct stat st;
	int fd;

	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if (g_mkdir_with_parents(dir, 0700) < 0) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_SOCKET,
			    "cannot create directory %s: %s", dir, g_strerror(errno));
		return -1;
	}
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
				    "%s exists and is not a socket; not replacing it",
				    path);
			return -1;
		}
		/* Someone alive behind it?  Then it is not ours to take. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 &&
		    connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_BUSY,
				    "socket %s is in use by another process "
				    "(another ccid-agent?)", path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, 4) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		g_set_error(error, CCID_BRIDGE_ERROR,
			    e == EADDRINUSE ? CCID_BRIDGE_ERROR_BUSY :
			    CCID_BRIDGE_ERROR_SOCKET,
			    "cannot listen on %s: %s", path, g_strerror(e));
		return -1;
	}
	if (stat(path, &st) == 0) {
		ep->unlink_path = true;
		ep->sock_dev = st.st_dev;
		ep->sock_ino = st.st_ino;
	}
	return fd;
}

static int listen_tcp(ccid_endpoint *ep, GError **error)
{
	struct addrinfo *res = addr_resolve(&ep->addr, true, error), *ai;
	int fd = -1, e = 0, one = 1;

	if (!res)
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
			    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		g_set_error(error, CCID_BRIDGE_ERROR,
			    e == EADDRINUSE ? CCID_BRIDGE_ERROR_BUSY :
			    CCID_BRIDGE_ERROR_SOCKET,
			    "cannot listen on %s:%u: %s", ep->addr.host, ep->addr.port,
			    g_strerror(e));
	return fd;
}

static void addr_copy(struct ccid_bridge_addr *dst,
		      const struct ccid_bridge_addr *src)
{
	dst->kind = src->kind;
	dst->path = g_strdup(src->path);
	dst->host = g_strdup(src->host);
	dst->port = src->port;
}

ccid_endpoint *ccid_endpoint_listen(const struct ccid_endpoint_session *session,
				    void *user,
				    const struct ccid_bridge_addr *addr,
				    GError **error)
{
	ccid_endpoint *ep = g_new0(ccid_endpoint, 1);

	ep->session = *session;
	ep->user = user;
	ep->listen_fd = -1;
	addr_copy(&ep->addr, addr);
	ep->listen_fd = addr->kind == CCID_ADDR_UNIX ? listen_unix(ep, error) :
			listen_tcp(ep, error);
	if (ep->listen_fd < 0) {
		ccid_endpoint_free(ep);
		return NULL;
	}
	ep->accept_id = g_unix_fd_add(ep->listen_fd, G_IO_IN, endpoint_accept_cb, ep);
	return ep;
}

/* ---- connect ----------------------------------------------------------- */

static int connect_once(const struct ccid_bridge_addr *addr, GError **error)
{
	int fd = -1, e = 0;

	if (addr->kind == CCID_ADDR_UNIX) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		g_strlcpy(sun.sun_path, addr->path, sizeof(sun.sun_path));
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			return fd;
		e = errno;
	} else {
		struct addrinfo *res = addr_resolve(addr, false, error), *ai;

		if (!res)
			return -1;
		for (ai = res; ai; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				    ai->ai_protocol);
			if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
				socket_tune(fd, ai->ai_family);
				freeaddrinfo(res);
				return fd;
			}
			e = errno;
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
	}
	if (fd >= 0)
		close(fd);
	g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_SOCKET,
		    "%s", g_strerror(e));
	return -1;
}

static gboolean endpoint_retry_cb(gpointer data);

static void endpoint_try_connect(ccid_endpoint *ep)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *where = ccid_endpoint_addr_describe(&ep->addr);
	int fd;

	if (ep->session.is_attached(ep->user))
		return;
	fd = connect_once(&ep->addr, &error);
	if (fd < 0) {
		if (!ep->warned_unreachable)
			g_message("cannot connect to %s (%s); retrying every %u ms",
				  where, error->message, ep->retry_ms);
		ep->warned_unreachable = true;
		return;
	}
	ep->warned_unreachable = false;
	g_clear_error(&error);
	if (!ep->session.attach(ep->user, fd, where, &error))
		g_message("connected to %s but cannot serve it: %s", where,
			  error->message);
}

static gboolean endpoint_retry_cb(gpointer data)
{
	endpoint_try_connect(data);
	return G_SOURCE_CONTINUE;
}

ccid_endpoint *ccid_endpoint_connect(const struct ccid_endpoint_session *session,
				     void *user,
				     const struct ccid_bridge_addr *addr,
				     unsigned retry_ms, GError **error)
{
	ccid_endpoint *ep;

	if (addr->kind == CCID_ADDR_TCP) {
		/* Catch a host that can never resolve now, not in a loop. */
		struct addrinfo *res = addr_resolve(addr, false, error);

		if (!res)
			return NULL;
		freeaddrinfo(res);
	}
	ep = g_new0(ccid_endpoint, 1);
	ep->session = *session;
	ep->user = user;
	ep->listen_fd = -1;
	ep->retry_ms = retry_ms ? retry_ms : 1000;
	addr_copy(&ep->addr, addr);
	endpoint_try_connect(ep);
	/* While attached the tick is a no-op; once the peer goes away it
	 * reconnects within one period. */
	ep->retry_id = g_timeout_add(ep->retry_ms, endpoint_retry_cb, ep);
	return ep;
}

void ccid_endpoint_free(ccid_endpoint *ep)
{
	if (!ep)
		return;
	if (ep->accept_id)
		g_source_remove(ep->accept_id);
	if (ep->retry_id)
		g_source_remove(ep->retry_id);
	if (ep->listen_fd >= 0)
		close(ep->listen_fd);
	if (ep->unlink_path) {
		struct stat st;

		/* Only remove the file if it is still the socket we made. */
		if (stat(ep->addr.path, &st) == 0 && st.st_dev == ep->sock_dev &&
		    st.st_ino == ep->sock_ino)
			unlink(ep->addr.path);
	}
	ccid_bridge_addr_clear(&ep->addr);
	g_free(ep);
}
