/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `ccid-agent serve` as a subprocess, driven the way QEMU and a user
 * would: the test reads the QEMU arguments the agent prints, connects a
 * usb-guest peer built on the real usbredirparser (tests/common/
 * fake_qemu.c) to the socket named there, and pulls the card out and
 * pushes it back with `ccid-agent ctl`.  Also: reconnects, SIGTERM,
 * --connect mode, TCP, the default socket, busy sockets, bad addresses,
 * a bad NSS database, and the control protocol itself.
 *
 * The agent binary comes from $CCID_AGENT (meson sets it).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <glib-unix.h>

#include <ccid-emu/ccid_emu.h>

#include "fake_qemu.h"

static const char *agent_bin;
static char *base_dir;          /* removed by main() */

/* ---- the agent as a subprocess ----------------------------------------- */

struct agent {
	GPid pid;
	int out_fd;
	GString *out, *err;
	char *err_path;             /* stderr goes to this file */
	bool exited;
	int status;                 /* exit status, or 128 + signal */
	char **env;
	/* What the waits below sleep on, instead of polling with sleeps:
	 * the agent's exit (a pidfd) and its stderr file growing (inotify). */
	int pidfd;
	int err_watch;
	bool out_eof;
};

static void child_setup(gpointer data)
{
	const char *err_path = data;
	int fd;

	/* A failing test (its forked Check child exits) takes the agent
	 * with it instead of leaving it serving. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* stderr to a file, not a pipe: a chatty agent (-v) must never
	 * block on a pipe the test is not reading while it spins. */
	fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (fd >= 0 && fd != STDERR_FILENO) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

/* Reads what is there; TRUE at end of file. */
static bool drain(int fd, GString *s)
{
	char buf[4096];
	ssize_t n;

	if (fd < 0)
		return true;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		g_string_append_len(s, buf, n);
	return n == 0;
}

static void read_err(struct agent *a)
{
	g_autofree char *text = NULL;

	if (g_file_get_contents(a->err_path, &text, NULL, NULL))
		g_string_assign(a->err, text);
}

static void agent_pump(struct agent *a)
{
	int st;

	if (drain(a->out_fd, a->out))
		a->out_eof = true;
	read_err(a);
	if (!a->exited && waitpid(a->pid, &st, WNOHANG) == a->pid) {
		a->exited = true;
		a->status = WIFEXITED(st) ? WEXITSTATUS(st) :
			    128 + WTERMSIG(st);
		drain(a->out_fd, a->out);
		read_err(a);
	}
}

/* Starts `ccid-agent serve ARGS...` with the environment plus @env
 * ("NAME=VALUE" strings, may be NULL). */
static void agent_start(struct agent *a, const char *const *env,
			const char *const *args)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	static unsigned n_started;
	GError *error = NULL;

	memset(a, 0, sizeof(*a));
	a->out = g_string_new(NULL);
	a->err = g_string_new(NULL);
	a->err_path = g_strdup_printf("%s/agent-%d-%u.err", base_dir,
				      (int)getpid(), n_started++);
	a->env = g_get_environ();
	for (guint i = 0; env != NULL && env[i] != NULL; i++) {
		g_auto(GStrv) kv = g_strsplit(env[i], "=", 2);

		a->env = g_environ_setenv(a->env, kv[0], kv[1], TRUE);
	}
	g_ptr_array_add(argv, (gpointer)agent_bin);
	g_ptr_array_add(argv, (gpointer)"serve");
	for (guint i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)args[i]);
	g_ptr_array_add(argv, NULL);
	ck_assert_msg(g_spawn_async_with_pipes(NULL, (char **)argv->pdata,
					       a->env,
					       G_SPAWN_DO_NOT_REAP_CHILD,
					       child_setup, a->err_path,
					       &a->pid, NULL, &a->out_fd, NULL,
					       &error),
		      "cannot run %s: %s", agent_bin,
		      error ? error->message : "?");
	g_unix_set_fd_nonblocking(a->out_fd, TRUE, NULL);
	a->pidfd = (int)syscall(SYS_pidfd_open, a->pid, 0);
	ck_assert_msg(a->pidfd >= 0, "pidfd_open: %s", g_strerror(errno));
	/* g_spawn returns after the exec, so child_setup made the file. */
	a->err_watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ck_assert_int_ge(a->err_watch, 0);
	ck_assert_int_ge(inotify_add_watch(a->err_watch, a->err_path,
					   IN_MODIFY), 0);
}

/* Sleeps until the agent writes to stdout or stderr or exits, or until
 * @end (monotonic µs); FALSE when @end passed first. */
static bool agent_wait_news(struct agent *a, gint64 end)
{
	struct pollfd p[3] = {
		{ .fd = a->out_eof ? -1 : a->out_fd, .events = POLLIN },
		{ .fd = a->err_watch, .events = POLLIN },
		{ .fd = a->exited ? -1 : a->pidfd, .events = POLLIN },
	};
	gint64 left = (end - g_get_monotonic_time()) / 1000;
	char ev[4096];
	int n;

	if (left <= 0)
		return false;
	n = poll(p, G_N_ELEMENTS(p), (int)MIN(left, G_MAXINT));
	while (read(a->err_watch, ev, sizeof(ev)) > 0)
		;
	return n > 0;
}

/* The value of the stdout line "KEY: VALUE", or NULL. */
static char *agent_line(struct agent *a, const char *key)
{
	g_auto(GStrv) lines = g_strsplit(a->out->str, "\n", -1);
	g_autofree char *prefix = g_strdup_printf("%s: ", key);

	for (guint i = 0; lines[i] != NULL; i++)
		if (g_str_has_prefix(lines[i], prefix))
			return g_strdup(lines[i] + strlen(prefix));
	return NULL;
}

/* Waits until the agent printed its configuration (the "control:" line
 * comes last) or exited. */
static bool agent_wait_ready(struct agent *a, unsigned timeout_ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	for (;;) {
		g_autofree char *ctl = NULL;

		agent_pump(a);
		ctl = agent_line(a, "control");
		if (ctl != NULL && g_str_has_suffix(a->out->str, "\n"))
			return true;
		if (a->exited || !agent_wait_news(a, end))
			return false;
	}
}

static int agent_wait_exit(struct agent *a, unsigned timeout_ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	agent_pump(a);
	while (!a->exited && agent_wait_news(a, end))
		agent_pump(a);
	return a->exited ? a->status : -1;
}

/* Waits until stderr contains @needle. */
static bool agent_wait_err(struct agent *a, const char *needle,
			   unsigned timeout_ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	do {
		agent_pump(a);
		if (strstr(a->err->str, needle) != NULL)
			return true;
	} while (agent_wait_news(a, end));
	return false;
}

static void agent_stop(struct agent *a)
{
	if (!a->exited && a->pid > 0) {
		kill(a->pid, SIGKILL);
		agent_wait_exit(a, 5000);
	}
	if (a->out_fd >= 0)
		close(a->out_fd);
	a->out_fd = -1;
	close(a->pidfd);
	close(a->err_watch);
	g_string_free(a->out, TRUE);
	g_string_free(a->err, TRUE);
	g_unlink(a->err_path);
	g_free(a->err_path);
	g_strfreev(a->env);
	g_spawn_close_pid(a->pid);
	a->pid = 0;
}

/* Runs a whole agent that is expected to fail at startup. */
static int agent_run_to_exit(const char *const *env, const char *const *args,
			     char **err)
{
	struct agent a;
	int rc;

	agent_start(&a, env, args);
	rc = agent_wait_exit(&a, 60000);
	*err = g_strdup(a.err->str);
	agent_stop(&a);
	return rc;
}

/* `ccid-agent ctl [--control PATH] CMD [SLOT]`; returns its exit status
 * and its stdout (without the newline) in *@out. */
static int ctl_env(char **env, const char *control, const char *cmd,
		   const char *slot, char **out, char **err)
{
	const char *argv[8];
	unsigned n = 0;
	g_autofree char *o = NULL;
	g_autofree char *e = NULL;
	GError *error = NULL;
	int st = -1;

	argv[n++] = agent_bin;
	argv[n++] = "ctl";
	if (control != NULL) {
		argv[n++] = "--control";
		argv[n++] = control;
	}
	argv[n++] = cmd;
	if (slot != NULL)
		argv[n++] = slot;
	argv[n] = NULL;
	ck_assert_msg(g_spawn_sync(NULL, (char **)argv, env, G_SPAWN_DEFAULT,
				   NULL, NULL, &o, &e, &st, &error),
		      "cannot run ctl: %s", error ? error->message : "?");
	g_strchomp(o);
	*out = g_steal_pointer(&o);
	if (err != NULL)
		*err = g_steal_pointer(&e);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int ctl(const char *control, const char *cmd, const char *slot,
	       char **out)
{
	return ctl_env(NULL, control, cmd, slot, out, NULL);
}

static void ctl_expect(const char *control, const char *cmd, const char *slot,
		       int want_rc, const char *want_json)
{
	g_autofree char *out = NULL;
	int rc = ctl(control, cmd, slot, &out);

	ck_assert_msg(rc == want_rc, "ctl %s: exit %d, expected %d (%s)", cmd,
		      rc, want_rc, out);
	ck_assert_str_eq(out, want_json);
}

/* `ctl status` must answer exactly the printf-formatted JSON. */
static void ctl_expect_status(const char *control, const char *fmt, ...)
	G_GNUC_PRINTF(2, 3);

static void ctl_expect_status(const char *control, const char *fmt, ...)
{
	g_autofree char *want = NULL;
	va_list ap;

	va_start(ap, fmt);
	want = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	ctl_expect(control, "status", NULL, 0, want);
}

/* ---- sockets and the fake QEMU ------------------------------------------ */

static char *test_dir(const char *name)
{
	char *d = g_build_filename(base_dir, name, NULL);

	ck_assert_int_eq(g_mkdir_with_parents(d, 0700), 0);
	return d;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	ck_assert_msg(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0,
		      "connect %s: %s", path, g_strerror(errno));
	return fd;
}

static int unix_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(fd, 2), 0);
	return fd;
}

static int accept_within(int lfd, unsigned timeout_ms)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };

	ck_assert_msg(poll(&pfd, 1, (int)timeout_ms) == 1,
		      "the agent did not connect within %u ms", timeout_ms);
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* A TCP port that was free a moment ago. */
static guint16 free_tcp_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	guint16 port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int tcp_connect(guint16 port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
		      "connect 127.0.0.1:%u: %s", port, g_strerror(errno));
	return fd;
}

/* Attaches the fake QEMU to @fd and checks the reader it is offered:
 * @vid:@pid at full speed. */
static void guest_attach_id(struct fake_qemu *g, int fd, uint16_t vid,
			    uint16_t pid)
{
	fake_qemu_init(g, fd);
	ck_assert_msg(fake_qemu_spin(g, fake_qemu_is_connected, NULL, 5000),
		      "no device_connect from the agent");
	ck_assert_uint_eq(g->conn.vendor_id, vid);
	ck_assert_uint_eq(g->conn.product_id, pid);
	ck_assert_int_eq(g->conn.speed, usb_redir_speed_full);
}

/* Same, with the default identity: a VID:PID stock libccid lists. */
static void guest_attach(struct fake_qemu *g, int fd)
{
	guest_attach_id(g, fd, CCID_EMU_DEFAULT_VID, CCID_EMU_DEFAULT_PID);
}

/* Waits for interrupt packet number @n (1-based) and returns its slot
 * bits, asserting it is a two-byte NotifySlotChange. */
static uint8_t guest_notify(struct fake_qemu *g, unsigned n)
{
	ck_assert_msg(fake_qemu_spin(g, fake_qemu_intr_n, GUINT_TO_POINTER(n),
				     5000),
		      "no NotifySlotChange #%u", n);
	ck_assert_int_eq(g->intr_len[n - 1], 2);
	ck_assert_int_eq(g->intr[n - 1][0], CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE);
	return g->intr[n - 1][1];
}

/* SET_CONFIGURATION 1 and start of the interrupt endpoint. */
static void guest_configure_quiet(struct fake_qemu *g)
{
	fake_qemu_set_configuration(g, 1);
	ck_assert_int_eq(g->cfg_status.status, usb_redir_success);
	fake_qemu_start_interrupt(g);
}

/* The same, then the first NotifySlotChange, which a reader with a card
 * sends once configured; returns its slot bits byte. */
static uint8_t guest_configure(struct fake_qemu *g)
{
	guest_configure_quiet(g);
	return guest_notify(g, 1);
}

/* XfrBlock of @apdu on slot 0; returns the RDR_to_PC reply. */
static struct fake_qemu_reply *guest_xfr(struct fake_qemu *g, uint8_t seq,
					 const uint8_t *apdu, uint32_t len)
{
	static uint8_t msg[10 + 300];
	struct fake_qemu_reply *r;
	uint32_t n;

	ck_assert_uint_le(len, 300);
	n = fake_qemu_xfr_block(msg, seq, apdu, len);
	fake_qemu_bulk_out(g, msg, n);
	r = fake_qemu_bulk_in(g, 65536 + 100, 5000);
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_ge(r->len, 10);
	ck_assert_int_eq(r->data[0], CCID_RDR_TO_PC_DATA_BLOCK);
	ck_assert_int_eq(r->data[5], 0);
	ck_assert_int_eq(r->data[6], seq);
	return r;
}

/* Loopback ECHO of "abc": the answer is exactly abc 90 00. */
static void guest_echo(struct fake_qemu *g, uint8_t seq)
{
	static const uint8_t echo[] = {
		0x80, 0x01, 0x00, 0x00, 0x03, 'a', 'b', 'c'
	};
	struct fake_qemu_reply *r = guest_xfr(g, seq, echo, sizeof(echo));

	ck_assert_int_eq(r->data[7], 0x00);          /* OK, ICC active */
	ck_assert_int_eq(r->len, 10 + 5);
	ck_assert_mem_eq(r->data + 10, "abc\x90\x00", 5);
}

/* An XfrBlock while the card is out: failed, ICC absent, ICC_MUTE. */
static void guest_xfr_refused(struct fake_qemu *g, uint8_t seq)
{
	static const uint8_t echo[] = { 0x80, 0x01, 0x00, 0x00, 0x01, 'x' };
	struct fake_qemu_reply *r = guest_xfr(g, seq, echo, sizeof(echo));

	ck_assert_int_eq(r->len, 10);
	ck_assert_int_eq(r->data[7], CCID_CMD_FAILED << CCID_CMD_STATUS_SHIFT |
			 CCID_ICC_ABSENT);
	ck_assert_int_eq(r->data[8], CCID_ERR_ICC_MUTE);
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_listen_unix_insert_remove_reconnect)
{
	g_autofree char *dir = test_dir("listen");
	g_autofree char *sock = g_build_filename(dir, "ccid0.sock", NULL);
	g_autofree char *ctlp = g_build_filename(dir, "ccid0.ctl", NULL);
	g_autofree char *listen = g_strdup_printf("unix:%s", sock);
	const char *args[] = { "--card", "loopback", "--listen", listen, NULL };
	g_autofree char *want_qemu = g_strdup_printf(
		"-chardev socket,id=ccid0,path=%s,reconnect=1 "
		"-device usb-redir,chardev=ccid0,id=ccidredir0", sock);
	g_autofree char *want_xml = g_strdup_printf(
		"<redirdev bus='usb' type='unix'><source mode='connect' "
		"path='%s'><reconnect enabled='yes' timeout='1'/></source>"
		"</redirdev>", sock);
	g_autofree char *want_status = NULL;
	g_autofree char *qemu = NULL;
	g_autofree char *xml = NULL;
	g_autofree char *control = NULL;
	static struct fake_qemu g;
	struct agent a;

	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "agent not ready: %s",
		      a.err->str);
	qemu = agent_line(&a, "qemu");
	xml = agent_line(&a, "libvirt");
	control = agent_line(&a, "control");
	ck_assert_str_eq(qemu, want_qemu);
	ck_assert_str_eq(xml, want_xml);
	ck_assert_str_eq(control, ctlp);
	ck_assert(strstr(a.out->str, "-device qemu-xhci") != NULL);

	/* QEMU connects, the guest enumerates and uses the card. */
	guest_attach(&g, unix_connect(sock));
	ck_assert_int_eq(guest_configure(&g), 0x03);     /* present, changed */
	fake_qemu_power_on(&g, 1);
	guest_echo(&g, 2);
	want_status = g_strdup_printf(
		"{\"slots\": [{\"slot\": 0, \"card\": \"loopback\", "
		"\"present\": true, \"busy\": false, \"pin_guard_refusals\": 0}], \"mode\": \"listen\", \"address\": "
		"\"unix:%s\", \"attached\": true, \"configured\": true, "
		"\"sessions\": 1, \"bulk_in_flips\": 0, \"fence_timeouts\": 0}", sock);
	ctl_expect(ctlp, "status", NULL, 0, want_status);

	/* Pull the card out: NotifySlotChange absent + changed, and the
	 * card no longer answers. */
	ctl_expect(ctlp, "remove", NULL, 0,
		   "{\"slot\": 0, \"present\": false, \"changed\": true}");
	ck_assert_int_eq(guest_notify(&g, 2), 0x02);
	guest_xfr_refused(&g, 3);
	ctl_expect(ctlp, "remove", "0", 0,
		   "{\"slot\": 0, \"present\": false, \"changed\": false}");
	ctl_expect(ctlp, "remove", "1", 1,
		   "{\"error\": \"no slot '1': the reader has only slot 0\"}");

	/* Push it back: present + changed, powered off until IccPowerOn. */
	ctl_expect(ctlp, "insert", NULL, 0,
		   "{\"slot\": 0, \"present\": true, \"changed\": true}");
	ck_assert_int_eq(guest_notify(&g, 3), 0x03);
	fake_qemu_power_on(&g, 4);
	guest_echo(&g, 5);
	/* The default log shows the events, and no debug chatter. */
	ck_assert(agent_wait_err(&a, "ccid-agent: slot 0: card removed\n",
				 1000));
	ck_assert(agent_wait_err(&a, "ccid-agent: slot 0: card inserted\n",
				 1000));
	ck_assert(strstr(a.err->str, "ccid-agent: QEMU connected (unix:") !=
		  NULL);
	ck_assert(strstr(a.err->str, "[debug]") == NULL);

	/* QEMU goes away with the card out; the agent keeps serving and the
	 * card stays out. */
	ctl_expect(ctlp, "remove", NULL, 0,
		   "{\"slot\": 0, \"present\": false, \"changed\": true}");
	ck_assert_int_eq(guest_notify(&g, 4), 0x02);
	fake_qemu_fini(&g);
	ck_assert(agent_wait_err(&a, "QEMU disconnected", 5000));
	agent_pump(&a);
	ck_assert(!a.exited);
	guest_attach(&g, unix_connect(sock));
	/* No card, so no NotifySlotChange on configuration: the slot says
	 * absent when asked. */
	guest_configure_quiet(&g);
	/* The refused XfrBlock's answer is the barrier: a NotifySlotChange
	 * from the configuration would be pushed when interrupt receiving
	 * started, before the agent read this later packet. */
	guest_xfr_refused(&g, 6);
	ck_assert_uint_eq(g.n_intr, 0);
	ctl_expect(ctlp, "insert", NULL, 0,
		   "{\"slot\": 0, \"present\": true, \"changed\": true}");
	ck_assert_int_eq(guest_notify(&g, 1), 0x03);
	fake_qemu_power_on(&g, 7);
	guest_echo(&g, 8);
	g_free(want_status);
	want_status = g_strdup_printf(
		"{\"slots\": [{\"slot\": 0, \"card\": \"loopback\", "
		"\"present\": true, \"busy\": false, \"pin_guard_refusals\": 0}], \"mode\": \"listen\", \"address\": "
		"\"unix:%s\", \"attached\": true, \"configured\": true, "
		"\"sessions\": 2, \"bulk_in_flips\": 0, \"fence_timeouts\": 0}", sock);
	ctl_expect(ctlp, "status", NULL, 0, want_status);

	/* SIGTERM: QEMU is told the device is gone, the agent exits 0 and
	 * takes its sockets with it. */
	kill(a.pid, SIGTERM);
	ck_assert_msg(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 5000),
		      "no device_disconnect before the agent went away");
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	ck_assert(strstr(a.err->str, "SIGTERM") != NULL);
	ck_assert(!g_file_test(sock, G_FILE_TEST_EXISTS));
	ck_assert(!g_file_test(ctlp, G_FILE_TEST_EXISTS));
	fake_qemu_fini(&g);
	agent_stop(&a);
}
END_TEST

/* A second SIGTERM while the agent cleans up after the first must not
 * kill it half-way (GLib puts the default action back when a signal's
 * last source goes).  The guest asks for 1 MiB of answers and reads
 * none, so the agent's output is stuck in its socket and the clean-up
 * waits (up to 1 s) to tell QEMU the device is gone: the second signal
 * lands in that wait.  The agent must still exit 0 and remove its
 * sockets. */
START_TEST(test_second_signal_during_cleanup)
{
	g_autofree char *dir = test_dir("twosignals");
	g_autofree char *sock = g_build_filename(dir, "ccid0.sock", NULL);
	g_autofree char *ctlp = g_build_filename(dir, "ccid0.ctl", NULL);
	g_autofree char *listen = g_strdup_printf("unix:%s", sock);
	const char *args[] = { "--card", "loopback", "--listen", listen,
			       "--data-path", "bulk", NULL };
	/* Loopback PATTERN, extended Le 0000: 65536 bytes + 90 00. */
	static const uint8_t pattern[] = {
		0x80, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00
	};
	static struct fake_qemu g;
	uint8_t msg[10 + sizeof(pattern)];
	struct agent a;
	int queued = 0;

	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "agent not ready: %s",
		      a.err->str);
	guest_attach(&g, unix_connect(sock));
	ck_assert_int_eq(guest_configure(&g), 0x03);
	fake_qemu_power_on(&g, 1);

	/* 16 commands and their reads, sent without reading anything. */
	for (uint8_t seq = 2; seq < 18; seq++) {
		struct usb_redir_bulk_packet_header h = {
			.endpoint = CCID_EP_BULK_OUT,
		};
		uint32_t n = fake_qemu_xfr_block(msg, seq, pattern,
						 sizeof(pattern));

		h.length = (uint16_t)n;
		usbredirparser_send_bulk_packet(g.parser, g.next_id++, &h,
						msg, (int)n);
		fake_qemu_bulk_in_request(&g, 65536 + 12);
	}
	while (usbredirparser_has_data_to_write(g.parser))
		ck_assert_int_ge(usbredirparser_do_write(g.parser), 0);
	/* The real event: the first answer is in our socket.  The agent
	 * writes again only when the socket has room again, which it never
	 * will: the rest of the 1 MiB waits in the agent. */
	for (gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	     queued < 65548; ) {
		struct pollfd pfd = { .fd = g.fd, .events = POLLIN };

		ck_assert_msg(g_get_monotonic_time() < end,
			      "the agent never answered (%d bytes queued)",
			      queued);
		poll(&pfd, 1, 100);
		ck_assert_int_eq(ioctl(g.fd, FIONREAD, &queued), 0);
	}

	kill(a.pid, SIGTERM);
	ck_assert_msg(agent_wait_err(&a, "SIGTERM received", 5000),
		      "no 'SIGTERM received': %s", a.err->str);
	agent_pump(&a);
	ck_assert_msg(!a.exited, "the clean-up ended before the second "
		      "signal could reach it: the test missed its window");
	kill(a.pid, SIGTERM);
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	ck_assert(!g_file_test(sock, G_FILE_TEST_EXISTS));
	ck_assert(!g_file_test(ctlp, G_FILE_TEST_EXISTS));
	fake_qemu_fini(&g);
	agent_stop(&a);
}
END_TEST

START_TEST(test_second_serve_is_refused)
{
	g_autofree char *dir = test_dir("busy");
	g_autofree char *sock = g_build_filename(dir, "r.sock", NULL);
	g_autofree char *other = g_build_filename(dir, "other.sock", NULL);
	g_autofree char *ctlp = g_build_filename(dir, "r.ctl", NULL);
	g_autofree char *listen = g_strdup_printf("unix:%s", sock);
	g_autofree char *listen2 = g_strdup_printf("unix:%s", other);
	const char *args[] = { "--card", "loopback", "--listen", listen, NULL };
	const char *args2[] = { "--card", "loopback", "--listen", listen2,
				"--control", ctlp, NULL };
	g_autofree char *err = NULL;
	g_autofree char *out = NULL;
	struct agent a;

	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "%s", a.err->str);

	/* Same usbredir socket: exit 1 naming it. */
	ck_assert_int_eq(agent_run_to_exit(NULL, args, &err), 1);
	ck_assert_msg(strstr(err, "in use") != NULL && strstr(err, sock),
		      "unexpected message: %s", err);
	g_free(err);
	/* Same control socket: exit 1 naming it; its own usbredir socket is
	 * gone again. */
	ck_assert_int_eq(agent_run_to_exit(NULL, args2, &err), 1);
	ck_assert_msg(strstr(err, "in use") != NULL && strstr(err, ctlp),
		      "unexpected message: %s", err);
	ck_assert(!g_file_test(other, G_FILE_TEST_EXISTS));

	/* The first agent did not notice. */
	ck_assert_int_eq(ctl(ctlp, "status", NULL, &out), 0);
	ck_assert(g_str_has_prefix(out, "{\"slots\": [{\"slot\": 0, "
				   "\"card\": \"loopback\", \"present\": "
				   "true, \"busy\": false, \"pin_guard_refusals\": 0}]"));
	kill(a.pid, SIGINT);
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	ck_assert(strstr(a.err->str, "SIGINT") != NULL);
	ck_assert(!g_file_test(sock, G_FILE_TEST_EXISTS));
	agent_stop(&a);
}
END_TEST

START_TEST(test_verbose_log)
{
	g_autofree char *dir = test_dir("verbose");
	g_autofree char *sock = g_build_filename(dir, "v.sock", NULL);
	g_autofree char *ctlp = g_build_filename(dir, "v.ctl", NULL);
	g_autofree char *listen = g_strdup_printf("unix:%s", sock);
	g_autofree char *attached = g_strdup_printf(
		"ccid-agent: [info] usbredir peer unix:%s attached", sock);
	const char *args[] = { "-v", "--card", "loopback", "--listen", listen,
			       NULL };
	static struct fake_qemu g;
	struct agent a;

	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "%s", a.err->str);
	guest_attach(&g, unix_connect(sock));
	ck_assert_int_eq(guest_configure(&g), 0x03);
	fake_qemu_power_on(&g, 1);
	guest_echo(&g, 2);
	ctl_expect(ctlp, "remove", NULL, 0,
		   "{\"slot\": 0, \"present\": false, \"changed\": true}");
	/* Bridge and device model logs, with their level. */
	ck_assert_msg(agent_wait_err(&a, attached, 2000), "%s", a.err->str);
	ck_assert_msg(agent_wait_err(&a, "ccid-agent: [debug] slot 0: card "
				     "removed\n", 2000), "%s", a.err->str);
	kill(a.pid, SIGTERM);
	ck_assert(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 5000));
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	fake_qemu_fini(&g);
	agent_stop(&a);
}
END_TEST

/* Reads @fd until the peer closes it; FALSE if it did not within
 * @timeout_ms. */
static bool wait_eof(int fd, unsigned timeout_ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
	char buf[4096];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		gint64 left = (end - g_get_monotonic_time()) / 1000;
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) != 1)
			return false;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return false;
	}
}

/* Junk on the usbredir socket costs the peer its connection, never the
 * agent its life. */
START_TEST(test_garbage_peer)
{
	g_autofree char *dir = test_dir("garbage");
	g_autofree char *sock = g_build_filename(dir, "g.sock", NULL);
	g_autofree char *listen = g_strdup_printf("unix:%s", sock);
	const char *args[] = { "--card", "loopback", "--listen", listen, NULL };
	static struct fake_qemu g;
	guint8 junk[4096];
	struct agent a;
	int fd;

	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "%s", a.err->str);
	for (unsigned round = 0; round < 3; round++) {
		GRand *r = g_rand_new_with_seed(round);

		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (guint8)g_rand_int(r);
		g_rand_free(r);
		/* Round 1 claims a huge packet; round 2 a sane header with a
		 * bogus type. */
		if (round == 1)
			memcpy(junk, "\x00\x00\x00\x00\xff\xff\xff\x7f", 8);
		if (round == 2)
			memcpy(junk, "\x77\x77\x00\x00\x10\x00\x00\x00", 8);
		fd = unix_connect(sock);
		(void)send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
		/* The agent reads the junk and drops the connection: wait
		 * for that end of file (after its hello) under a deadline. */
		ck_assert_msg(wait_eof(fd, 5000),
			      "round %u: the agent kept the connection", round);
		close(fd);
	}
	/* A real peer still gets the reader. */
	guest_attach(&g, unix_connect(sock));
	ck_assert_int_eq(guest_configure(&g), 0x03);
	fake_qemu_power_on(&g, 1);
	guest_echo(&g, 2);
	agent_pump(&a);
	ck_assert(!a.exited);
	kill(a.pid, SIGTERM);
	ck_assert(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 5000));
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	fake_qemu_fini(&g);
	agent_stop(&a);
}
END_TEST

static const struct {
	const char *args[8];
	int rc;
	const char *msg;
} startup_errors[] = {
	{ { "--card", "loopback", "--listen", "tcp:127.0.0.1", NULL }, 2,
	  "bad address: 'tcp:127.0.0.1'" },
	{ { "--card", "loopback", "--listen", "tcp:127.0.0.1:0", NULL }, 2,
	  "'tcp:127.0.0.1:0': port must be" },
	{ { "--card", "loopback", "--connect", "udp:1.2.3.4:5", NULL }, 2,
	  "'udp:1.2.3.4:5': unknown socket address kind" },
	{ { "--card", "loopback", "--listen", "unix:", NULL }, 2,
	  "unix socket path is empty" },
	{ { "--card", "loopback", "--listen", "unix:/tmp/a",
	    "--connect", "unix:/tmp/b", NULL }, 2,
	  "--listen and --connect exclude each other" },
	{ { "--card", "loopback", "--slots", "9", NULL }, 2,
	  "--slots must be 1..8, got 9" },
	{ { "--card", "smartie", NULL }, 2, "unknown card 'smartie'" },
	{ { "--card", "loopback", "extra", NULL }, 2,
	  "unexpected argument 'extra'" },
	/* --usb-id: names the value and both accepted forms */
	{ { "--usb-id", "gemalto", NULL }, 2,
	  "--usb-id 'gemalto' is neither VID:PID" },
	{ { "--usb-id", "04e6:51155", NULL }, 2, "scr335 (default), ccid-emu" },
	{ { "--usb-id", "04e6-5115", NULL }, 2, "e.g. 04e6:5115" },
	{ { "--usb-id", "xyz:5115", NULL }, 2, "--usb-id 'xyz:5115'" },
	{ { "--usb-id", "0000:5115", NULL }, 2, "vendor ID 0000 is not" },
	{ { "--usb-id", "", NULL }, 2, "--usb-id '' is neither" },
	{ { "--serial", "A,B", NULL }, 2, "--serial 'A,B': character 2" },
	{ { "--serial", "", NULL }, 2, "--serial '': 0 characters" },
	{ { "--serial", "0123456789abcdef0123456789abcdef0", NULL }, 2,
	  "33 characters; use 1-32" },
	{ { "--card", "virtual:/nonexistent/ccid-emu-db", "--listen",
	    "unix:@DIR@/v.sock", NULL }, 1, "/nonexistent/ccid-emu-db" },
};

START_TEST(test_startup_errors)
{
	g_autofree char *dir = test_dir("errors");
	g_autofree char *vsock = g_build_filename(dir, "v.sock", NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(startup_errors); i++) {
		const char *args[8] = { NULL };
		g_autofree char *err = NULL;
		g_autofree char *fixed = NULL;
		int rc;

		for (size_t j = 0; startup_errors[i].args[j] != NULL; j++) {
			args[j] = startup_errors[i].args[j];
			if (strstr(args[j], "@DIR@") != NULL) {
				g_auto(GStrv) parts = g_strsplit(args[j],
								 "@DIR@", 2);

				g_free(fixed);
				fixed = g_strconcat(parts[0], dir, parts[1],
						    NULL);
				args[j] = fixed;
			}
		}
		rc = agent_run_to_exit(NULL, args, &err);
		ck_assert_msg(rc == startup_errors[i].rc,
			      "case %zu: exit %d, expected %d: %s", i, rc,
			      startup_errors[i].rc, err);
		ck_assert_msg(strstr(err, startup_errors[i].msg) != NULL,
			      "case %zu: '%s' not in: %s", i,
			      startup_errors[i].msg, err);
	}
	/* A bad NSS database fails before any socket appears. */
	ck_assert(!g_file_test(vsock, G_FILE_TEST_EXISTS));
}
END_TEST

/* --usb-id: the project's own ID by name, and any VID:PID, reach QEMU's
 * device_connect; the identity line names what the guest will need. */
static const struct {
	const char *arg;
	uint16_t vid, pid;
	const char *line;
} usb_ids[] = {
	{ "ccid-emu", 0x1209, 0xCC1D, "# USB identity 1209:CC1D (ccid-emu), serial " },
	{ "0x1234:abcd", 0x1234, 0xABCD, "# USB identity 1234:ABCD, serial " },
	{ "04E6:5115", 0x04E6, 0x5115, "# USB identity 04E6:5115 (scr335), serial " },
	{ "SCR335", 0x04E6, 0x5115, "# USB identity 04E6:5115 (scr335), serial " },
};

/* The serial number string (USB string 3, UTF-16LE) the guest reads. */
static char *guest_serial(struct fake_qemu *g)
{
	struct fake_qemu_reply *r;
	uint8_t iserial;
	GString *out = g_string_new(NULL);

	r = fake_qemu_control_in(g, 0x80, 0x06, 0x0100, 0, 18);
	ck_assert_int_eq(r->len, 18);
	iserial = r->data[16];
	ck_assert_uint_ne(iserial, 0);
	r = fake_qemu_control_in(g, 0x80, 0x06, (uint16_t)(0x0300 | iserial),
				 0x0409, 255);
	ck_assert_int_ge(r->len, 2);
	for (int i = 2; i + 1 < r->len; i += 2)
		g_string_append_c(out, (char)r->data[i]);
	return g_string_free(out, FALSE);
}

START_TEST(test_usb_id)
{
	/* One address for all: Check forks each loop iteration, so the
	 * serial of the last run is read back from a file. */
	g_autofree char *dir = test_dir("usbid");
	g_autofree char *serial_file = g_build_filename(dir, "..", "usbid.serial", NULL);
	g_autofree char *serial = NULL;
	char last_serial[16] = "";
	g_autofree char *prev = NULL;
	g_autofree char *sock = g_build_filename(dir, "qemu.sock", NULL);
	g_autofree char *ctlp = g_build_filename(dir, "agent.ctl", NULL);
	g_autofree char *connect = g_strdup_printf("unix:%s", sock);
	const char *args[] = { "--card", "loopback", "--connect", connect,
			       "--control", ctlp, "--usb-id", usb_ids[_i].arg,
			       NULL };
	static struct fake_qemu g;
	struct agent a;
	int lfd;

	if (g_file_get_contents(serial_file, &prev, NULL, NULL))
		g_strlcpy(last_serial, prev, sizeof(last_serial));
	unlink(sock);
	lfd = unix_listen(sock);
	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "%s", a.err->str);
	ck_assert_msg(strstr(a.out->str, usb_ids[_i].line) != NULL,
		      "'%s' not in: %s", usb_ids[_i].line, a.out->str);
	guest_attach_id(&g, accept_within(lfd, 5000), usb_ids[_i].vid,
			usb_ids[_i].pid);
	/* Without --serial: 8 hex digits of the address's hash, the same
	 * for every run on that address, different for another address. */
	serial = guest_serial(&g);
	ck_assert_uint_eq(strlen(serial), 8);
	ck_assert_msg(strstr(a.out->str, serial) != NULL, "serial %s not in: %s",
		      serial, a.out->str);
	if (last_serial[0] != '\0')
		ck_assert_str_eq(serial, last_serial);
	ck_assert_int_eq(guest_configure(&g), 0x03);
	fake_qemu_power_on(&g, 1);
	guest_echo(&g, 2);
	kill(a.pid, SIGTERM);
	ck_assert(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 5000));
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	ck_assert(g_file_set_contents(serial_file, serial, -1, NULL));
	fake_qemu_fini(&g);
	close(lfd);
	agent_stop(&a);
}
END_TEST

/* --serial: the guest reads exactly that string. */
START_TEST(test_serial_option)
{
	g_autofree char *dir = test_dir("serial");
	g_autofree char *sock = g_build_filename(dir, "qemu.sock", NULL);
	g_autofree char *ctlp = g_build_filename(dir, "agent.ctl", NULL);
	g_autofree char *connect = g_strdup_printf("unix:%s", sock);
	const char *args[] = { "--card", "loopback", "--connect", connect,
			       "--control", ctlp, "--serial", "VM1-reader_2",
			       NULL };
	g_autofree char *serial = NULL;
	static struct fake_qemu g;
	struct agent a;
	int lfd;

	lfd = unix_listen(sock);
	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "%s", a.err->str);
	guest_attach(&g, accept_within(lfd, 5000));
	serial = guest_serial(&g);
	ck_assert_str_eq(serial, "VM1-reader_2");
	kill(a.pid, SIGTERM);
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	fake_qemu_fini(&g);
	close(lfd);
	agent_stop(&a);
}
END_TEST

START_TEST(test_connect_mode)
{
	g_autofree char *dir = test_dir("connect");
	g_autofree char *sock = g_build_filename(dir, "qemu.sock", NULL);
	g_autofree char *ctlp = g_build_filename(dir, "agent.ctl", NULL);
	g_autofree char *connect = g_strdup_printf("unix:%s", sock);
	const char *args[] = { "--card", "loopback", "--connect", connect,
			       "--control", ctlp, NULL };
	g_autofree char *want_qemu = g_strdup_printf(
		"-chardev socket,id=ccid0,path=%s,server=on,wait=off "
		"-device usb-redir,chardev=ccid0,id=ccidredir0", sock);
	g_autofree char *want_xml = g_strdup_printf(
		"<redirdev bus='usb' type='unix'><source mode='bind' "
		"path='%s'/></redirdev>", sock);
	g_autofree char *qemu = NULL;
	g_autofree char *xml = NULL;
	static struct fake_qemu g;
	struct agent a;
	int lfd;

	/* QEMU is the server here: it listens first. */
	lfd = unix_listen(sock);
	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "%s", a.err->str);
	qemu = agent_line(&a, "qemu");
	xml = agent_line(&a, "libvirt");
	ck_assert_str_eq(qemu, want_qemu);
	ck_assert_str_eq(xml, want_xml);

	guest_attach(&g, accept_within(lfd, 5000));
	ck_assert_int_eq(guest_configure(&g), 0x03);
	fake_qemu_power_on(&g, 1);
	guest_echo(&g, 2);

	/* QEMU drops the connection: the agent comes back by itself. */
	fake_qemu_fini(&g);
	guest_attach(&g, accept_within(lfd, 5000));
	ck_assert_int_eq(guest_configure(&g), 0x03);
	fake_qemu_power_on(&g, 3);
	guest_echo(&g, 4);

	kill(a.pid, SIGTERM);
	ck_assert(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 5000));
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	ck_assert(!g_file_test(ctlp, G_FILE_TEST_EXISTS));
	/* QEMU's socket is QEMU's: the agent leaves it alone. */
	ck_assert(g_file_test(sock, G_FILE_TEST_EXISTS));
	fake_qemu_fini(&g);
	close(lfd);
	agent_stop(&a);
}
END_TEST

START_TEST(test_listen_tcp)
{
	g_autofree char *dir = test_dir("tcp");
	g_autofree char *ctlp = g_build_filename(dir, "agent.ctl", NULL);
	guint16 port = free_tcp_port();
	g_autofree char *listen = g_strdup_printf("tcp:127.0.0.1:%u", port);
	const char *args[] = { "--card", "loopback", "--slots", "2",
			       "--listen", listen, "--control", ctlp, NULL };
	g_autofree char *want_qemu = g_strdup_printf(
		"-chardev socket,id=ccid0,host=127.0.0.1,port=%u,reconnect=1 "
		"-device usb-redir,chardev=ccid0,id=ccidredir0", port);
	g_autofree char *want_xml = g_strdup_printf(
		"<redirdev bus='usb' type='tcp'><source mode='connect' "
		"host='127.0.0.1' service='%u'><reconnect enabled='yes' "
		"timeout='1'/></source><protocol type='raw'/></redirdev>",
		port);
	g_autofree char *qemu = NULL;
	g_autofree char *xml = NULL;
	static struct fake_qemu g;
	struct agent a;

	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "%s", a.err->str);
	qemu = agent_line(&a, "qemu");
	xml = agent_line(&a, "libvirt");
	ck_assert_str_eq(qemu, want_qemu);
	ck_assert_str_eq(xml, want_xml);
	guest_attach(&g, tcp_connect(port));
	/* Two slots, both present + changed. */
	ck_assert_int_eq(guest_configure(&g), 0x0F);
	/* Slot 1 goes: its bits (2..3) say absent + changed, slot 0's
	 * present and unchanged. */
	ctl_expect(ctlp, "remove", "1", 0,
		   "{\"slot\": 1, \"present\": false, \"changed\": true}");
	ck_assert_int_eq(guest_notify(&g, 2), 0x09);
	ctl_expect_status(ctlp,
		"{\"slots\": [{\"slot\": 0, \"card\": \"loopback\", "
		"\"present\": true, \"busy\": false, \"pin_guard_refusals\": 0}, {\"slot\": 1, \"card\": "
		"\"loopback\", \"present\": false, \"busy\": false, \"pin_guard_refusals\": 0}], \"mode\": \"listen\", \"address\": "
		"\"tcp:127.0.0.1:%u\", \"attached\": true, \"configured\": "
		"true, \"sessions\": 1, \"bulk_in_flips\": 0, \"fence_timeouts\": 0}", port);
	fake_qemu_power_on(&g, 1);
	guest_echo(&g, 2);
	kill(a.pid, SIGTERM);
	ck_assert(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 5000));
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	fake_qemu_fini(&g);
	agent_stop(&a);
}
END_TEST

START_TEST(test_default_socket)
{
	g_autofree char *dir = test_dir("default");
	g_autofree char *run = g_build_filename(dir, "run", NULL);
	g_autofree char *env0 = g_strdup_printf("XDG_RUNTIME_DIR=%s", run);
	const char *env[] = { env0, NULL };
	const char *args[] = { "--card", "loopback", NULL };
	g_autofree char *sock = g_build_filename(run, "ccid-emu", "ccid0.sock",
						 NULL);
	g_autofree char *ctlp = g_build_filename(run, "ccid-emu", "ccid0.ctl",
						 NULL);
	g_autofree char *want_qemu = g_strdup_printf(
		"-chardev socket,id=ccid0,path=%s,reconnect=1 "
		"-device usb-redir,chardev=ccid0,id=ccidredir0", sock);
	g_autofree char *qemu = NULL;
	g_autofree char *control = NULL;
	g_autofree char *out = NULL;
	g_auto(GStrv) ctl_envp = g_environ_setenv(g_get_environ(),
						  "XDG_RUNTIME_DIR", run,
						  TRUE);
	static struct fake_qemu g;
	struct agent a;

	ck_assert_int_eq(g_mkdir_with_parents(run, 0700), 0);
	agent_start(&a, env, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "%s", a.err->str);
	qemu = agent_line(&a, "qemu");
	control = agent_line(&a, "control");
	ck_assert_str_eq(qemu, want_qemu);
	ck_assert_str_eq(control, ctlp);
	guest_attach(&g, unix_connect(sock));
	ck_assert_int_eq(guest_configure(&g), 0x03);
	/* `ctl` finds the agent without --control. */
	ck_assert_int_eq(ctl_env(ctl_envp, NULL, "remove", NULL, &out, NULL),
			 0);
	ck_assert_str_eq(out, "{\"slot\": 0, \"present\": false, "
			 "\"changed\": true}");
	ck_assert_int_eq(guest_notify(&g, 2), 0x02);
	kill(a.pid, SIGINT);
	ck_assert(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 5000));
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	ck_assert(!g_file_test(sock, G_FILE_TEST_EXISTS));
	ck_assert(!g_file_test(ctlp, G_FILE_TEST_EXISTS));
	fake_qemu_fini(&g);
	agent_stop(&a);
}
END_TEST

/* Reads one reply line from a raw control connection. */
static char *read_line(int fd, GString *buf)
{
	gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

	for (;;) {
		char *nl = strchr(buf->str, '\n');
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char tmp[512];
		ssize_t n;

		if (nl != NULL) {
			char *line = g_strndup(buf->str,
					       (gsize)(nl - buf->str));

			g_string_erase(buf, 0, nl - buf->str + 1);
			return line;
		}
		ck_assert_msg(g_get_monotonic_time() < end, "no reply line");
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(fd, tmp, sizeof(tmp));
		if (n <= 0)
			return NULL;
		g_string_append_len(buf, tmp, n);
	}
}

START_TEST(test_control_protocol)
{
	g_autofree char *dir = test_dir("control");
	g_autofree char *sock = g_build_filename(dir, "p.sock", NULL);
	g_autofree char *ctlp = g_build_filename(dir, "p.ctl", NULL);
	g_autofree char *listen = g_strdup_printf("unix:%s", sock);
	const char *args[] = { "--card", "loopback", "--listen", listen, NULL };
	static const char script[] =
		"status extra\n\n  bogus  \r\nremove 7\nremove 0 0\n"
		"help\ninsert\n";
	static const char *const want[] = {
		"{\"error\": \"'status' takes no argument\"}",
		"{\"error\": \"unknown command 'bogus' (expected insert, "
		"remove, status or help)\"}",
		"{\"error\": \"no slot '7': the reader has only slot 0\"}",
		"{\"error\": \"'remove' takes at most one argument, the slot "
		"number\"}",
		"{\"commands\": [\"insert [SLOT]\", \"remove [SLOT]\", "
		"\"status\", \"help\"]}",
		"{\"slot\": 0, \"present\": true, \"changed\": false}",
	};
	g_autoptr(GString) buf = g_string_new(NULL);
	g_autofree char *long_line = NULL;
	g_autofree char *out = NULL;
	g_autofree char *err = NULL;
	char *line;
	struct agent a;
	int fd;

	agent_start(&a, NULL, args);
	ck_assert_msg(agent_wait_ready(&a, 10000), "%s", a.err->str);

	/* Several commands in one write, blank lines skipped, one reply
	 * line per command, in order. */
	fd = unix_connect(ctlp);
	ck_assert_int_eq(write(fd, script, sizeof(script) - 1),
			 (ssize_t)sizeof(script) - 1);
	for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
		line = read_line(fd, buf);
		ck_assert_ptr_nonnull(line);
		ck_assert_str_eq(line, want[i]);
		g_free(line);
	}
	/* A line that never ends is refused and the connection closed. */
	long_line = g_strnfill(3000, 'x');
	ck_assert_int_eq(write(fd, long_line, 3000), 3000);
	line = read_line(fd, buf);
	ck_assert_str_eq(line, "{\"error\": \"command line longer than 1023 "
			 "bytes\"}");
	g_free(line);
	ck_assert_ptr_null(read_line(fd, buf));
	close(fd);

	/* ctl's own errors: usage is 2, an unreachable agent 1. */
	ck_assert_int_eq(ctl(ctlp, "frobnicate", NULL, &out), 2);
	g_free(out);
	ck_assert_int_eq(ctl(ctlp, "remove", "first", &out), 2);
	g_free(out);
	ck_assert_int_eq(ctl_env(NULL, sock, "status", NULL, &out, &err), 1);
	ck_assert_msg(strstr(err, "does not answer like a ccid-agent control "
			     "socket") != NULL, "%s", err);
	g_free(out);
	g_free(err);
	ck_assert_int_eq(ctl_env(NULL, "/nonexistent/x.ctl", "status", NULL,
				 &out, &err), 1);
	ck_assert_msg(strstr(err, "/nonexistent/x.ctl") != NULL &&
		      strstr(err, "is 'ccid-agent serve' running?") != NULL,
		      "%s", err);

	/* The agent survived all of it. */
	ctl_expect(ctlp, "insert", "0", 0,
		   "{\"slot\": 0, \"present\": true, \"changed\": false}");
	kill(a.pid, SIGTERM);
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	agent_stop(&a);
}
END_TEST

/* The virtual CAC card, whose insert/remove goes through libcacard's
 * event thread; the embedded NSS database is generated under a private
 * XDG_DATA_HOME. */
START_TEST(test_virtual_card_remove_insert)
{
	g_autofree char *dir = test_dir("virtual");
	g_autofree char *data = g_build_filename(dir, "data", NULL);
	g_autofree char *env0 = g_strdup_printf("XDG_DATA_HOME=%s", data);
	g_autofree char *sock = g_build_filename(dir, "v.sock", NULL);
	g_autofree char *ctlp = g_build_filename(dir, "v.ctl", NULL);
	g_autofree char *listen = g_strdup_printf("unix:%s", sock);
	const char *env[] = { env0, NULL };
	const char *args[] = { "--listen", listen, NULL };
	/* SELECT the CAC Card Capability Container applet. */
	static const uint8_t select_ccc[] = {
		0x00, 0xA4, 0x04, 0x00, 0x07,
		0xA0, 0x00, 0x00, 0x01, 0x16, 0xDB, 0x00
	};
	static struct fake_qemu g;
	struct fake_qemu_reply *r;
	struct agent a;

	agent_start(&a, env, args);
	ck_assert_msg(agent_wait_ready(&a, 60000), "%s", a.err->str);
	ck_assert(strstr(a.out->str, "# ccid-agent serve: virtual card in "
			 "1 slot") != NULL);
	guest_attach(&g, unix_connect(sock));
	ck_assert_int_eq(guest_configure(&g), 0x03);
	fake_qemu_power_on(&g, 1);

	ctl_expect(ctlp, "remove", NULL, 0,
		   "{\"slot\": 0, \"present\": false, \"changed\": true}");
	ck_assert_int_eq(guest_notify(&g, 2), 0x02);
	guest_xfr_refused(&g, 2);
	ctl_expect_status(ctlp,
		"{\"slots\": [{\"slot\": 0, \"card\": \"virtual\", "
		"\"present\": false, \"busy\": false, \"pin_guard_refusals\": 0}], \"mode\": \"listen\", \"address\": "
		"\"unix:%s\", \"attached\": true, \"configured\": true, "
		"\"sessions\": 1, \"bulk_in_flips\": 0, \"fence_timeouts\": 0}", sock);

	ctl_expect(ctlp, "insert", NULL, 0,
		   "{\"slot\": 0, \"present\": true, \"changed\": true}");
	ck_assert_int_eq(guest_notify(&g, 3), 0x03);
	fake_qemu_power_on(&g, 3);
	r = guest_xfr(&g, 4, select_ccc, sizeof(select_ccc));
	ck_assert_int_eq(r->data[7], 0x00);
	ck_assert_int_ge(r->len, 12);
	/* 90 00, or 61 xx announcing the FCI. */
	ck_assert_msg(r->data[r->len - 2] == 0x90 || r->data[r->len - 2] == 0x61,
		      "SELECT CCC answered SW1 %02X", r->data[r->len - 2]);

	kill(a.pid, SIGTERM);
	ck_assert(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 5000));
	ck_assert_int_eq(agent_wait_exit(&a, 5000), 0);
	fake_qemu_fini(&g);
	agent_stop(&a);
}
END_TEST

static Suite *serve_suite(void)
{
	Suite *s = suite_create("serve");
	TCase *tc = tcase_create("loopback");
	TCase *tv = tcase_create("virtual");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_listen_unix_insert_remove_reconnect);
	tcase_add_test(tc, test_verbose_log);
	tcase_add_test(tc, test_garbage_peer);
	tcase_add_test(tc, test_second_serve_is_refused);
	tcase_add_test(tc, test_second_signal_during_cleanup);
	tcase_add_test(tc, test_startup_errors);
	tcase_add_test(tc, test_connect_mode);
	tcase_add_loop_test(tc, test_usb_id, 0, (int)G_N_ELEMENTS(usb_ids));
	tcase_add_test(tc, test_serial_option);
	tcase_add_test(tc, test_listen_tcp);
	tcase_add_test(tc, test_default_socket);
	tcase_add_test(tc, test_control_protocol);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tv, 180);
	tcase_add_test(tv, test_virtual_card_remove_insert);
	suite_add_tcase(s, tv);
	return s;
}

static void remove_tree(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	const char *name;

	if (d != NULL) {
		while ((name = g_dir_read_name(d)) != NULL) {
			g_autofree char *p = g_build_filename(path, name, NULL);

			if (g_file_test(p, G_FILE_TEST_IS_DIR) &&
			    !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
				remove_tree(p);
			else
				g_unlink(p);
		}
		g_dir_close(d);
	}
	g_rmdir(path);
}

int main(void)
{
	SRunner *sr;
	int failed;

	agent_bin = g_getenv("CCID_AGENT");
	if (agent_bin == NULL) {
		fprintf(stderr, "test-serve: set CCID_AGENT to the ccid-agent "
			"binary\n");
		return EXIT_FAILURE;
	}
	/* Short: unix socket paths must fit in 108 bytes. */
	base_dir = g_dir_make_tmp("ccid-serve-XXXXXX", NULL);
	if (base_dir == NULL)
		return EXIT_FAILURE;
	sr = srunner_create(serve_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tree(base_dir);
	g_free(base_dir);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
