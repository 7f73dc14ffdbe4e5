/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Control socket server and client (see agent_control.h).
 */
#define _GNU_SOURCE
#include "agent_control.h"
#include "agent_json.h"
#include "ccid_sock_access.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib/gstdio.h>

/* A client that lets this much of our output pile up is not reading. */
#define CONTROL_MAX_OUTPUT (64u * 1024u)
#define CONTROL_MAX_CLIENTS 16u

G_DEFINE_QUARK(agent-control-error-quark, agent_control_error)

typedef struct control_client control_client;

struct agent_control {
	char *path;
	int fd;
	ccid_acceptor *acceptor;
	GMainContext *ctx;
	agent_control_fn fn;
	void *user;
	dev_t sock_dev;
	ino_t sock_ino;
	gboolean made_file;
	GList *clients;               /* control_client *, open ones */
};

struct control_client {
	gint refs;
	agent_control *ctl;           /* NULL once closed */
	int fd;
	GSource *src;
	GIOCondition cond;
	GByteArray *in;
	GString *out;
	gboolean busy;                /* a request is being handled */
	gboolean dispatching;         /* inside client_dispatch() */
	gboolean eof;                 /* no more input; close when done */
	gboolean overflow;            /* line too long: close after reply */
};

struct agent_control_request {
	control_client *client;
};

static void client_update(control_client *c);

static control_client *client_ref(control_client *c)
{
	g_atomic_int_inc(&c->refs);
	return c;
}

static void client_unref(control_client *c)
{
	if (!g_atomic_int_dec_and_test(&c->refs))
		return;
	g_byte_array_unref(c->in);
	g_string_free(c->out, TRUE);
	g_free(c);
}

static void client_close(control_client *c)
{
	if (c->ctl == NULL)
		return;
	c->ctl->clients = g_list_remove(c->ctl->clients, c);
	c->ctl = NULL;
	if (c->src != NULL) {
		g_source_destroy(c->src);
		g_source_unref(c->src);
		c->src = NULL;
	}
	close(c->fd);
	c->fd = -1;
	client_unref(c);             /* the server's reference */
}

/* Writes what the socket takes now; FALSE if the client is gone. */
static gboolean client_flush(control_client *c)
{
	while (c->out->len > 0) {
		ssize_t n = send(c->fd, c->out->str, c->out->len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return FALSE;
		g_string_erase(c->out, 0, n);
	}
	return c->out->len <= CONTROL_MAX_OUTPUT;
}

static void client_dispatch(control_client *c)
{
	c->dispatching = TRUE;
	while (c->ctl != NULL && !c->busy) {
		/* A newline only counts within the longest line: bytes read
		 * while a request was handled can hold a longer one.  (An
		 * empty GByteArray may have no buffer at all.) */
		guint8 *nl = c->in->len > 0 ?
			     memchr(c->in->data, '\n',
				    MIN(c->in->len, AGENT_CONTROL_MAX_LINE)) :
			     NULL;
		g_autofree char *line = NULL;
		g_auto(GStrv) words = NULL;
		g_autoptr(GPtrArray) argv = NULL;
		agent_control_request *req;
		gsize len;

		if (nl == NULL) {
			if (c->in->len >= AGENT_CONTROL_MAX_LINE) {
				g_autofree char *msg = g_strdup_printf(
					"command line longer than %u bytes",
					AGENT_CONTROL_MAX_LINE - 1);
				g_autofree char *json = agent_json_error(msg);

				g_string_append(c->out, json);
				g_string_append_c(c->out, '\n');
				c->overflow = TRUE;
				g_byte_array_set_size(c->in, 0);
			}
			break;
		}
		len = (gsize)(nl - c->in->data);
		line = g_strndup((const char *)c->in->data, len);
		g_byte_array_remove_range(c->in, 0, (guint)len + 1);
		words = g_strsplit_set(line, " \t\r", -1);
		argv = g_ptr_array_new();
		for (char **w = words; *w != NULL; w++)
			if (**w != '\0')
				g_ptr_array_add(argv, *w);
		if (argv->len == 0)
			continue;
		g_ptr_array_add(argv, NULL);
		req = g_new0(agent_control_request, 1);
		req->client = client_ref(c);
		c->busy = TRUE;
		c->ctl->fn(c->ctl->user, req, (int)argv->len - 1,
			   (char **)argv->pdata);
	}
	c->dispatching = FALSE;
}

static gboolean client_io_cb(gint fd, GIOCondition cond, gpointer data)
{
	control_client *c = data;

	client_ref(c);
	if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
		guint8 buf[1024];
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0 && !c->overflow)
			g_byte_array_append(c->in, buf, (guint)n);
		else if (n == 0 || (n < 0 && errno != EAGAIN &&
				    errno != EINTR))
			c->eof = TRUE;
		client_dispatch(c);
	}
	client_update(c);
	client_unref(c);
	return G_SOURCE_CONTINUE;
}

/* Flushes, then closes or re-arms the watch for what we wait on next. */
static void client_update(control_client *c)
{
	GIOCondition want = 0;

	if (c->ctl == NULL)
		return;
	if (!client_flush(c)) {
		client_close(c);
		return;
	}
	if ((c->eof || c->overflow) && !c->busy && c->out->len == 0) {
		client_close(c);
		return;
	}
	/* While a request is handled, a client that keeps talking is left
	 * in the socket buffer rather than in ours. */
	if (!c->eof && !c->overflow &&
	    (!c->busy || c->in->len < AGENT_CONTROL_MAX_LINE))
		want |= G_IO_IN;
	if (c->out->len > 0)
		want |= G_IO_OUT;
	if (c->src != NULL && want == c->cond)
		return;
	if (c->src != NULL) {
		g_source_destroy(c->src);
		g_source_unref(c->src);
		c->src = NULL;
	}
	c->cond = want;
	if (want == 0)
		return;    /* waiting for the handler's reply */
	c->src = g_unix_fd_source_new(c->fd, want);
	g_source_set_callback(c->src, G_SOURCE_FUNC(client_io_cb), c, NULL);
	g_source_attach(c->src, c->ctl->ctx);
}

void agent_control_reply(agent_control_request *req, const char *json)
{
	control_client *c = req->client;

	g_free(req);
	c->busy = FALSE;
	if (c->ctl != NULL) {
		g_string_append(c->out, json);
		g_string_append_c(c->out, '\n');
		/* An answer given later picks up the lines queued behind it;
		 * one given inside the handler returns to the dispatch loop. */
		if (!c->dispatching) {
			client_ref(c);
			client_dispatch(c);
			client_update(c);
			client_unref(c);
		}
	}
	client_unref(c);
}

void agent_control_reply_error(agent_control_request *req, const char *fmt,
			       ...)
{
	g_autofree char *msg = NULL;
	g_autofree char *json = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	json = agent_json_error(msg);
	agent_control_reply(req, json);
}

/* --- the listening socket -------------------------------------------------- */

static void control_accepted(gpointer data, int cfd)
{
	agent_control *ctl = data;
	g_autofree char *why = NULL;
	control_client *c;

	/* The socket file is owner-only, but a file mode is one check and
	 * the peer's uid is the other. */
	if (!ccid_sock_peer_allowed(cfd, NULL, &why)) {
		g_message("control socket %s: refused a connection: %s",
			  ctl->path, why);
		close(cfd);
		return;
	}
	if (g_list_length(ctl->clients) >= CONTROL_MAX_CLIENTS) {
		static const char busy[] =
			"{\"error\": \"too many control connections\"}\n";

		(void)send(cfd, busy, sizeof(busy) - 1,
			   MSG_NOSIGNAL | MSG_DONTWAIT);
		close(cfd);
		return;
	}
	c = g_new0(control_client, 1);
	c->refs = 1;                  /* the server's */
	c->ctl = ctl;
	c->fd = cfd;
	c->in = g_byte_array_new();
	c->out = g_string_new(NULL);
	ctl->clients = g_list_prepend(ctl->clients, c);
	client_update(c);
}

static gboolean fill_sockaddr(const char *path, struct sockaddr_un *sun,
			      GError **error)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (path == NULL || path[0] == '\0') {
		g_set_error(error, AGENT_CONTROL_ERROR,
			    AGENT_CONTROL_ERROR_ADDRESS,
			    "control socket path is empty");
		return FALSE;
	}
	if (strlen(path) >= sizeof(sun->sun_path)) {
		g_set_error(error, AGENT_CONTROL_ERROR,
			    AGENT_CONTROL_ERROR_ADDRESS,
			    "control socket path %s is longer than %zu bytes",
			    path, sizeof(sun->sun_path) - 1);
		return FALSE;
	}
	g_strlcpy(sun->sun_path, path, sizeof(sun->sun_path));
	return TRUE;
}

agent_control *agent_control_new(const char *path, agent_control_fn fn,
				 void *user, GError **error)
{
	static const int codes[] = {
		[CCID_SOCK_ERROR_ADDRESS] = AGENT_CONTROL_ERROR_ADDRESS,
		[CCID_SOCK_ERROR_SOCKET] = AGENT_CONTROL_ERROR_SOCKET,
		[CCID_SOCK_ERROR_BUSY] = AGENT_CONTROL_ERROR_BUSY,
	};
	g_autoptr(GError) local = NULL;
	struct sockaddr_un sun;
	agent_control *ctl;
	dev_t dev = 0;
	ino_t ino = 0;
	int fd;

	if (!fill_sockaddr(path, &sun, error))
		return NULL;
	/* Owner-only from birth: the umask around bind(), no chmod after. */
	fd = ccid_sock_listen_unix(path, NULL, "control socket", 8, &dev, &ino,
				   &local);
	if (fd < 0) {
		g_set_error_literal(error, AGENT_CONTROL_ERROR,
				    (guint)local->code < G_N_ELEMENTS(codes) ?
				    codes[local->code] : AGENT_CONTROL_ERROR_SOCKET,
				    local->message);
		return NULL;
	}
	ctl = g_new0(agent_control, 1);
	ctl->path = g_strdup(path);
	ctl->fd = fd;
	ctl->fn = fn;
	ctl->user = user;
	ctl->ctx = g_main_context_ref_thread_default();
	ctl->made_file = TRUE;
	ctl->sock_dev = dev;
	ctl->sock_ino = ino;
	ctl->acceptor = ccid_acceptor_new(fd, true, "control socket",
					  control_accepted, ctl);
	return ctl;
}

void agent_control_free(agent_control *ctl)
{
	struct stat st;

	if (ctl == NULL)
		return;
	while (ctl->clients != NULL)
		client_close(ctl->clients->data);
	ccid_acceptor_free(ctl->acceptor);
	close(ctl->fd);
	/* Only remove the file if it is still the socket we made. */
	if (ctl->made_file && lstat(ctl->path, &st) == 0 &&
	    st.st_dev == ctl->sock_dev && st.st_ino == ctl->sock_ino)
		unlink(ctl->path);
	g_main_context_unref(ctl->ctx);
	g_free(ctl->path);
	g_free(ctl);
}

const char *agent_control_get_path(const agent_control *ctl)
{
	return ctl->path;
}

char *agent_control_default_path(void)
{
	return g_build_filename(g_get_user_runtime_dir(), "ccid-emu",
				"ccid0.ctl", NULL);
}

/* --- client ------------------------------------------------------------------ */

static gboolean wait_fd(int fd, short events, gint64 deadline, GError **error)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;
		int rc;

		if (left <= 0) {
			g_set_error(error, AGENT_CONTROL_ERROR,
				    AGENT_CONTROL_ERROR_TIMED_OUT,
				    "no reply from the agent in time");
			return FALSE;
		}
		rc = poll(&pfd, 1, (int)MIN(left, G_MAXINT));
		if (rc > 0)
			return TRUE;
		if (rc < 0 && errno != EINTR) {
			g_set_error(error, AGENT_CONTROL_ERROR,
				    AGENT_CONTROL_ERROR_SOCKET, "poll: %s",
				    g_strerror(errno));
			return FALSE;
		}
	}
}

char *agent_control_call(const char *path, const char *line,
			 unsigned timeout_ms, GError **error)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	g_autoptr(GString) msg = g_string_new(line);
	g_autoptr(GString) reply = g_string_new(NULL);
	struct sockaddr_un sun;
	gsize sent = 0;
	int fd, e;

	if (!fill_sockaddr(path, &sun, error))
		return NULL;
	g_string_append_c(msg, '\n');
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		e = errno;
		if (fd >= 0)
			close(fd);
		g_set_error(error, AGENT_CONTROL_ERROR,
			    e == ENOENT || e == ECONNREFUSED ?
			    AGENT_CONTROL_ERROR_NOT_RUNNING :
			    AGENT_CONTROL_ERROR_SOCKET,
			    "cannot connect to control socket %s: %s%s", path,
			    g_strerror(e),
			    e == ENOENT || e == ECONNREFUSED ?
			    " (is 'ccid-agent serve' running?)" : "");
		return NULL;
	}
	while (sent < msg->len) {
		ssize_t n = send(fd, msg->str + sent, msg->len - sent,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = errno;
			close(fd);
			g_set_error(error, AGENT_CONTROL_ERROR,
				    AGENT_CONTROL_ERROR_SOCKET,
				    "cannot send to %s: %s", path,
				    g_strerror(e));
			return NULL;
		}
		sent += (gsize)n;
	}
	for (;;) {
		char buf[4096];
		char *nl;
		ssize_t n;

		if (!wait_fd(fd, POLLIN, deadline, error)) {
			close(fd);
			return NULL;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			g_set_error(error, AGENT_CONTROL_ERROR,
				    AGENT_CONTROL_ERROR_PROTOCOL,
				    "the agent closed %s without a reply",
				    path);
			return NULL;
		}
		g_string_append_len(reply, buf, n);
		/* Every reply is a JSON object: anything else means this
		 * is some other socket, such as the usbredir one, and no
		 * newline may ever come. */
		if (reply->str[0] != '{') {
			close(fd);
			g_set_error(error, AGENT_CONTROL_ERROR,
				    AGENT_CONTROL_ERROR_PROTOCOL,
				    "%s does not answer like a ccid-agent "
				    "control socket (is it the usbredir "
				    "socket?)", path);
			return NULL;
		}
		nl = memchr(reply->str, '\n', reply->len);
		if (nl != NULL) {
			g_string_truncate(reply, (gsize)(nl - reply->str));
			break;
		}
		if (reply->len > CONTROL_MAX_OUTPUT) {
			close(fd);
			g_set_error(error, AGENT_CONTROL_ERROR,
				    AGENT_CONTROL_ERROR_PROTOCOL,
				    "reply from %s is longer than %u bytes",
				    path, CONTROL_MAX_OUTPUT);
			return NULL;
		}
	}
	close(fd);
	return g_string_free(g_steal_pointer(&reply), FALSE);
}
