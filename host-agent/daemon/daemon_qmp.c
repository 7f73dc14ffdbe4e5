/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Asynchronous QMP client (see daemon_qmp.h).
 */
#include "daemon_qmp.h"

#include <errno.h>
#include <gio/gio.h>
#include <gio/gunixfdmessage.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>
#include <unistd.h>

/* QEMU greets at once; anything slower is not a QEMU monitor. */
#define QMP_GREETING_TIMEOUT_MS 3000u
#define QMP_READ_CHUNK 4096u

G_DEFINE_QUARK(daemon-qmp-error-quark, daemon_qmp_error)

struct pending {
	gint64 id;
	char *command;
	gint64 deadline;             /* monotonic microseconds */
	daemon_qmp_reply_fn reply;
	void *user;
};

struct outgoing {
	GBytes *bytes;
	gsize offset;
	int fd;                  /* sent with the first byte; -1 when none */
};

enum qmp_phase { QMP_CONNECTING, QMP_GREETING, QMP_NEGOTIATING, QMP_READY,
		 QMP_CLOSED };

struct daemon_qmp {
	char *path;
	struct daemon_qmp_callbacks cbs;
	void *user;
	daemon_qmp_ready_fn ready;
	void *ready_user;

	enum qmp_phase phase;
	GCancellable *cancel;
	GSocketConnection *conn;
	GSocket *sock;
	GSource *in_src;
	GSource *out_src;
	GSource *greet_timer;
	GSource *reply_timer;        /* the oldest command's deadline */
	guint timeout_ms;
	GByteArray *inbuf;
	GQueue out;                  /* struct outgoing */
	GQueue pending;              /* struct pending, in id order */
	gint64 next_id;
};

/* The string member @name of @obj, or NULL when absent or not a string
 * (json-glib's own getters complain on a wrong type; QEMU's bytes may have
 * any type anywhere). */
const char *daemon_qmp_get_string(JsonObject *obj, const char *name)
{
	JsonNode *n = obj != NULL ? json_object_get_member(obj, name) : NULL;

	if (n == NULL || !JSON_NODE_HOLDS_VALUE(n) ||
	    json_node_get_value_type(n) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(n);
}

static void outgoing_free(struct outgoing *o)
{
	g_bytes_unref(o->bytes);
	if (o->fd >= 0)
		close(o->fd);
	g_free(o);
}

static void destroy_source(GSource **src)
{
	if (*src != NULL) {
		g_source_destroy(*src);
		g_source_unref(*src);
		*src = NULL;
	}
}

static void run_ready(daemon_qmp *q, const GError *error)
{
	daemon_qmp_ready_fn ready = q->ready;

	q->ready = NULL;
	if (ready != NULL)
		ready(q->ready_user, error);
}

/* Fails every pending reply with @error.  Callbacks may call back into
 * the client, so each is taken off the queue first. */
static void fail_pending(daemon_qmp *q, const GError *error)
{
	struct pending *p;

	while ((p = g_queue_pop_head(&q->pending)) != NULL) {
		if (p->reply != NULL)
			p->reply(p->user, NULL, NULL, error);
		g_free(p->command);
		g_free(p);
	}
}

/* Drops the connection.  @error says why; the user hears of it through
 * @ready before negotiation ended, through closed() after. */
static void qmp_close(daemon_qmp *q, const GError *error)
{
	enum qmp_phase was = q->phase;
	struct outgoing *o;

	if (was == QMP_CLOSED)
		return;
	q->phase = QMP_CLOSED;
	destroy_source(&q->in_src);
	destroy_source(&q->out_src);
	destroy_source(&q->greet_timer);
	destroy_source(&q->reply_timer);
	while ((o = g_queue_pop_head(&q->out)) != NULL)
		outgoing_free(o);
	if (q->sock != NULL)
		g_socket_close(q->sock, NULL);
	g_clear_object(&q->sock);
	g_clear_object(&q->conn);
	fail_pending(q, error);
	if (was != QMP_READY)
		run_ready(q, error);
	else if (q->cbs.closed != NULL)
		q->cbs.closed(q->user, error);
}

static void qmp_close_with(daemon_qmp *q, enum daemon_qmp_error code,
			   const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void qmp_close_with(daemon_qmp *q, enum daemon_qmp_error code,
			   const char *fmt, ...)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	error = g_error_new(DAEMON_QMP_ERROR, code, "QMP socket %s: %s",
			    q->path, msg);
	qmp_close(q, error);
}

/* --- writing ---------------------------------------------------------- */

static gboolean on_writable(GSocket *sock, GIOCondition cond, gpointer data);

static void arm_writer(daemon_qmp *q)
{
	if (q->out_src != NULL || g_queue_is_empty(&q->out) || q->sock == NULL)
		return;
	q->out_src = g_socket_create_source(q->sock, G_IO_OUT, NULL);
	g_source_set_callback(q->out_src, (GSourceFunc)(void (*)(void))on_writable,
			      q, NULL);
	g_source_attach(q->out_src, NULL);
}

/* Writes what the socket takes now.  FALSE when the connection failed
 * (and is closed). */
static gboolean flush_out(daemon_qmp *q)
{
	struct outgoing *o;

	while ((o = g_queue_peek_head(&q->out)) != NULL) {
		gsize len;
		const guint8 *data = g_bytes_get_data(o->bytes, &len);
		GOutputVector v = { data + o->offset, len - o->offset };
		GSocketControlMessage *msgs[1];
		g_autoptr(GSocketControlMessage) fdmsg = NULL;
		g_autoptr(GError) error = NULL;
		gssize n;

		if (o->fd >= 0) {
			fdmsg = g_unix_fd_message_new();
			if (!g_unix_fd_message_append_fd(G_UNIX_FD_MESSAGE(fdmsg),
							 o->fd, &error)) {
				qmp_close_with(q, DAEMON_QMP_ERROR_PROTOCOL,
					       "cannot pass a descriptor: %s",
					       error->message);
				return FALSE;
			}
			msgs[0] = fdmsg;
		}
		n = g_socket_send_message(q->sock, NULL, &v, 1,
					  o->fd >= 0 ? msgs : NULL,
					  o->fd >= 0 ? 1 : 0, 0, NULL, &error);
		if (n < 0) {
			if (g_error_matches(error, G_IO_ERROR,
					    G_IO_ERROR_WOULD_BLOCK))
				return TRUE;
			qmp_close_with(q, DAEMON_QMP_ERROR_CLOSED,
				       "write failed: %s", error->message);
			return FALSE;
		}
		/* The descriptor went with the first byte: ours is a copy
		 * QEMU now has too. */
		if (o->fd >= 0) {
			close(o->fd);
			o->fd = -1;
		}
		o->offset += (gsize)n;
		if (o->offset < len)
			return TRUE;
		outgoing_free(g_queue_pop_head(&q->out));
	}
	return TRUE;
}

static gboolean on_writable(GSocket *sock, GIOCondition cond, gpointer data)
{
	daemon_qmp *q = data;

	if (!flush_out(q))
		return G_SOURCE_REMOVE;    /* closed: source already gone */
	if (!g_queue_is_empty(&q->out))
		return G_SOURCE_CONTINUE;
	g_source_unref(q->out_src);
	q->out_src = NULL;
	return G_SOURCE_REMOVE;
}

static void queue_message(daemon_qmp *q, JsonNode *msg, int fd)
{
	g_autofree char *text = json_to_string(msg, FALSE);
	struct outgoing *o = g_new0(struct outgoing, 1);
	GString *line = g_string_new(text);

	g_string_append_c(line, '\n');
	o->bytes = g_string_free_to_bytes(line);
	o->fd = fd;
	g_queue_push_tail(&q->out, o);
	if (flush_out(q))
		arm_writer(q);
}

static gboolean on_reply_timeout(gpointer data);

/* The timer follows the oldest command still unanswered (QEMU answers in
 * order). */
static void arm_reply_timer(daemon_qmp *q)
{
	struct pending *p = g_queue_peek_head(&q->pending);
	gint64 left;

	destroy_source(&q->reply_timer);
	if (p == NULL || q->phase == QMP_CLOSED)
		return;
	left = p->deadline - g_get_monotonic_time();
	q->reply_timer = g_timeout_source_new(left > 0 ?
		(guint)((left + 999) / 1000) : 0);
	g_source_set_callback(q->reply_timer, on_reply_timeout, q, NULL);
	g_source_attach(q->reply_timer, NULL);
}

/* A monitor that stops answering is as good as gone: the connection is
 * dropped, every command waiting fails, and the owner hears closed(). */
static gboolean on_reply_timeout(gpointer data)
{
	daemon_qmp *q = data;
	struct pending *p = g_queue_peek_head(&q->pending);
	g_autofree char *command = p != NULL ? g_strdup(p->command) : NULL;

	g_source_unref(q->reply_timer);
	q->reply_timer = NULL;
	if (p == NULL)
		return G_SOURCE_REMOVE;
	if (g_get_monotonic_time() < p->deadline) {
		arm_reply_timer(q);
		return G_SOURCE_REMOVE;
	}
	qmp_close_with(q, DAEMON_QMP_ERROR_TIMEOUT, "QEMU did not answer "
		       "'%s' within %u ms (is it stopped or hung?)", command,
		       q->timeout_ms);
	return G_SOURCE_REMOVE;
}

void daemon_qmp_set_timeout(daemon_qmp *qmp, guint ms)
{
	qmp->timeout_ms = ms;
}

static void send_command(daemon_qmp *q, const char *command, JsonObject *args,
			 int fd, daemon_qmp_reply_fn reply, void *user)
{
	g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
	JsonObject *obj = json_object_new();
	struct pending *p = g_new0(struct pending, 1);

	p->id = q->next_id++;
	p->command = g_strdup(command);
	p->deadline = g_get_monotonic_time() + (gint64)q->timeout_ms * 1000;
	p->reply = reply;
	p->user = user;
	json_object_set_string_member(obj, "execute", command);
	if (args != NULL)
		json_object_set_object_member(obj, "arguments", args);
	json_object_set_int_member(obj, "id", p->id);
	json_node_take_object(node, obj);
	g_queue_push_tail(&q->pending, p);
	if (q->reply_timer == NULL)
		arm_reply_timer(q);
	queue_message(q, node, fd);
}

void daemon_qmp_execute(daemon_qmp *qmp, const char *command, JsonObject *args,
			int fd, daemon_qmp_reply_fn reply, void *user)
{
	if (qmp->phase != QMP_READY) {
		g_autoptr(GError) error = g_error_new(DAEMON_QMP_ERROR,
			DAEMON_QMP_ERROR_CLOSED,
			"QMP socket %s is not connected", qmp->path);

		if (args != NULL)
			json_object_unref(args);
		if (fd >= 0)
			close(fd);
		if (reply != NULL)
			reply(user, NULL, NULL, error);
		return;
	}
	send_command(qmp, command, args, fd, reply, user);
}

gboolean daemon_qmp_is_connected(const daemon_qmp *qmp)
{
	return qmp != NULL && qmp->phase == QMP_READY;
}

/* --- reading ---------------------------------------------------------- */

static void on_capabilities(void *user, JsonNode *ret, const char *qmp_class,
			    const GError *error)
{
	daemon_qmp *q = user;

	if (error != NULL) {
		if (q->phase != QMP_CLOSED)
			qmp_close_with(q, DAEMON_QMP_ERROR_NOT_QMP,
				       "qmp_capabilities refused: %s",
				       error->message);
		return;
	}
	q->phase = QMP_READY;
	run_ready(q, NULL);
}

/* A reply: match its id against the oldest pending command. */
static gboolean handle_reply(daemon_qmp *q, JsonObject *obj)
{
	struct pending *p;
	JsonNode *id = json_object_get_member(obj, "id");
	g_autoptr(GError) error = NULL;
	const char *cls = NULL;

	p = g_queue_peek_head(&q->pending);
	if (p == NULL || id == NULL || JSON_NODE_TYPE(id) != JSON_NODE_VALUE ||
	    json_node_get_value_type(id) != G_TYPE_INT64 ||
	    json_node_get_int(id) != p->id) {
		qmp_close_with(q, DAEMON_QMP_ERROR_PROTOCOL,
			       "a reply to a command we did not send");
		return FALSE;
	}
	g_queue_pop_head(&q->pending);
	arm_reply_timer(q);
	if (json_object_has_member(obj, "error")) {
		JsonNode *e = json_object_get_member(obj, "error");
		JsonObject *eo = JSON_NODE_HOLDS_OBJECT(e) ?
				 json_node_get_object(e) : NULL;
		const char *desc = daemon_qmp_get_string(eo, "desc");

		cls = daemon_qmp_get_string(eo, "class");
		error = g_error_new(DAEMON_QMP_ERROR, DAEMON_QMP_ERROR_COMMAND,
				    "%s", desc != NULL ? desc :
				    "QEMU refused the command (no reason given)");
		if (p->reply != NULL)
			p->reply(p->user, NULL, cls, error);
	} else if (p->reply != NULL) {
		p->reply(p->user, json_object_get_member(obj, "return"), NULL,
			 NULL);
	}
	g_free(p->command);
	g_free(p);
	return TRUE;
}

/* One message.  FALSE when the connection was closed because of it. */
static gboolean handle_line(daemon_qmp *q, const char *line, gsize len)
{
	g_autoptr(JsonParser) parser = json_parser_new_immutable();
	g_autoptr(GError) error = NULL;
	JsonNode *root;
	JsonObject *obj;

	if (!json_parser_load_from_data(parser, line, (gssize)len, &error) ||
	    (root = json_parser_get_root(parser)) == NULL ||
	    !JSON_NODE_HOLDS_OBJECT(root)) {
		g_autofree char *shown = g_strndup(line, MIN(len, 60));

		g_strcanon(shown, "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				  " {}[]\":,._-", '?');
		qmp_close_with(q, q->phase == QMP_GREETING ?
				  DAEMON_QMP_ERROR_NOT_QMP :
				  DAEMON_QMP_ERROR_PROTOCOL,
			       "%s a JSON object: \"%s\"%s",
			       q->phase == QMP_GREETING ?
			       "is not a QEMU monitor (-qmp): its greeting is not" :
			       "received something that is not",
			       shown, len > 60 ? "..." : "");
		return FALSE;
	}
	obj = json_node_get_object(root);
	if (q->phase == QMP_GREETING) {
		if (!json_object_has_member(obj, "QMP")) {
			qmp_close_with(q, DAEMON_QMP_ERROR_NOT_QMP,
				       "is not a QEMU monitor (-qmp): its "
				       "greeting has no \"QMP\" member");
			return FALSE;
		}
		destroy_source(&q->greet_timer);
		q->phase = QMP_NEGOTIATING;
		send_command(q, "qmp_capabilities", NULL, -1, on_capabilities,
			     q);
		return q->phase != QMP_CLOSED;
	}
	if (json_object_has_member(obj, "event")) {
		const char *name = daemon_qmp_get_string(obj, "event");
		JsonNode *d = json_object_get_member(obj, "data");

		if (name != NULL && q->phase == QMP_READY &&
		    q->cbs.event != NULL)
			q->cbs.event(q->user, name,
				     d != NULL && JSON_NODE_HOLDS_OBJECT(d) ?
				     json_node_get_object(d) : NULL);
		return q->phase != QMP_CLOSED;
	}
	if (json_object_has_member(obj, "return") ||
	    json_object_has_member(obj, "error"))
		return handle_reply(q, obj) && q->phase != QMP_CLOSED;
	qmp_close_with(q, DAEMON_QMP_ERROR_PROTOCOL,
		       "a message that is neither an event nor a reply");
	return FALSE;
}

static gboolean on_readable(GSocket *sock, GIOCondition cond, gpointer data)
{
	daemon_qmp *q = data;
	guint8 chunk[QMP_READ_CHUNK];
	g_autoptr(GError) error = NULL;
	gssize n;
	guint start = 0, scan;

	n = g_socket_receive(sock, (gchar *)chunk, sizeof(chunk), NULL, &error);
	if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
		return G_SOURCE_CONTINUE;
	if (n <= 0) {
		/* The source is destroyed by the close below. */
		qmp_close_with(q, DAEMON_QMP_ERROR_CLOSED, "%s",
			       n == 0 ? (q->phase == QMP_GREETING ?
					 "closed before any QMP greeting (is "
					 "it a QEMU -qmp socket?)" :
					 "QEMU closed the connection") :
			       error->message);
		return G_SOURCE_REMOVE;
	}
	/* Only the new bytes can end a line: a long line is scanned once. */
	scan = q->inbuf->len;
	g_byte_array_append(q->inbuf, chunk, (guint)n);
	for (guint i = scan; i < q->inbuf->len; i++) {
		if (q->inbuf->data[i] != '\n')
			continue;
		if (i > start &&
		    !handle_line(q, (const char *)q->inbuf->data + start,
				 i - start))
			return G_SOURCE_REMOVE;
		start = i + 1;
	}
	g_byte_array_remove_range(q->inbuf, 0, start);
	if (q->inbuf->len > DAEMON_QMP_MAX_LINE) {
		qmp_close_with(q, DAEMON_QMP_ERROR_PROTOCOL,
			       "a message longer than %u bytes",
			       DAEMON_QMP_MAX_LINE);
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static gboolean on_greeting_timeout(gpointer data)
{
	daemon_qmp *q = data;

	g_source_unref(q->greet_timer);
	q->greet_timer = NULL;
	qmp_close_with(q, DAEMON_QMP_ERROR_TIMEOUT,
		       "no QMP greeting within %u ms (is it a QEMU -qmp "
		       "socket?)", QMP_GREETING_TIMEOUT_MS);
	return G_SOURCE_REMOVE;
}

static void on_connected(GObject *src, GAsyncResult *res, gpointer data)
{
	daemon_qmp *q = data;
	g_autoptr(GError) error = NULL;
	GSocketConnection *conn;

	conn = g_socket_client_connect_finish(G_SOCKET_CLIENT(src), res,
					      &error);
	if (conn == NULL) {
		if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
			return;    /* freed: q is gone */
		qmp_close_with(q, DAEMON_QMP_ERROR_CONNECT,
			       "cannot connect: %s (start QEMU with -qmp "
			       "unix:%s,server=on,wait=off)", error->message,
			       q->path);
		return;
	}
	q->conn = conn;
	q->sock = g_object_ref(g_socket_connection_get_socket(conn));
	g_socket_set_blocking(q->sock, FALSE);
	q->phase = QMP_GREETING;
	q->in_src = g_socket_create_source(q->sock, G_IO_IN | G_IO_HUP |
					   G_IO_ERR, NULL);
	g_source_set_callback(q->in_src,
			      (GSourceFunc)(void (*)(void))on_readable, q, NULL);
	g_source_attach(q->in_src, NULL);
	q->greet_timer = g_timeout_source_new(QMP_GREETING_TIMEOUT_MS);
	g_source_set_callback(q->greet_timer, on_greeting_timeout, q, NULL);
	g_source_attach(q->greet_timer, NULL);
}

daemon_qmp *daemon_qmp_new(const char *path,
			   const struct daemon_qmp_callbacks *cbs, void *user,
			   daemon_qmp_ready_fn ready, void *ready_user)
{
	daemon_qmp *q = g_new0(daemon_qmp, 1);
	g_autoptr(GSocketClient) client = g_socket_client_new();
	g_autoptr(GSocketAddress) addr = g_unix_socket_address_new(path);

	q->path = g_strdup(path);
	if (cbs != NULL)
		q->cbs = *cbs;
	q->user = user;
	q->ready = ready;
	q->ready_user = ready_user;
	q->inbuf = g_byte_array_new();
	q->next_id = 1;
	q->timeout_ms = DAEMON_QMP_REPLY_TIMEOUT_MS;
	q->cancel = g_cancellable_new();
	g_queue_init(&q->out);
	g_queue_init(&q->pending);
	q->phase = QMP_CONNECTING;
	g_socket_client_connect_async(client, G_SOCKET_CONNECTABLE(addr),
				      q->cancel, on_connected, q);
	return q;
}

void daemon_qmp_free(daemon_qmp *qmp)
{
	g_autoptr(GError) error = NULL;

	if (qmp == NULL)
		return;
	g_cancellable_cancel(qmp->cancel);
	error = g_error_new(DAEMON_QMP_ERROR, DAEMON_QMP_ERROR_CANCELLED,
			    "QMP socket %s: connection dropped", qmp->path);
	/* No closed() for a connection the user drops itself. */
	qmp->cbs.closed = NULL;
	qmp_close(qmp, error);
	g_object_unref(qmp->cancel);
	g_byte_array_unref(qmp->inbuf);
	g_free(qmp->path);
	g_free(qmp);
}
