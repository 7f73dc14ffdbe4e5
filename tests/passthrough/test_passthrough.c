/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Passthrough pieces that need no USB: --device selectors, the libusb
 * error table, the generic endpoint, and `ccid-agent list-usb` /
 * `passthrough` as subprocesses on a machine whose libusb sees no device
 * (CCID_AGENT names the binary).  The real-USB path is the nested guest
 * test, test-nested-passthrough.sh.
 */
#include <check.h>
#include <errno.h>
#include <libusb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <usbredirproto.h>

#include "ccid_endpoint.h"
#include "ccid_usb.h"

/* ---- selectors ------------------------------------------------------------ */

START_TEST(test_selector_vid_pid)
{
	struct ccid_usb_selector s;
	g_autoptr(GError) error = NULL;
	g_autofree char *d = NULL;

	ck_assert(ccid_usb_selector_parse("08e6:3437", &s, &error));
	ck_assert_int_eq(s.kind, CCID_USB_SELECT_ID);
	ck_assert_uint_eq(s.vid, 0x08e6);
	ck_assert_uint_eq(s.pid, 0x3437);
	ck_assert_ptr_null(s.serial);
	d = ccid_usb_selector_describe(&s);
	ck_assert_str_eq(d, "08e6:3437");
	ccid_usb_selector_clear(&s);

	ck_assert(ccid_usb_selector_parse("0x1209:CC1D", &s, &error));
	ck_assert_uint_eq(s.vid, 0x1209);
	ck_assert_uint_eq(s.pid, 0xcc1d);
	ccid_usb_selector_clear(&s);

	ck_assert(ccid_usb_selector_parse("1:2", &s, &error));
	ck_assert_uint_eq(s.vid, 1);
	ck_assert_uint_eq(s.pid, 2);
	ccid_usb_selector_clear(&s);
}
END_TEST

START_TEST(test_selector_serial)
{
	struct ccid_usb_selector s;
	g_autoptr(GError) error = NULL;
	g_autofree char *d = NULL;

	ck_assert(ccid_usb_selector_parse("1209:cc1d:0001", &s, &error));
	ck_assert_str_eq(s.serial, "0001");
	ccid_usb_selector_clear(&s);
	/* Everything after the second colon is the serial. */
	ck_assert(ccid_usb_selector_parse("1209:cc1d:AB:CD 12", &s, &error));
	ck_assert_str_eq(s.serial, "AB:CD 12");
	d = ccid_usb_selector_describe(&s);
	ck_assert_str_eq(d, "1209:cc1d:AB:CD 12");
	ccid_usb_selector_clear(&s);
}
END_TEST

START_TEST(test_selector_bus_addr)
{
	struct ccid_usb_selector s;
	g_autoptr(GError) error = NULL;
	g_autofree char *d = NULL;

	ck_assert(ccid_usb_selector_parse("001-004", &s, &error));
	ck_assert_int_eq(s.kind, CCID_USB_SELECT_BUS_ADDR);
	ck_assert_uint_eq(s.bus, 1);
	ck_assert_uint_eq(s.addr, 4);
	d = ccid_usb_selector_describe(&s);
	ck_assert_str_eq(d, "001-004");
	ck_assert(ccid_usb_selector_parse("3-127", &s, &error));
	ck_assert_uint_eq(s.bus, 3);
	ck_assert_uint_eq(s.addr, 127);
}
END_TEST

static const char *const bad_selectors[] = {
	"", "1209", "1209:", ":cc1d", "12345:cc1d", "1209:cc1dd", "g209:cc1d",
	"1209:cc1d:", "1209 :cc1d", "0x:cc1d", "1-", "-4", "0-4", "1-0",
	"256-1", "1-256", "1-4-5", "1.4", "a-b", "1--4", "+1-4",
};

START_TEST(test_selector_bad)
{
	struct ccid_usb_selector s;
	g_autoptr(GError) error = NULL;
	const char *spec = bad_selectors[_i];

	ck_assert_msg(!ccid_usb_selector_parse(spec, &s, &error),
		      "'%s' accepted", spec);
	ck_assert(g_error_matches(error, CCID_USB_ERROR,
				  CCID_USB_ERROR_SELECTOR));
	/* The message names what was wrong, with the input. */
	if (*spec)
		ck_assert_msg(strstr(error->message, spec) != NULL, "%s",
			      error->message);
	ck_assert_ptr_null(s.serial);
}
END_TEST

/* ---- libusb errors -> usbredir status ------------------------------------ */

START_TEST(test_error_table)
{
	static const struct {
		int err, status;
		enum ccid_usb_error_code code;
	} want[] = {
		{ LIBUSB_SUCCESS, usb_redir_success, CCID_USB_ERROR_FAILED },
		{ LIBUSB_ERROR_IO, usb_redir_ioerror, CCID_USB_ERROR_FAILED },
		{ LIBUSB_ERROR_INVALID_PARAM, usb_redir_inval,
		  CCID_USB_ERROR_FAILED },
		{ LIBUSB_ERROR_ACCESS, usb_redir_ioerror, CCID_USB_ERROR_ACCESS },
		{ LIBUSB_ERROR_NO_DEVICE, usb_redir_ioerror, CCID_USB_ERROR_GONE },
		{ LIBUSB_ERROR_NOT_FOUND, usb_redir_inval,
		  CCID_USB_ERROR_NOT_FOUND },
		{ LIBUSB_ERROR_BUSY, usb_redir_ioerror, CCID_USB_ERROR_BUSY },
		{ LIBUSB_ERROR_TIMEOUT, usb_redir_timeout, CCID_USB_ERROR_FAILED },
		{ LIBUSB_ERROR_OVERFLOW, usb_redir_babble, CCID_USB_ERROR_FAILED },
		{ LIBUSB_ERROR_PIPE, usb_redir_stall, CCID_USB_ERROR_FAILED },
		{ LIBUSB_ERROR_INTERRUPTED, usb_redir_cancelled,
		  CCID_USB_ERROR_FAILED },
		{ LIBUSB_ERROR_NO_MEM, usb_redir_ioerror, CCID_USB_ERROR_FAILED },
		{ LIBUSB_ERROR_NOT_SUPPORTED, usb_redir_inval,
		  CCID_USB_ERROR_FAILED },
		{ LIBUSB_ERROR_OTHER, usb_redir_ioerror, CCID_USB_ERROR_FAILED },
		/* Unknown (newer libusb): an I/O error, not success. */
		{ -1234, usb_redir_ioerror, CCID_USB_ERROR_FAILED },
		{ 7, usb_redir_ioerror, CCID_USB_ERROR_FAILED },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
		const struct ccid_usb_error_map *m =
			ccid_usb_error_lookup(want[i].err);

		ck_assert_int_eq(ccid_usb_status_from_libusb(want[i].err),
				 want[i].status);
		ck_assert_int_eq(m->redir_status, want[i].status);
		ck_assert_int_eq(m->code, want[i].code);
	}
}
END_TEST

START_TEST(test_error_message)
{
	g_autoptr(GError) error = NULL;

	ccid_usb_set_error(&error, LIBUSB_ERROR_ACCESS, "cannot open %s",
			   "/dev/bus/usb/001/004");
	ck_assert(g_error_matches(error, CCID_USB_ERROR, CCID_USB_ERROR_ACCESS));
	ck_assert_msg(g_str_has_prefix(error->message,
				       "cannot open /dev/bus/usb/001/004: "),
		      "%s", error->message);
	ck_assert_msg(strstr(error->message, "udev rule") != NULL, "%s",
		      error->message);
	g_clear_error(&error);
	ccid_usb_set_error(&error, LIBUSB_ERROR_PIPE, "x");
	/* No hint: no empty parentheses. */
	ck_assert_ptr_null(strstr(error->message, "()"));
	ck_assert_ptr_null(strstr(error->message, " ("));
}
END_TEST

/* ---- a machine without USB devices --------------------------------------- */

START_TEST(test_scan_empty)
{
	libusb_context *ctx = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) all = NULL;

	if (g_file_test("/dev/bus/usb", G_FILE_TEST_EXISTS))
		return;   /* this host has USB: nothing to assert */
	ck_assert_int_eq(libusb_init(&ctx), 0);
	all = ccid_usb_scan(ctx, NULL, FALSE, &error);
	ck_assert_ptr_nonnull(all);
	ck_assert_uint_eq(all->len, 0);
	libusb_exit(ctx);
}
END_TEST

static int run_agent(const char *const *args, char **out, char **err)
{
	const char *agent = g_getenv("CCID_AGENT");
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GError) error = NULL;
	int status = -1;

	ck_assert_msg(agent != NULL, "CCID_AGENT is not set");
	g_ptr_array_add(argv, (gpointer)agent);
	for (size_t i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)args[i]);
	g_ptr_array_add(argv, NULL);
	ck_assert_msg(g_spawn_sync(NULL, (char **)argv->pdata, NULL, 0, NULL,
				   NULL, out, err, &status, &error),
		      "%s", error ? error->message : "");
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(test_list_usb_none)
{
	g_autofree char *out = NULL, *err = NULL;
	const char *const json[] = { "list-usb", "--json", NULL };
	const char *const table[] = { "list-usb", NULL };
	const char *const bad[] = { "list-usb", "extra", NULL };

	if (g_file_test("/dev/bus/usb", G_FILE_TEST_EXISTS))
		return;
	ck_assert_int_eq(run_agent(json, &out, &err), 0);
	ck_assert_str_eq(out, "[]\n");
	ck_assert_str_eq(err, "");
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	ck_assert_int_eq(run_agent(table, &out, &err), 0);
	ck_assert_str_eq(out, "no USB smart-card readers (interface class "
			 "0x0B) found\n");
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	ck_assert_int_eq(run_agent(bad, &out, &err), 2);
	ck_assert_ptr_nonnull(strstr(err, "unexpected argument 'extra'"));
}
END_TEST

START_TEST(test_passthrough_errors)
{
	static const struct {
		const char *args[8];
		int status;
		const char *message;
	} cases[] = {
		{ { "passthrough", "--device", "1209:cc1d", "-l",
		    "tcp:127.0.0.1:1", NULL }, 1,
		  "no USB device matches '1209:cc1d' ('ccid-agent list-usb'" },
		{ { "passthrough", "--device", "1209:cc1d:XY1", NULL }, 1,
		  "no USB device matches '1209:cc1d:XY1'" },
		{ { "passthrough", "--device", "001-004", NULL }, 1,
		  "no USB device matches '001-004'" },
		{ { "passthrough", "--device", "12:zz", NULL }, 2,
		  "bad --device: '12:zz': VID and PID must be 1 to 4 hex" },
		{ { "passthrough", NULL }, 2, "--device is required" },
		{ { "passthrough", "-d", "1:2", "-l", "unix:/tmp/x",
		    "--connect", "tcp:h:1", NULL }, 2,
		  "--listen and --connect exclude each other" },
		{ { "passthrough", "-d", "1:2", "-l", "tcp:host", NULL }, 2,
		  "bad address: 'tcp:host': expected tcp:HOST:PORT" },
	};

	if (g_file_test("/dev/bus/usb", G_FILE_TEST_EXISTS))
		return;
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *out = NULL, *err = NULL;
		int st = run_agent(cases[i].args, &out, &err);

		ck_assert_msg(st == cases[i].status, "case %zu: exit %d: %s",
			      i, st, err);
		ck_assert_msg(strstr(err, cases[i].message) != NULL,
			      "case %zu: %s", i, err);
		/* Nothing for QEMU when nothing is served. */
		ck_assert_str_eq(out, "");
	}
}
END_TEST

/* ---- the generic endpoint ------------------------------------------------ */

struct fake_session {
	int fds[4];
	unsigned n;
	gboolean attached;
	char *peer;
};

static gboolean fake_attach(void *user, int fd, const char *peer,
			    GError **error)
{
	struct fake_session *f = user;

	if (f->attached) {
		close(fd);
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_BUSY, "busy");
		return FALSE;
	}
	f->attached = TRUE;
	f->fds[f->n++] = fd;
	g_free(f->peer);
	f->peer = g_strdup(peer);
	return TRUE;
}

static gboolean fake_is_attached(void *user)
{
	return ((struct fake_session *)user)->attached;
}

static const struct ccid_endpoint_session fake_cbs = {
	.attach = fake_attach,
	.is_attached = fake_is_attached,
};

/* Who may a passthrough take the device from (take_from_pcscd)?  Only
 * when every holder is the named process and holds it through usbfs.
 * A made-up device: interface drivers and openers as sysfs and /proc
 * would give them; the openers are this process and its parent, named
 * by their real /proc/PID/comm (check forks each test, so the parent
 * has our name too; pid 1, init, is the other process). */
START_TEST(test_held_only_by)
{
	static const struct {
		const char *drivers[2];      /* per interface, NULL: none */
		gboolean with_init;          /* a second opener: pid 1 */
		gboolean ignore_kernel;
		gboolean want;
	} cases[] = {
		{ { "usbfs", NULL }, FALSE, FALSE, TRUE },    /* libccid-like */
		{ { NULL, NULL }, FALSE, FALSE, FALSE },      /* nobody claimed */
		{ { "usbfs", "usbhid" }, FALSE, FALSE, FALSE },/* a kernel driver */
		{ { "usbfs", "usbhid" }, FALSE, TRUE, TRUE }, /* ... --force */
		{ { "usbfs", NULL }, TRUE, FALSE, FALSE },    /* another process */
	};
	pid_t self = getpid(), init = 1;
	g_autofree char *me = ccid_usb_pid_name(self);
	g_autofree char *other = ccid_usb_pid_name(init);

	ck_assert_ptr_nonnull(me);
	ck_assert_str_ne(me, other != NULL ? other : "");
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct ccid_usb_info info;

		memset(&info, 0, sizeof(info));
		info.n_interfaces = 2;
		info.drivers = g_new0(char *, 3);
		info.drivers[0] = g_strdup(cases[i].drivers[0]);
		info.drivers[1] = g_strdup(cases[i].drivers[1]);
		info.open_pids = g_array_new(FALSE, FALSE, sizeof(pid_t));
		g_array_append_val(info.open_pids, self);
		if (cases[i].with_init)
			g_array_append_val(info.open_pids, init);
		ck_assert_msg(ccid_usb_info_held_only_by(&info,
				cases[i].ignore_kernel, me) == cases[i].want,
			      "case %zu", i);
		ccid_usb_info_clear(&info);
	}
}
END_TEST

static gboolean flag_fd_cb(gint fd, GIOCondition cond, gpointer data)
{
	*(gboolean *)data = TRUE;
	return G_SOURCE_REMOVE;
}

static gboolean flag_timeout_cb(gpointer data)
{
	*(gboolean *)data = TRUE;
	return G_SOURCE_REMOVE;
}

START_TEST(test_endpoint_unix)
{
	g_autofree char *dir = g_dir_make_tmp("pt-ep-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "s.sock", NULL);
	g_autofree char *spec = g_strdup_printf("unix:%s", path);
	struct ccid_bridge_addr addr;
	struct fake_session f = { 0 };
	g_autoptr(GError) error = NULL;
	ccid_endpoint *ep, *ep2;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int c1, c2;
	char byte;

	ck_assert(ccid_bridge_addr_parse(spec, &addr, &error));
	ep = ccid_endpoint_listen(&fake_cbs, &f, &addr, &error);
	ck_assert_msg(ep != NULL, "%s", error ? error->message : "");
	/* A live socket is not taken over. */
	ep2 = ccid_endpoint_listen(&fake_cbs, &f, &addr, &error);
	ck_assert_ptr_null(ep2);
	ck_assert(g_error_matches(error, CCID_BRIDGE_ERROR,
				  CCID_BRIDGE_ERROR_BUSY));
	g_clear_error(&error);

	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	c1 = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c1, (struct sockaddr *)&sun, sizeof(sun)), 0);
	while (f.n < 1)
		g_main_context_iteration(NULL, TRUE);
	ck_assert_str_eq(f.peer, spec);
	/* A second peer is refused: its socket is closed. */
	c2 = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c2, (struct sockaddr *)&sun, sizeof(sun)), 0);
	/* The endpoint accepts it and closes it, on the main loop: iterate
	 * until our end sees the close (a source on c2, no sleeping), under
	 * a deadline. */
	{
		gboolean hup = FALSE, late = FALSE;
		guint w = g_unix_fd_add(c2, G_IO_IN | G_IO_HUP | G_IO_ERR,
					flag_fd_cb, &hup);
		guint t = g_timeout_add(2000, flag_timeout_cb, &late);

		while (!hup && !late)
			g_main_context_iteration(NULL, TRUE);
		if (!hup)
			g_source_remove(w);
		if (!late)
			g_source_remove(t);
	}
	ck_assert_int_eq(recv(c2, &byte, 1, MSG_DONTWAIT), 0);
	ck_assert_uint_eq(f.n, 1);

	ccid_endpoint_free(ep);
	ck_assert(!g_file_test(path, G_FILE_TEST_EXISTS));
	close(c1);
	close(c2);
	close(f.fds[0]);
	g_free(f.peer);
	ccid_bridge_addr_clear(&addr);
	g_rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("passthrough");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_selector_vid_pid);
	tcase_add_test(tc, test_selector_serial);
	tcase_add_test(tc, test_selector_bus_addr);
	tcase_add_loop_test(tc, test_selector_bad, 0,
			    (int)G_N_ELEMENTS(bad_selectors));
	tcase_add_test(tc, test_error_table);
	tcase_add_test(tc, test_error_message);
	tcase_add_test(tc, test_scan_empty);
	tcase_add_test(tc, test_list_usb_none);
	tcase_add_test(tc, test_passthrough_errors);
	tcase_add_test(tc, test_held_only_by);
	tcase_add_test(tc, test_endpoint_unix);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
