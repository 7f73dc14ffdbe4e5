/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PIN-retry guard in `ccid-agent serve` (suite 'integration'): a
 * guessing guest, played by a usbredir peer on the real usbredirparser
 * (tests/common/fake_qemu.c), against the virtual PIV card, which really
 * counts.  The agent runs with every log on (-v, G_MESSAGES_DEBUG=all).
 *
 *   1. serve --card piv:DIR: the guest changes the PIN to a known one,
 *      then guesses wrong in every encoding (short, extended, chained,
 *      CHANGE REFERENCE DATA); two guesses reach the card, the rest are
 *      answered 63C1 by the guard, each with a log line; the card still
 *      has one try (`ccid-agent piv info`).
 *   2. The whole log (stdout and stderr) holds neither the PIN nor the
 *      guess, in ASCII or hex.
 *   3. The host user's own reader, serve --card piv:DIR,pin_guard=off:
 *      the right PIN verifies with that last try, and the card is back
 *      to 3 tries.
 *
 * The agent binary comes from $CCID_AGENT (meson sets it).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>

#include <ccid-emu/ccid_emu.h>

#include "fake_qemu.h"

#include "test_hex.h"

static const char *agent_bin;
static char *base_dir;

/* The guest's new PIN and its wrong guess: 8 digits each, so no FF
 * padding hides them, and nothing else in a log looks like them. */
#define NEW_PIN "80642975"
#define GUESS   "97531864"

struct agent {
	GPid pid;
	int out_fd;
	GString *out;
	char *err_path;
};

static void child_setup(gpointer data)
{
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	fd = open(data, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (fd >= 0 && fd != STDERR_FILENO) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

/* Starts serve with every log on and waits (poll on its stdout, under a
 * deadline) for the "control:" line it prints last when ready. */
static void agent_start_env(struct agent *a, const char *card,
			    const char *sock, const char *name,
			    const char *data_home)
{
	g_autofree char *listen = g_strdup_printf("unix:%s", sock);
	const char *argv[] = { agent_bin, "serve", "-v", "--card", card,
			       "--listen", listen, NULL };
	g_auto(GStrv) env = g_environ_setenv(g_get_environ(),
					     "G_MESSAGES_DEBUG", "all", TRUE);
	gint64 end = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
	GError *error = NULL;

	if (data_home != NULL)
		env = g_environ_setenv(env, "XDG_DATA_HOME", data_home, TRUE);
	memset(a, 0, sizeof(*a));
	a->out = g_string_new(NULL);
	a->err_path = g_build_filename(base_dir, name, NULL);
	ck_assert_msg(g_spawn_async_with_pipes(NULL, (char **)argv, env,
					       G_SPAWN_DO_NOT_REAP_CHILD,
					       child_setup, a->err_path,
					       &a->pid, NULL, &a->out_fd, NULL,
					       &error),
		      "cannot run %s: %s", agent_bin,
		      error ? error->message : "?");
	while (strstr(a->out->str, "\ncontrol: ") == NULL ||
	       !g_str_has_suffix(a->out->str, "\n")) {
		struct pollfd p = { .fd = a->out_fd, .events = POLLIN };
		gint64 left = (end - g_get_monotonic_time()) / 1000;
		char buf[4096];
		ssize_t n;

		ck_assert_msg(left > 0 && poll(&p, 1, (int)left) == 1,
			      "serve did not get ready: %s", a->out->str);
		n = read(a->out_fd, buf, sizeof(buf));
		ck_assert_msg(n > 0, "serve exited before it was ready: %s",
			      a->out->str);
		g_string_append_len(a->out, buf, n);
	}
}

static void agent_start(struct agent *a, const char *card, const char *sock,
			const char *name)
{
	agent_start_env(a, card, sock, name, NULL);
}

/* SIGTERM and wait for the exit (the agent's own event), then everything
 * it wrote: stdout and stderr. */
static char *agent_stop(struct agent *a)
{
	g_autofree char *err = NULL;
	char buf[4096];
	ssize_t n;
	int st;

	kill(a->pid, SIGTERM);
	ck_assert_int_eq(waitpid(a->pid, &st, 0), a->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "serve status %d",
		      st);
	while ((n = read(a->out_fd, buf, sizeof(buf))) > 0)
		g_string_append_len(a->out, buf, n);
	close(a->out_fd);
	ck_assert(g_file_get_contents(a->err_path, &err, NULL, NULL));
	g_spawn_close_pid(a->pid);
	g_free(a->err_path);
	return g_strconcat(g_string_free(a->out, FALSE) ?: "", err, NULL);
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

static void guest_attach(struct fake_qemu *g, const char *sock)
{
	fake_qemu_init(g, unix_connect(sock));
	ck_assert(fake_qemu_spin(g, fake_qemu_is_connected, NULL, 10000));
	fake_qemu_set_configuration(g, 1);
	fake_qemu_start_interrupt(g);
	ck_assert(fake_qemu_spin(g, fake_qemu_intr_n, GUINT_TO_POINTER(1),
				 5000));
	fake_qemu_power_on(g, 1);
}

/* `ccid-agent ctl --control PATH status` of the running agent, whose
 * control socket is on its "control: PATH" line. */
static char *agent_status(struct agent *a)
{
	const char *line = strstr(a->out->str, "\ncontrol: ");
	g_autofree char *path = NULL;
	const char *argv[] = { agent_bin, "ctl", "--control", NULL, "status",
			       NULL };
	char *out = NULL;
	int st;

	ck_assert(line != NULL);
	line += strlen("\ncontrol: ");
	path = g_strndup(line, strcspn(line, "\n"));
	argv[3] = path;
	ck_assert(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT,
			       NULL, NULL, &out, NULL, &st, NULL));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", out);
	return out;
}

/* XfrBlock of the hex @apdu; returns SW1 SW2 of the answer. */
static guint guest_sw(struct fake_qemu *g, guint8 *seq, const char *apdu)
{
	g_autoptr(GByteArray) a = test_unhex(apdu);
	g_autofree guint8 *msg = g_malloc(10 + a->len);
	struct fake_qemu_reply *r;
	uint32_t n = fake_qemu_xfr_block(msg, *seq, a->data, a->len);

	fake_qemu_bulk_out(g, msg, n);
	r = fake_qemu_bulk_in(g, 65536 + 100, 10000);
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_ge(r->len, 12);
	ck_assert_int_eq(r->data[0], CCID_RDR_TO_PC_DATA_BLOCK);
	ck_assert_int_eq(r->data[6], *seq);
	ck_assert_int_eq(r->data[7], 0x00);
	(*seq)++;
	return (guint)r->data[r->len - 2] << 8 | r->data[r->len - 1];
}

#define SELECT_PIV   "00 A4 04 0C 05 A0 00 00 03 08"
#define HEX_123456   "31 32 33 34 35 36 FF FF"
#define HEX_NEW_PIN  "38 30 36 34 32 39 37 35"
#define HEX_GUESS    "39 37 35 33 31 38 36 34"

/* The guest's commands and what it must get back. */
static const struct {
	const char *what, *apdu;
	guint sw;
} guessing_guest[] = {
	{ "SELECT", SELECT_PIV, 0x9000 },
	{ "change the default PIN to " NEW_PIN,
	  "00 24 00 80 10 " HEX_123456 " " HEX_NEW_PIN, 0x9000 },
	{ "the status query: verified", "00 20 00 80", 0x9000 },
	{ "guess 1 reaches the card", "00 20 00 80 08 " HEX_GUESS, 0x63C2 },
	{ "guess 2 reaches the card", "00 20 00 80 08 " HEX_GUESS, 0x63C1 },
	{ "guess 3: refused by the guard", "00 20 00 80 08 " HEX_GUESS, 0x63C1 },
	{ "guess 4, extended: refused",
	  "00 20 00 80 00 00 08 " HEX_GUESS " 00 00", 0x63C1 },
	{ "guess 5, chained: refused", "10 20 00 80 04 39 37 35 33", 0x63C1 },
	{ "guess 6, CHANGE REFERENCE DATA: refused",
	  "00 24 00 80 10 " HEX_GUESS " " HEX_GUESS, 0x63C1 },
	{ "even the right PIN: the guard cannot tell it from a guess",
	  "00 20 00 80 08 " HEX_NEW_PIN, 0x63C1 },
	{ "the status query: one try left", "00 20 00 80", 0x63C1 },
};
#define N_REFUSED 5u

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* The PIN and the guess, as text and as hex in the spellings a dump
 * would use. */
static void assert_no_pin(const char *log)
{
	static const char *const secrets[] = {
		NEW_PIN, GUESS,
		"3830363432393735", "3937353331383634",
		"38 30 36 34 32 39 37 35", "39 37 35 33 31 38 36 34",
		"38:30:36:34:32:39:37:35", "39:37:35:33:31:38:36:34",
		"0x38 0x30 0x36 0x34", "0x39 0x37 0x35 0x33",
	};
	g_autofree char *lower = g_ascii_strdown(log, -1);

	for (guint i = 0; i < G_N_ELEMENTS(secrets); i++) {
		g_autofree char *s = g_ascii_strdown(secrets[i], -1);

		ck_assert_msg(strstr(lower, s) == NULL,
			      "the log holds \"%s\"", secrets[i]);
	}
}

static char *piv_info(const char *dir)
{
	const char *argv[] = { agent_bin, "piv", "info", dir, NULL };
	char *out = NULL;
	int st;

	ck_assert(g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT,
			       NULL, NULL, &out, NULL, &st, NULL));
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", out);
	return out;
}

START_TEST(test_guessing_guest)
{
	g_autofree char *card_dir = g_build_filename(base_dir, "card", NULL);
	g_autofree char *sock = g_build_filename(base_dir, "g.sock", NULL);
	g_autofree char *card = g_strdup_printf("piv:%s", card_dir);
	g_autofree char *card_off = g_strdup_printf("piv:%s,pin_guard=off",
						    card_dir);
	g_autofree char *log = NULL;
	g_autofree char *log2 = NULL;
	g_autofree char *info = NULL;
	g_autofree char *status = NULL;
	g_autofree char *expect = NULL;
	static struct fake_qemu g;
	struct agent a;
	guint8 seq = 2;

	/* 1. The guessing guest. */
	agent_start(&a, card, sock, "guest.err");
	guest_attach(&g, sock);
	for (guint i = 0; i < G_N_ELEMENTS(guessing_guest); i++) {
		guint sw = guest_sw(&g, &seq, guessing_guest[i].apdu);

		ck_assert_msg(sw == guessing_guest[i].sw, "%s: %04X, expected %04X",
			      guessing_guest[i].what, sw, guessing_guest[i].sw);
	}
	/* The refusals are counted where the host user can read them. */
	status = agent_status(&a);
	expect = g_strdup_printf("\"pin_guard_refusals\": %u}", N_REFUSED);
	ck_assert_msg(strstr(status, expect) != NULL, "ctl status: %s", status);
	fake_qemu_fini(&g);
	log = agent_stop(&a);
	fprintf(stderr, "guessing guest: %u commands, %u refused by the "
		"guard; agent log %zu bytes, %u debug lines:\n%s\n",
		(unsigned)G_N_ELEMENTS(guessing_guest),
		count(log, "PIN guard: refused the guest's"), strlen(log),
		count(log, "[debug]"), log);
	ck_assert_msg(count(log, "PIN guard: refused the guest's") == N_REFUSED,
		      "%s", log);
	ck_assert_msg(strstr(log, "refused the guest's VERIFY of PIN reference "
			     "0x80: the piv card has 1 try left") != NULL,
		      "%s", log);
	/* Everything was logged: the debug lines of the card are there. */
	ck_assert_msg(strstr(log, "[debug]") != NULL || strstr(log, "DEBUG") != NULL,
		      "no debug log at all: %s", log);
	info = piv_info(card_dir);
	ck_assert_msg(strstr(info, "pin: 1 of 3 tries left") != NULL, "%s", info);

	/* 2. No PIN bytes anywhere. */
	assert_no_pin(log);

	/* 3. The host user's own reader, without the guard: the last try
	 * is still there for the right PIN. */
	seq = 2;
	agent_start(&a, card_off, sock, "host.err");
	guest_attach(&g, sock);
	ck_assert_uint_eq(guest_sw(&g, &seq, SELECT_PIV), 0x9000);
	ck_assert_uint_eq(guest_sw(&g, &seq, "00 20 00 80"), 0x63C1);
	ck_assert_uint_eq(guest_sw(&g, &seq, "00 20 00 80 08 " HEX_NEW_PIN),
			  0x9000);
	fake_qemu_fini(&g);
	log2 = agent_stop(&a);
	assert_no_pin(log2);
	g_free(info);
	info = piv_info(card_dir);
	ck_assert_msg(strstr(info, "pin: 3 of 3 tries left") != NULL, "%s", info);
}
END_TEST

/* The virtual CAC card (libcacard on NSS): its VERIFY goes to NSS's
 * login; whatever libcacard and NSS log with every log on, the PIN is not
 * in it. */
START_TEST(test_virtual_card_logs)
{
	g_autofree char *data = g_build_filename(base_dir, "data", NULL);
	g_autofree char *sock = g_build_filename(base_dir, "v.sock", NULL);
	g_autofree char *log = NULL;
	static struct fake_qemu g;
	struct agent a;
	guint8 seq = 2;
	GString *sws = g_string_new(NULL);

	agent_start_env(&a, "virtual", sock, "virtual.err", data);
	guest_attach(&g, sock);
	/* SELECT the CAC PKI applet of the first certificate. */
	g_string_append_printf(sws, "%04X", guest_sw(&g, &seq,
			       "00 A4 04 00 07 A0 00 00 00 79 01 00"));
	for (int i = 0; i < 4; i++)
		g_string_append_printf(sws, " %04X", guest_sw(&g, &seq,
				       "00 20 00 00 08 " HEX_GUESS));
	g_string_append_printf(sws, " %04X", guest_sw(&g, &seq, "00 20 00 00"));
	fake_qemu_fini(&g);
	log = agent_stop(&a);
	fprintf(stderr, "virtual card: SELECT, 4 wrong VERIFYs, a query: %s; "
		"%u refused by the guard; log %zu bytes\n", sws->str,
		count(log, "PIN guard: refused the guest's"), strlen(log));
	assert_no_pin(log);
	g_string_free(sws, TRUE);
}
END_TEST

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
	Suite *s = suite_create("serve-pin-guard");
	TCase *tc = tcase_create("piv");
	SRunner *sr;
	int failed;

	agent_bin = g_getenv("CCID_AGENT");
	if (agent_bin == NULL) {
		fprintf(stderr, "set CCID_AGENT to the ccid-agent binary\n");
		return 1;
	}
	base_dir = g_dir_make_tmp("ccid-pg-XXXXXX", NULL);
	if (base_dir == NULL)
		return 1;
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, test_guessing_guest);
	tcase_add_test(tc, test_virtual_card_logs);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tree(base_dir);
	return failed == 0 ? 0 : 1;
}
