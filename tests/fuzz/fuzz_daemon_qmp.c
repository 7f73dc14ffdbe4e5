/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_daemon_qmp: what the daemon reads from QEMU's monitor.  A daemon_vm
 * (host-agent/daemon/daemon_vm.c over daemon_qmp.c) connects to a unix
 * socket the fuzzer listens on; the fuzzer plays QEMU: it reads the
 * commands the daemon sends (closing any descriptor passed with getfd) and
 * answers from the input: greetings, replies with the right or a wrong
 * id, errors, events (SHUTDOWN, STOP, RESUME, DEVICE_DELETED, unknown),
 * JSON values generated from the input or raw bytes, in any split, or the
 * socket closed.  It also asks the VM to plug and unplug usb-redir devices
 * at any moment.
 *
 * Input: ops, each an op byte (% 10) plus arguments:
 *   0 greeting (a QMP one, or a generated value);  1 reply to the oldest
 *   unanswered command with a generated "return";  2 the same with an
 *   "error";  3 an event with a generated "data";  4 raw bytes;  5 a reply
 *   with a wrong id;  6 plug;  7 unplug;  8 run the main loop;  9 close.
 * Generated JSON values: a kind byte, then its contents (see gen_value).
 *
 * Checks: no sanitizer report, every callback the daemon owes is called
 * exactly once (plug/unplug done, ready), and nothing is left behind once
 * the VM is freed (LeakSanitizer, open descriptors).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "daemon_vm.h"
#include "fuzz_harness.h"

static struct {
	char *dir, *path;
	int lfd;
} S = { .lfd = -1 };

struct qemu {
	int fd;
	GString *in;            /* command bytes not yet split */
	GQueue ids;             /* GINT_TO_POINTER(id) of unanswered commands */
	unsigned owed;          /* plug/unplug callbacks not yet called */
	bool ready_called;
};

static const char *const strings[] = {
	"running", "paused", "ccidemu-0", "ccidemu-1", "child<usb-redir>",
	"child<usb-redir-x>", "GenericError", "DeviceNotFound", "status",
	"name", "type", "device", "desc", "class", "", "QMP", "return",
	"error", "event", "data", "id", "SHUTDOWN", "STOP", "RESUME",
	"DEVICE_DELETED", "/machine/peripheral/ccidemu-0",
};

static void append_string(GString *j, struct fz_in *in)
{
	uint8_t sel = fz_u8(in);

	g_string_append_c(j, '"');
	if (sel < 0x80) {
		const char *s = strings[sel % G_N_ELEMENTS(strings)];

		g_string_append(j, s);
	} else {
		/* Raw bytes, escaped only as far as the input says: bad
		 * UTF-8 and control characters reach the parser too. */
		unsigned n = fz_u8(in) % 48;
		bool escape = sel & 1;

		for (unsigned i = 0; i < n; i++) {
			uint8_t c = fz_u8(in);

			if (escape && (c == '"' || c == '\\' || c < 0x20))
				g_string_append_printf(j, "\\u%04x", c);
			else
				g_string_append_c(j, (char)c);
		}
	}
	g_string_append_c(j, '"');
}

static void gen_value(GString *j, struct fz_in *in, unsigned depth)
{
	uint8_t kind = fz_u8(in) % 9;

	if (depth > 6)
		kind = 0;
	switch (kind) {
	case 0:
		g_string_append(j, "null");
		break;
	case 1:
		g_string_append(j, fz_u8(in) & 1 ? "true" : "false");
		break;
	case 2:
		g_string_append_printf(j, "%" G_GINT64_FORMAT,
				       (gint64)((uint64_t)fz_u32(in) << 32 | fz_u32(in)));
		break;
	case 3:
		g_string_append_printf(j, "%g", (double)(int32_t)fz_u32(in) / 7.0);
		break;
	case 4:
	case 5:
		append_string(j, in);
		break;
	case 6: {
		unsigned n = fz_u8(in) % 6;

		g_string_append_c(j, '[');
		for (unsigned i = 0; i < n; i++) {
			if (i)
				g_string_append_c(j, ',');
			gen_value(j, in, depth + 1);
		}
		g_string_append_c(j, ']');
		break;
	}
	case 7: {
		unsigned n = fz_u8(in) % 6;

		g_string_append_c(j, '{');
		for (unsigned i = 0; i < n; i++) {
			if (i)
				g_string_append_c(j, ',');
			append_string(j, in);
			g_string_append_c(j, ':');
			gen_value(j, in, depth + 1);
		}
		g_string_append_c(j, '}');
		break;
	}
	default: {
		/* Raw bytes where a value belongs. */
		unsigned n = fz_u8(in) % 32;

		for (unsigned i = 0; i < n; i++)
			g_string_append_c(j, (char)fz_u8(in));
		break;
	}
	}
}

static void setup_once(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (S.lfd >= 0)
		return;
	S.dir = g_strdup(fz_scratch_dir("fuzz-qmp"));
	S.path = g_build_filename(S.dir, "qmp", NULL);
	g_strlcpy(sun.sun_path, S.path, sizeof(sun.sun_path));
	S.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FZ_CHECK(S.lfd >= 0 && bind(S.lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
		 listen(S.lfd, 4) == 0, "listen: %s", g_strerror(errno));
}

static void spin(void)
{
	for (unsigned i = 0; i < 64 && g_main_context_iteration(NULL, FALSE); i++)
		;
}

/* Reads what the daemon sent, closing passed descriptors, and queues the
 * ids of its commands. */
static void qemu_read(struct qemu *q)
{
	char buf[4096];
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];

	if (q->fd < 0)
		return;
	for (;;) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = cbuf,
				      .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(q->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		char *nl;

		if (n <= 0)
			break;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
				close(fd);
			}
		}
		g_string_append_len(q->in, buf, n);
		while ((nl = memchr(q->in->str, '\n', q->in->len)) != NULL) {
			g_autoptr(JsonParser) p = json_parser_new();
			JsonNode *root;

			*nl = '\0';
			FZ_CHECK(json_parser_load_from_data(p, q->in->str, -1, NULL) &&
				 (root = json_parser_get_root(p)) != NULL &&
				 JSON_NODE_HOLDS_OBJECT(root),
				 "the daemon sent a line that is not a JSON object");
			fz_trace("  daemon sent %s", q->in->str);
			g_queue_push_tail(&q->ids, GINT_TO_POINTER(
				(int)json_object_get_int_member(json_node_get_object(root), "id")));
			g_string_erase(q->in, 0, nl - q->in->str + 1);
		}
	}
}

static void qemu_send(struct qemu *q, const char *text, gsize len)
{
	if (q->fd < 0)
		return;
	fz_trace("qemu says %.*s", (int)MIN(len, 200), text);
	(void)!send(q->fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void on_ready(void *user, daemon_vm *vm, const GError *error)
{
	struct qemu *q = user;

	FZ_CHECK(!q->ready_called, "ready called twice");
	q->ready_called = true;
}

static void on_plugged(void *user, int fd, const GError *error)
{
	struct qemu *q = user;

	FZ_CHECK(q->owed > 0, "plug callback not owed");
	FZ_CHECK((fd >= 0) == (error == NULL), "plug: fd %d with error %p", fd,
		 (void *)error);
	if (fd >= 0)
		close(fd);
	q->owed--;
}

static void on_unplugged(void *user, const GError *error)
{
	struct qemu *q = user;

	FZ_CHECK(q->owed > 0, "unplug callback not owed");
	q->owed--;
}

static void on_gone(void *user, daemon_vm *vm, const char *reason,
		    const char *detail)
{
	fz_trace("  gone: %s (%s)", reason, detail);
}

static const struct daemon_vm_callbacks vm_cbs = { .gone = on_gone };

static void quiet_log(const gchar *domain, GLogLevelFlags level,
		      const gchar *msg, gpointer user)
{
	fz_trace("  glib: %s", msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct qemu q = { .fd = -1 };
	g_autoptr(GString) j = g_string_new(NULL);
	daemon_vm *vm;
	unsigned ops = 0;

	g_log_set_default_handler(quiet_log, NULL);
	setup_once();
	q.in = g_string_new(NULL);
	g_queue_init(&q.ids);
	vm = daemon_vm_new("fuzz", S.path, &vm_cbs, &q, on_ready, &q);
	/* The connect is asynchronous; accept once it has been made. */
	for (unsigned i = 0; i < 1000 && q.fd < 0; i++) {
		spin();
		q.fd = accept4(S.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (q.fd < 0)
			g_usleep(100);
	}
	FZ_CHECK(q.fd >= 0, "the daemon did not connect");

	while (fz_more(&in) && ops++ < 256) {
		uint8_t op = fz_u8(&in) % 10;

		g_string_truncate(j, 0);
		qemu_read(&q);
		switch (op) {
		case 0:
			if (fz_u8(&in) & 1) {
				g_string_append(j, "{\"QMP\": {\"version\": {\"qemu\": "
						"{\"micro\": 0, \"minor\": 2, \"major\": 7}, "
						"\"package\": \"\"}, \"capabilities\": []}}\n");
			} else {
				gen_value(j, &in, 0);
				g_string_append_c(j, '\n');
			}
			break;
		case 1:
		case 2:
		case 5: {
			int id = g_queue_is_empty(&q.ids) ? (int)fz_u8(&in) :
				 GPOINTER_TO_INT(g_queue_pop_head(&q.ids));

			if (op == 5)
				id += 1 + fz_u8(&in);
			if (op == 2) {
				g_string_append(j, "{\"error\": ");
				gen_value(j, &in, 0);
			} else {
				g_string_append(j, "{\"return\": ");
				gen_value(j, &in, 0);
			}
			g_string_append_printf(j, ", \"id\": %d}\n", id);
			break;
		}
		case 3:
			g_string_append(j, "{\"event\": ");
			append_string(j, &in);
			g_string_append(j, ", \"data\": ");
			gen_value(j, &in, 0);
			g_string_append(j, ", \"timestamp\": {\"seconds\": 1, "
					"\"microseconds\": 2}}\n");
			break;
		case 4: {
			unsigned n = fz_u8(&in) % 64;

			for (unsigned i = 0; i < n; i++)
				g_string_append_c(j, (char)fz_u8(&in));
			break;
		}
		case 6:
		case 7: {
			g_autofree char *id = g_strdup_printf("ccidemu-%u", fz_u8(&in) % 3);

			q.owed++;
			if (op == 6)
				daemon_vm_plug_redir(vm, id, on_plugged, &q);
			else
				daemon_vm_unplug_redir(vm, id, 1 + fz_u8(&in) % 50,
						       on_unplugged, &q);
			break;
		}
		case 8:
			spin();
			break;
		case 9:
			if (q.fd >= 0)
				close(q.fd);
			q.fd = -1;
			break;
		}
		if (j->len)
			qemu_send(&q, j->str, j->len);
		spin();
	}
	spin();
	daemon_vm_free(vm);
	FZ_CHECK(q.owed == 0, "%u plug/unplug callbacks never called", q.owed);
	if (q.fd >= 0) {
		qemu_read(&q);
		close(q.fd);
	}
	/* Let cancelled GIO operations finish. */
	spin();
	g_queue_clear(&q.ids);
	g_string_free(q.in, TRUE);
	return 0;
}
