/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's QMP client (host-agent/daemon/daemon_qmp.c) against hostile
 * peers: a thread plays the far end of a real unix socket and sends each
 * byte script of the table below; the client must drop the connection
 * with the error the row names, or, for the good rows, work.  Never an
 * abort, whatever the bytes.  The real QEMU is in test-daemon-cli.sh and
 * test-daemon-guest.sh; these are the bytes QEMU never sends.
 */
#include "daemon_qmp.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define GREETING "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n"
#define CAPS_OK "{\"return\": {}, \"id\": 1}\r\n"

/* One peer script: what the far end writes, in order; a step that is
 * READ_LINE waits for one line from the client first. */
#define READ_LINE "\x01read"

struct vector {
	const char *name;
	const char *steps[6];      /* NULL-terminated */
	gsize big;                 /* > 0: then this many 'a' bytes, no newline */
	int want;                  /* enum daemon_qmp_error, or -1: ready */
};

static const struct vector vectors[] = {
	/* Greetings that are not QMP's. */
	{ "text banner", { "SSH-2.0-OpenSSH_9.2\r\n" }, 0, DAEMON_QMP_ERROR_NOT_QMP },
	{ "JSON array", { "[1, 2, 3]\n" }, 0, DAEMON_QMP_ERROR_NOT_QMP },
	{ "object without QMP", { "{\"qmp\": 1}\n" }, 0, DAEMON_QMP_ERROR_NOT_QMP },
	{ "truncated JSON", { "{\"QMP\": {\"version\"\n" }, 0, DAEMON_QMP_ERROR_NOT_QMP },
	{ "NUL inside", { "{\"QMP\"\0: {}}\n" }, 0, DAEMON_QMP_ERROR_NOT_QMP },
	{ "closed at once", { NULL }, 0, DAEMON_QMP_ERROR_CLOSED },
	{ "1 MiB line", { NULL }, DAEMON_QMP_MAX_LINE + 16, DAEMON_QMP_ERROR_PROTOCOL },
	/* Capabilities negotiation going wrong. */
	{ "caps refused", { GREETING, READ_LINE,
	  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, \"id\": 1}\n" },
	  0, DAEMON_QMP_ERROR_NOT_QMP },
	{ "reply to id 99", { GREETING, READ_LINE, "{\"return\": {}, \"id\": 99}\n" },
	  0, DAEMON_QMP_ERROR_PROTOCOL },
	{ "id as a string", { GREETING, READ_LINE, "{\"return\": {}, \"id\": \"1\"}\n" },
	  0, DAEMON_QMP_ERROR_PROTOCOL },
	{ "reply without id", { GREETING, READ_LINE, "{\"return\": {}}\n" },
	  0, DAEMON_QMP_ERROR_PROTOCOL },
	{ "neither event nor reply", { GREETING, READ_LINE, "{\"foo\": 1}\n" },
	  0, DAEMON_QMP_ERROR_PROTOCOL },
	{ "closed after greeting", { GREETING, READ_LINE }, 0, DAEMON_QMP_ERROR_CLOSED },
	/* Good: odd events are ignored, the reply still matches. */
	{ "events of any shape", { GREETING, READ_LINE,
	  "{\"event\": 5}\n{\"event\": \"X\", \"data\": [1]}\n{\"event\": \"Y\"}\n",
	  CAPS_OK }, 0, -1 },
	{ "greeting one byte at a time", { "{", "\"QMP\"", ": {}", "}", "\n", NULL }, 0, -2 },
};

struct peer {
	int listen_fd;
	const struct vector *v;
	GThread *thread;
};

static gboolean read_line(int fd)
{
	char c;

	for (;;) {
		ssize_t n = read(fd, &c, 1);

		if (n <= 0)
			return FALSE;
		if (c == '\n')
			return TRUE;
	}
}

static void write_all(int fd, const char *p, gsize len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			return;
		p += n;
		len -= (gsize)n;
	}
}

static gpointer peer_main(gpointer data)
{
	struct peer *p = data;
	int fd = accept(p->listen_fd, NULL, NULL);

	if (fd < 0)
		return NULL;
	for (guint i = 0; i < G_N_ELEMENTS(p->v->steps) && p->v->steps[i]; i++) {
		const char *s = p->v->steps[i];

		if (strcmp(s, READ_LINE) == 0) {
			if (!read_line(fd))
				break;
			continue;
		}
		/* "NUL inside" carries a NUL: its length is known. */
		write_all(fd, s, strcmp(p->v->name, "NUL inside") == 0 ?
				 13 : strlen(s));
		g_usleep(2000);
	}
	if (p->v->big > 0) {
		g_autofree char *a = g_malloc(p->v->big);

		memset(a, 'a', p->v->big);
		write_all(fd, a, p->v->big);
	}
	/* The byte-at-a-time greeting: then answer the capabilities. */
	if (p->v->want == -2 && read_line(fd))
		write_all(fd, CAPS_OK, strlen(CAPS_OK));
	/* Keep the socket open until the client is done with it, unless
	 * closing is the point. */
	while (p->v->want != DAEMON_QMP_ERROR_CLOSED && read_line(fd))
		;
	close(fd);
	return NULL;
}

struct result {
	gboolean done;
	GError *error;
};

static void on_ready(void *user, const GError *error)
{
	struct result *r = user;

	r->done = TRUE;
	if (error != NULL)
		r->error = g_error_copy(error);
}

static void on_closed(void *user, const GError *why)
{
}

static void run_vector(const struct vector *v)
{
	static const struct daemon_qmp_callbacks cbs = { .closed = on_closed };
	g_autofree char *dir = g_dir_make_tmp("ccid-qmp-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct peer p = { .v = v };
	struct result r = { 0 };
	daemon_qmp *q;
	gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

	ck_assert(dir != NULL);
	g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	p.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(p.listen_fd, 0);
	ck_assert_int_eq(bind(p.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(p.listen_fd, 1), 0);
	p.thread = g_thread_new("qmp-peer", peer_main, &p);

	q = daemon_qmp_new(path, &cbs, NULL, on_ready, &r);
	while (!r.done && g_get_monotonic_time() < deadline)
		g_main_context_iteration(NULL, TRUE);
	ck_assert_msg(r.done, "%s: no verdict within 10 s", v->name);
	if (v->want < 0) {
		ck_assert_msg(r.error == NULL, "%s: %s", v->name,
			      r.error != NULL ? r.error->message : "");
		ck_assert(daemon_qmp_is_connected(q));
	} else {
		ck_assert_msg(r.error != NULL, "%s: ready without error",
			      v->name);
		ck_assert_msg(g_error_matches(r.error, DAEMON_QMP_ERROR, v->want),
			      "%s: error %d (%s), want %d", v->name,
			      r.error->code, r.error->message, v->want);
		/* The message names the socket, for the user. */
		ck_assert_msg(strstr(r.error->message, path) != NULL, "%s: %s",
			      v->name, r.error->message);
		ck_assert(!daemon_qmp_is_connected(q));
	}
	daemon_qmp_free(q);
	g_thread_join(p.thread);
	close(p.listen_fd);
	g_clear_error(&r.error);
	unlink(path);
	rmdir(dir);
}

START_TEST(test_vector)
{
	run_vector(&vectors[_i]);
}
END_TEST

/* A command QEMU refuses without a "desc": a COMMAND error with a
 * message, the class passed on. */
struct cmd_result {
	gboolean done;
	GError *error;
	char *cls;
};

static void on_reply(void *user, JsonNode *ret, const char *cls,
		     const GError *error)
{
	struct cmd_result *r = user;

	r->done = TRUE;
	r->cls = g_strdup(cls);
	if (error != NULL)
		r->error = g_error_copy(error);
}

static gpointer refusing_peer(gpointer data)
{
	struct peer *p = data;
	int fd = accept(p->listen_fd, NULL, NULL);
	static const char refuse[] = "{\"error\": {\"class\": 7}, \"id\": 2}\n"
				     "{\"error\": \"x\", \"id\": 3}\n";

	if (fd < 0)
		return NULL;
	write_all(fd, GREETING, strlen(GREETING));
	if (read_line(fd))
		write_all(fd, CAPS_OK, strlen(CAPS_OK));
	if (read_line(fd) && read_line(fd))
		write_all(fd, refuse, strlen(refuse));
	while (read_line(fd))
		;
	close(fd);
	return NULL;
}

START_TEST(test_command_errors)
{
	g_autofree char *dir = g_dir_make_tmp("ccid-qmp-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct peer p = { 0 };
	struct result r = { 0 };
	struct cmd_result c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
	daemon_qmp *q;
	gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

	g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	p.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(p.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(p.listen_fd, 1), 0);
	p.thread = g_thread_new("qmp-peer", refusing_peer, &p);
	q = daemon_qmp_new(path, NULL, NULL, on_ready, &r);
	while (!r.done && g_get_monotonic_time() < deadline)
		g_main_context_iteration(NULL, TRUE);
	ck_assert(r.done && r.error == NULL);
	daemon_qmp_execute(q, "first", NULL, -1, on_reply, &c1);
	daemon_qmp_execute(q, "second", json_object_new(), -1, on_reply, &c2);
	while (!c2.done && g_get_monotonic_time() < deadline)
		g_main_context_iteration(NULL, TRUE);
	/* "class": 7 is not a string: no class, a message all the same. */
	ck_assert(c1.done && c1.error != NULL);
	ck_assert(g_error_matches(c1.error, DAEMON_QMP_ERROR,
				  DAEMON_QMP_ERROR_COMMAND));
	ck_assert_str_eq(c1.error->message,
			 "QEMU refused the command (no reason given)");
	ck_assert(c1.cls == NULL);
	ck_assert(c2.done && c2.error != NULL);
	/* Freed with a command pending: its reply reports the cancel. */
	daemon_qmp_execute(q, "third", NULL, -1, on_reply, &c3);
	daemon_qmp_free(q);
	ck_assert(c3.done);
	ck_assert(g_error_matches(c3.error, DAEMON_QMP_ERROR,
				  DAEMON_QMP_ERROR_CANCELLED));
	g_thread_join(p.thread);
	close(p.listen_fd);
	g_clear_error(&r.error);
	g_clear_error(&c1.error);
	g_clear_error(&c2.error);
	g_clear_error(&c3.error);
	g_free(c1.cls);
	g_free(c2.cls);
	g_free(c3.cls);
	unlink(path);
	rmdir(dir);
}
END_TEST

/* A monitor that answers the capabilities and then nothing: the command
 * fails with TIMEOUT after the client's reply timeout, naming it, and
 * the connection is given up (closed() runs). */
static gpointer mute_peer(gpointer data)
{
	struct peer *p = data;
	int fd = accept(p->listen_fd, NULL, NULL);

	if (fd < 0)
		return NULL;
	write_all(fd, GREETING, strlen(GREETING));
	if (read_line(fd))
		write_all(fd, CAPS_OK, strlen(CAPS_OK));
	while (read_line(fd))
		;
	close(fd);
	return NULL;
}

static void on_closed_count(void *user, const GError *why)
{
	(*(int *)user)++;
}

START_TEST(test_reply_timeout)
{
	static const struct daemon_qmp_callbacks cbs = {
		.closed = on_closed_count,
	};
	g_autofree char *dir = g_dir_make_tmp("ccid-qmp-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct peer p = { 0 };
	struct result r = { 0 };
	struct cmd_result c = { 0 };
	int closed = 0;
	daemon_qmp *q;
	gint64 t0, deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

	g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
	p.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(p.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(p.listen_fd, 1), 0);
	p.thread = g_thread_new("qmp-peer", mute_peer, &p);
	q = daemon_qmp_new(path, &cbs, &closed, on_ready, &r);
	daemon_qmp_set_timeout(q, 300);
	while (!r.done && g_get_monotonic_time() < deadline)
		g_main_context_iteration(NULL, TRUE);
	ck_assert(r.done && r.error == NULL);
	t0 = g_get_monotonic_time();
	daemon_qmp_execute(q, "device_add", NULL, -1, on_reply, &c);
	while (!c.done && g_get_monotonic_time() < deadline)
		g_main_context_iteration(NULL, TRUE);
	ck_assert(c.done);
	ck_assert_msg(g_error_matches(c.error, DAEMON_QMP_ERROR,
				      DAEMON_QMP_ERROR_TIMEOUT), "%s",
		      c.error != NULL ? c.error->message : "no error");
	ck_assert_msg(strstr(c.error->message, "'device_add' within 300 ms") !=
		      NULL, "%s", c.error->message);
	/* Not before its time. */
	ck_assert_int_ge(g_get_monotonic_time() - t0, 300 * 1000);
	ck_assert_int_eq(closed, 1);
	ck_assert(!daemon_qmp_is_connected(q));
	daemon_qmp_free(q);
	g_thread_join(p.thread);
	close(p.listen_fd);
	g_clear_error(&c.error);
	g_free(c.cls);
	unlink(path);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon-qmp");

	/* The peer writes to a client that may have hung up. */
	signal(SIGPIPE, SIG_IGN);
	TCase *tc = tcase_create("hostile peers");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_vector, 0, G_N_ELEMENTS(vectors));
	tcase_add_test(tc, test_command_errors);
	tcase_add_test(tc, test_reply_timeout);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
