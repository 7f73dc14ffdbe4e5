/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_agent_control: the control socket of `ccid-agent serve`
 * (host-agent/agent_control.c) over a real unix socket: a client sends
 * fuzzed bytes in fuzzed pieces, half-closes or drops the connection; the
 * command handler answers at once or later, as the real ones do (insert and
 * remove answer when the card has moved).
 *
 * Input: ops, each an op byte plus arguments (fz_u8...; zeros past the end):
 *   0: send the next N (1..64) input bytes;
 *   1: run the main loop and read what came back;
 *   2: answer the requests held back so far;
 *   3: the handler holds back (1) or answers at once (0) from now on;
 *   4: half-close (no more input from the client);
 *   5: drop the connection and open a new one;
 *   6: stop or resume reading replies (a client that does not read).
 *
 * Checks: the handler sees argc >= 1 and argv words that are non-empty,
 * hold no blank, tab, CR or LF and come from a line shorter than
 * AGENT_CONTROL_MAX_LINE; replies are whole lines of JSON objects; and
 * a client that hangs up is let go (LeakSanitizer sees the rest).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "agent_control.h"
#include "fuzz_harness.h"

struct ctl_fuzz {
	agent_control *ctl;
	char *dir;
	GQueue held;        /* agent_control_request * */
	bool hold;
};

static struct ctl_fuzz S;

static void on_command(void *user, agent_control_request *req, int argc,
		       char **argv)
{
	size_t total = 0;

	FZ_CHECK(argc >= 1 && argv[argc] == NULL, "argc %d", argc);
	for (int i = 0; i < argc; i++) {
		FZ_CHECK(argv[i][0] != '\0', "empty word %d", i);
		FZ_CHECK(strpbrk(argv[i], " \t\r\n") == NULL,
			 "word '%s' holds a separator", argv[i]);
		total += strlen(argv[i]) + 1;
	}
	FZ_CHECK(total <= AGENT_CONTROL_MAX_LINE, "line of %zu bytes", total);
	fz_trace("command %s (%d words)", argv[0], argc);
	if (S.hold) {
		g_queue_push_tail(&S.held, req);
		return;
	}
	if (argc > 1)
		agent_control_reply_error(req, "'%s' takes no argument '%s'",
					  argv[0], argv[1]);
	else
		agent_control_reply(req, "{\"ok\": true}");
}

static void answer_held(void)
{
	agent_control_request *req;

	while ((req = g_queue_pop_head(&S.held)) != NULL)
		agent_control_reply(req, "{\"later\": true}");
}

static void setup_once(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *path = NULL;

	if (S.ctl != NULL)
		return;
	S.dir = g_strdup(fz_scratch_dir("fuzz-ctl"));
	path = g_build_filename(S.dir, "ctl", NULL);
	S.ctl = agent_control_new(path, on_command, NULL, &error);
	FZ_CHECK(S.ctl != NULL, "agent_control_new: %s", error->message);
	g_queue_init(&S.held);
}

static int client_connect(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	g_strlcpy(sun.sun_path, agent_control_get_path(S.ctl), sizeof(sun.sun_path));
	FZ_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0,
		 "connect: %s", g_strerror(errno));
	return fd;
}

struct client {
	int fd;
	bool reading;
	GString *in;     /* reply bytes not yet ending in a newline */
};

static void spin(void)
{
	for (unsigned i = 0; i < 64 && g_main_context_iteration(NULL, FALSE); i++)
		;
}

/* Reads replies; every complete one must be a JSON object on one line. */
static void client_read(struct client *c)
{
	char buf[4096];
	ssize_t n;

	if (c->fd < 0 || !c->reading)
		return;
	while ((n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		char *nl;

		g_string_append_len(c->in, buf, n);
		while ((nl = memchr(c->in->str, '\n', c->in->len)) != NULL) {
			FZ_CHECK(c->in->str[0] == '{' && nl > c->in->str &&
				 nl[-1] == '}', "reply is not a JSON object line");
			g_string_erase(c->in, 0, nl - c->in->str + 1);
		}
	}
}

static void client_drop(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	g_string_truncate(c->in, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct client c = { .reading = true, .in = g_string_new(NULL) };
	unsigned ops = 0;

	setup_once();
	S.hold = false;
	c.fd = client_connect();
	spin();
	while (fz_more(&in) && ops++ < 512) {
		switch (fz_u8(&in) % 7) {
		case 0: {
			uint8_t buf[64];
			size_t n = 1 + fz_u8(&in) % sizeof(buf);

			n = MIN(n, in.n);
			fz_bytes(&in, buf, n);
			if (c.fd >= 0)
				(void)!send(c.fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			break;
		}
		case 1:
			spin();
			client_read(&c);
			break;
		case 2:
			answer_held();
			break;
		case 3:
			S.hold = fz_u8(&in) & 1;
			break;
		case 4:
			if (c.fd >= 0)
				shutdown(c.fd, SHUT_WR);
			break;
		case 5:
			client_drop(&c);
			spin();
			c.fd = client_connect();
			break;
		case 6:
			c.reading = !c.reading;
			break;
		}
		spin();
	}
	/* Whatever is open is answered; the server must then let go of a
	 * client that hung up. */
	S.hold = false;
	answer_held();
	spin();
	c.reading = true;
	client_read(&c);
	client_drop(&c);
	spin();
	answer_held();
	spin();
	g_string_free(c.in, TRUE);
	return 0;
}
