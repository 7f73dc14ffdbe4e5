/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Listen and connect endpoints with an attach callback (see
 * ccid_endpoint.h).  The behaviour is ccid_bridge_socket.c's: a stale unix
 * socket is replaced, a live one is an error, a second peer is refused,
 * connect retries until the peer is there and after it goes away.  Who may
 * connect: unix peers of our uid (or the allowed group), tcp only on
 * loopback unless TLS checks certificates (ccid_sock_access.c, ccid_tls.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
#include <gio/gunixsocketaddress.h>

#include "ccid_endpoint.h"
#include "ccid_sock_access.h"
#include "ccid_tls.h"

struct ccid_endpoint {
	struct ccid_endpoint_session session;
	void *user;
	struct ccid_bridge_addr addr;
	int listen_fd;
	ccid_acceptor *acceptor;
	bool unlink_path;       /* we created the unix socket file */
	dev_t sock_dev;         /* ... and this is it */
	ino_t sock_ino;
	unsigned retry_ms;
	guint retry_id;
	char *last_warning;     /* said once until something else happens */
	ccid_tls_creds *tls;    /* NULL: plain */
	GCancellable *cancel;   /* pending connects and handshakes */
	GSocketClient *client;  /* connect mode */
	bool connecting;        /* a connect or handshake is under way */
	guint handshakes;       /* TLS handshakes under way (listen) */
	GList *waiting;         /* struct first_words: plain tcp peers */
};

/* A peer must finish its TLS handshake this fast, and no more than this
 * many may be at it at once. */
#define TLS_HANDSHAKE_TIMEOUT_MS 10000u
#define TLS_MAX_HANDSHAKES 4u
/* A plain tcp peer must say its first words (the usbredir hello) this
 * fast; a TLS client waiting for our ClientHello never would. */
#define FIRST_WORDS_TIMEOUT_MS 5000u
/* A connect that neither succeeds nor fails is given up after this. */
#define CONNECT_TIMEOUT_S 10u

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

static void endpoint_attach(ccid_endpoint *ep, int fd, const char *peer);
static void connected_fd(ccid_endpoint *ep, int fd, const char *peer);
static void connect_warn(ccid_endpoint *ep, char *msg);

/* ---- plain tcp: the peer speaks first ------------------------------------ */

/* A plain tcp peer is handed over once its first bytes arrive, so that a
 * TLS peer (whose first bytes are a TLS record) or a silent one (a TLS
 * server waiting for a ClientHello) is told apart from usbredir with a
 * message that names the fix. */
struct first_words {
	ccid_endpoint *ep;
	int fd;
	bool connect;           /* connect mode: failures go to connect_warn */
	char *peer;
	GSource *io;
	GSource *timer;
};

static void first_words_free(struct first_words *fw)
{
	if (fw->io != NULL) {
		g_source_destroy(fw->io);
		g_source_unref(fw->io);
	}
	if (fw->timer != NULL) {
		g_source_destroy(fw->timer);
		g_source_unref(fw->timer);
	}
	if (fw->fd >= 0)
		close(fw->fd);
	g_free(fw->peer);
	g_free(fw);
}

/* Ends the wait: hands @fd on (@why NULL) or refuses the peer. */
static void first_words_end(struct first_words *fw, char *why)
{
	ccid_endpoint *ep = fw->ep;
	int fd = fw->fd;
	bool connect = fw->connect;
	g_autofree char *peer = g_steal_pointer(&fw->peer);

	ep->waiting = g_list_remove(ep->waiting, fw);
	fw->fd = -1;
	first_words_free(fw);
	if (why != NULL) {
		close(fd);
		if (connect) {
			connect_warn(ep, why);
		} else {
			g_message("refused connection from %s: %s", peer, why);
			g_free(why);
		}
		return;
	}
	if (connect)
		connected_fd(ep, fd, peer);
	else
		endpoint_attach(ep, fd, peer);
}

static gboolean first_words_cb(gint fd, GIOCondition cond, gpointer data)
{
	struct first_words *fw = data;
	guint8 head[3];
	ssize_t n = recv(fd, head, sizeof(head), MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return G_SOURCE_CONTINUE;
	if (n <= 0) {
		first_words_end(fw, g_strdup_printf(
			"%s closed the connection before saying anything (%s); "
			"if it expects TLS, add --tls-creds DIR (see "
			"docs/remote-reader.md)",
			fw->peer, n == 0 ? "end of stream" : g_strerror(errno)));
		return G_SOURCE_REMOVE;
	}
	/* A TLS handshake record: content type 22, version 3.x. */
	if (head[0] == 0x16 && (n < 2 || head[1] == 0x03)) {
		first_words_end(fw, g_strdup_printf(
			"%s speaks TLS and this socket is plain: add "
			"--tls-creds DIR (see docs/remote-reader.md)", fw->peer));
		return G_SOURCE_REMOVE;
	}
	first_words_end(fw, NULL);
	return G_SOURCE_REMOVE;
}

static gboolean first_words_timeout_cb(gpointer data)
{
	struct first_words *fw = data;

	first_words_end(fw, g_strdup_printf(
		"%s sent nothing within %u ms; a QEMU chardev with tls-creds= "
		"waits for a TLS client: add --tls-creds DIR (see "
		"docs/remote-reader.md)", fw->peer, FIRST_WORDS_TIMEOUT_MS));
	return G_SOURCE_REMOVE;
}

static void first_words_wait(ccid_endpoint *ep, int fd, const char *peer,
			     bool connect)
{
	struct first_words *fw;

	if (g_list_length(ep->waiting) >= TLS_MAX_HANDSHAKES) {
		g_message("refused connection from %s: too many peers that "
			  "have not spoken yet", peer);
		close(fd);
		return;
	}
	fw = g_new0(struct first_words, 1);
	fw->ep = ep;
	fw->fd = fd;
	fw->connect = connect;
	fw->peer = g_strdup(peer);
	fw->io = g_unix_fd_source_new(fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
	g_source_set_callback(fw->io, G_SOURCE_FUNC(first_words_cb), fw, NULL);
	g_source_attach(fw->io, NULL);
	fw->timer = g_timeout_source_new(FIRST_WORDS_TIMEOUT_MS);
	g_source_set_callback(fw->timer, first_words_timeout_cb, fw, NULL);
	g_source_attach(fw->timer, NULL);
	ep->waiting = g_list_prepend(ep->waiting, fw);
}

static void endpoint_attach(ccid_endpoint *ep, int fd, const char *peer)
{
	g_autoptr(GError) error = NULL;

	/* One VM at a time: a second QEMU is refused, the first keeps the
	 * reader. */
	if (!ep->session.attach(ep->user, fd, peer, &error))
		g_message("refused connection from %s: %s", peer, error->message);
}

static void listen_tls_done(gpointer user, int fd, const char *peer,
			    const GError *error)
{
	ccid_endpoint *ep = user;

	ep->handshakes--;
	if (fd < 0) {
		g_message("%s", error->message);
		return;
	}
	endpoint_attach(ep, fd, peer);
}

static void endpoint_accepted(gpointer data, int cfd)
{
	ccid_endpoint *ep = data;
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	g_autofree char *peer = NULL;
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (ep->addr.kind == CCID_ADDR_UNIX) {
		g_autofree char *why = NULL;

		peer = ccid_endpoint_addr_describe(&ep->addr);
		if (!ccid_sock_peer_allowed(cfd, &ep->addr.access, &why)) {
			g_message("refused connection on %s: %s", peer, why);
			close(cfd);
			return;
		}
		endpoint_attach(ep, cfd, peer);
		return;
	}
	if (getpeername(cfd, (struct sockaddr *)&ss, &sl) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		peer = g_strdup_printf("tcp:%s:%s", host, serv);
	else
		peer = g_strdup("tcp peer");
	socket_tune(cfd, ss.ss_family);
	if (ep->tls != NULL) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GSocket) sock = NULL;
		g_autoptr(GSocketConnection) conn = NULL;

		if (ep->handshakes >= TLS_MAX_HANDSHAKES ||
		    ep->session.is_attached(ep->user)) {
			g_message("refused connection from %s: %s", peer,
				  ep->handshakes >= TLS_MAX_HANDSHAKES ?
				  "too many TLS handshakes under way" :
				  "a peer is already attached");
			close(cfd);
			return;
		}
		sock = g_socket_new_from_fd(cfd, &error);
		if (sock == NULL) {
			close(cfd);
			g_message("refused connection from %s: %s", peer,
				  error->message);
			return;
		}
		conn = g_socket_connection_factory_create_connection(sock);
		ep->handshakes++;
		ccid_tls_start(ep->tls, conn, NULL, 0, peer,
			       TLS_HANDSHAKE_TIMEOUT_MS, ep->cancel,
			       listen_tls_done, ep);
		return;
	}
	first_words_wait(ep, cfd, peer, false);
}

static bool sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return in6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

static int listen_tcp(ccid_endpoint *ep, GError **error)
{
	struct addrinfo *res = addr_resolve(&ep->addr, true, error), *ai;
	int fd = -1, e = 0, one = 1;

	if (!res)
		return -1;
	/* Without TLS anyone who reaches the port gets the card: only this
	 * machine may. */
	for (ai = res; ai && ep->tls == NULL; ai = ai->ai_next) {
		if (!sockaddr_is_loopback(ai->ai_addr)) {
			g_autofree char *where = ccid_endpoint_addr_describe(&ep->addr);

			freeaddrinfo(res);
			g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
				    "refusing to listen on %s without TLS: anyone "
				    "who can reach that address could use the card "
				    "(sign with its keys, try its PIN). Listen on "
				    "tcp:127.0.0.1:%u (a loopback address), or add "
				    "--tls-creds DIR so peers need a certificate "
				    "(see docs/remote-reader.md)", where,
				    ep->addr.port);
			return -1;
		}
	}
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
	dst->tls_dir = g_strdup(src->tls_dir);
	dst->access = src->access;
}

static ccid_endpoint *endpoint_new(const struct ccid_endpoint_session *session,
				   void *user, const struct ccid_bridge_addr *addr,
				   bool server, GError **error)
{
	ccid_endpoint *ep = g_new0(ccid_endpoint, 1);

	ep->session = *session;
	ep->user = user;
	ep->listen_fd = -1;
	ep->cancel = g_cancellable_new();
	addr_copy(&ep->addr, addr);
	if (addr->tls_dir != NULL) {
		if (addr->kind != CCID_ADDR_TCP) {
			g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_ADDRESS,
				    "--tls-creds is for tcp: addresses; a unix "
				    "socket is reachable only by its owner "
				    "(and --allow-group)");
			ccid_endpoint_free(ep);
			return NULL;
		}
		ep->tls = ccid_tls_creds_load(addr->tls_dir, server, error);
		if (ep->tls == NULL) {
			ccid_endpoint_free(ep);
			return NULL;
		}
	}
	return ep;
}

ccid_endpoint *ccid_endpoint_listen(const struct ccid_endpoint_session *session,
				    void *user,
				    const struct ccid_bridge_addr *addr,
				    GError **error)
{
	ccid_endpoint *ep = endpoint_new(session, user, addr, true, error);
	g_autofree char *what = NULL;

	if (ep == NULL)
		return NULL;
	if (addr->kind == CCID_ADDR_UNIX) {
		g_autoptr(GError) local = NULL;
		static const int codes[] = {
			[CCID_SOCK_ERROR_ADDRESS] = CCID_BRIDGE_ERROR_ADDRESS,
			[CCID_SOCK_ERROR_SOCKET] = CCID_BRIDGE_ERROR_SOCKET,
			[CCID_SOCK_ERROR_BUSY] = CCID_BRIDGE_ERROR_BUSY,
		};

		ep->listen_fd = ccid_sock_listen_unix(addr->path, &addr->access,
						      "socket", 4, &ep->sock_dev,
						      &ep->sock_ino, &local);
		ep->unlink_path = ep->listen_fd >= 0;
		if (local != NULL)
			g_set_error_literal(error, CCID_BRIDGE_ERROR,
					    (guint)local->code < G_N_ELEMENTS(codes) ?
					    codes[local->code] : CCID_BRIDGE_ERROR_SOCKET,
					    local->message);
	} else {
		ep->listen_fd = listen_tcp(ep, error);
	}
	if (ep->listen_fd < 0) {
		ccid_endpoint_free(ep);
		return NULL;
	}
	what = ccid_endpoint_addr_describe(addr);
	ep->acceptor = ccid_acceptor_new(ep->listen_fd, false, what,
					 endpoint_accepted, ep);
	return ep;
}

/* ---- connect ----------------------------------------------------------- */

/* Says why the peer cannot be reached, once until the reason changes. */
static void connect_warn(ccid_endpoint *ep, char *msg)
{
	ep->connecting = false;
	if (g_strcmp0(msg, ep->last_warning) != 0)
		g_message("%s; retrying every %u ms", msg, ep->retry_ms);
	g_free(ep->last_warning);
	ep->last_warning = msg;
}

static void connect_failed(ccid_endpoint *ep, const char *msg)
{
	g_autofree char *where = ccid_endpoint_addr_describe(&ep->addr);

	connect_warn(ep, g_strdup_printf("cannot connect to %s (%s)", where, msg));
}

static void connected_fd(ccid_endpoint *ep, int fd, const char *peer)
{
	g_autoptr(GError) error = NULL;

	ep->connecting = false;
	g_clear_pointer(&ep->last_warning, g_free);
	if (!ep->session.attach(ep->user, fd, peer, &error))
		g_message("connected to %s but cannot serve it: %s", peer,
			  error->message);
}

static void connect_tls_done(gpointer user, int fd, const char *peer,
			     const GError *error)
{
	ccid_endpoint *ep = user;

	if (fd < 0) {
		connect_warn(ep, g_strdup(error->message));
		return;
	}
	connected_fd(ep, fd, peer);
}

static void on_connected(GObject *src, GAsyncResult *res, gpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocketConnection) conn = NULL;
	g_autofree char *where = NULL;
	ccid_endpoint *ep;
	GSocket *sock;
	int fd;

	conn = g_socket_client_connect_finish(G_SOCKET_CLIENT(src), res, &error);
	if (conn == NULL &&
	    g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return;          /* the endpoint is gone: do not touch it */
	ep = data;
	if (conn == NULL) {
		connect_failed(ep, error->message);
		return;
	}
	where = ccid_endpoint_addr_describe(&ep->addr);
	sock = g_socket_connection_get_socket(conn);
	/* The connect timeout must not become an idle timeout. */
	g_socket_set_timeout(sock, 0);
	if (ep->addr.kind == CCID_ADDR_TCP) {
		GSocketFamily family = g_socket_get_family(sock);

		socket_tune(g_socket_get_fd(sock),
			    family == G_SOCKET_FAMILY_IPV6 ? AF_INET6 : AF_INET);
	}
	if (ep->tls != NULL) {
		ccid_tls_start(ep->tls, conn, ep->addr.host, ep->addr.port, where,
			       TLS_HANDSHAKE_TIMEOUT_MS, ep->cancel,
			       connect_tls_done, ep);
		return;
	}
	/* The session works on a plain descriptor of its own. */
	fd = fcntl(g_socket_get_fd(sock), F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		connect_failed(ep, g_strerror(errno));
		return;
	}
	g_unix_set_fd_nonblocking(fd, FALSE, NULL);
	if (ep->addr.kind == CCID_ADDR_TCP)
		first_words_wait(ep, fd, where, true);
	else
		connected_fd(ep, fd, where);
}

static void endpoint_try_connect(ccid_endpoint *ep)
{
	g_autoptr(GSocketConnectable) target = NULL;

	if (ep->connecting || ep->session.is_attached(ep->user))
		return;
	if (ep->addr.kind == CCID_ADDR_UNIX)
		target = G_SOCKET_CONNECTABLE(g_unix_socket_address_new(ep->addr.path));
	else
		target = g_network_address_new(ep->addr.host, ep->addr.port);
	ep->connecting = true;
	/* Resolution and connect run off the main loop: a silent peer or a
	 * slow resolver never stalls the device or the control socket. */
	g_socket_client_connect_async(ep->client, target, ep->cancel,
				      on_connected, ep);
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
	ccid_endpoint *ep = endpoint_new(session, user, addr, false, error);

	if (ep == NULL)
		return NULL;
	ep->retry_ms = retry_ms ? retry_ms : 1000;
	ep->client = g_socket_client_new();
	g_socket_client_set_timeout(ep->client, CONNECT_TIMEOUT_S);
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
	/* Pending connects and handshakes end with CANCELLED and leave the
	 * endpoint alone. */
	if (ep->cancel != NULL) {
		g_cancellable_cancel(ep->cancel);
		g_object_unref(ep->cancel);
	}
	g_clear_object(&ep->client);
	g_list_free_full(g_steal_pointer(&ep->waiting),
			 (GDestroyNotify)first_words_free);
	ccid_acceptor_free(ep->acceptor);
	if (ep->retry_id)
		g_source_remove(ep->retry_id);
	if (ep->listen_fd >= 0)
		close(ep->listen_fd);
	if (ep->unlink_path) {
		struct stat st;

		/* Only remove the file if it is still the socket we made. */
		if (lstat(ep->addr.path, &st) == 0 && st.st_dev == ep->sock_dev &&
		    st.st_ino == ep->sock_ino)
			unlink(ep->addr.path);
	}
	ccid_tls_creds_free(ep->tls);
	g_free(ep->last_warning);
	ccid_bridge_addr_clear(&ep->addr);
	g_free(ep);
}
