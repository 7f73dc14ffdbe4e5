/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `ccid-agent serve --card nss:DB,token=NAME` as a subprocess, driven by
 * the fake QEMU usb-redir peer: it starts, prints its lines, the peer gets
 * the reader with the token inserted, the token's ATR and certificate, and
 * the agent exits cleanly on SIGTERM.
 */
#include "fake_qemu.h"
#include "nss_fixture.h"

#include <ccid-emu/ccid_emu.h>
#include <ccid-emu/ccid_proto.h>
#include <check.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *agent_bin;

/* Reads the agent's stdout until the "control:" line (printed last, when
 * it is ready) or @timeout_ms. */
static GString *read_until_control(int fd, unsigned timeout_ms)
{
	GString *out = g_string_new(NULL);
	gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	while (g_get_monotonic_time() < end &&
	       !(strstr(out->str, "\ncontrol: ") != NULL &&
		 g_str_has_suffix(out->str, "\n"))) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[512];
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		g_string_append_len(out, buf, n);
	}
	return out;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	ck_assert_msg(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0,
		      "connect %s: %s", path, g_strerror(errno));
	return fd;
}

static struct fake_qemu_reply *xfr(struct fake_qemu *g, uint8_t seq,
				   const uint8_t *apdu, uint32_t len)
{
	uint8_t msg[CCID_HDR_LEN + 300];
	uint32_t n = fake_qemu_xfr_block(msg, seq, apdu, len);

	fake_qemu_bulk_out(g, msg, n);
	return fake_qemu_bulk_in(g, 65536 + 100, 5000);
}

START_TEST(test_serve_nss)
{
	g_autofree char *sock = g_build_filename(tmp_root, "nss.sock", NULL);
	g_autofree char *ctl = g_build_filename(tmp_root, "nss.ctl", NULL);
	g_autofree char *card = g_strdup_printf("nss:%s,token=" TOKEN, hw_db);
	g_autofree char *listen = g_strconcat("unix:", sock, NULL);
	const char *argv[] = { agent_bin, "serve", "--card", card, "--listen",
			       listen, "--control", ctl, NULL };
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) out = NULL;
	struct fake_qemu g;
	struct fake_qemu_reply *r;
	GPid pid;
	int out_fd, status = 0;

	ck_assert_msg(g_spawn_async_with_pipes(NULL, (char **)argv, NULL,
					       G_SPAWN_DO_NOT_REAP_CHILD,
					       NULL, NULL, &pid, NULL, &out_fd,
					       NULL, &error),
		      "%s", error ? error->message : "?");
	out = read_until_control(out_fd, 30000);
	ck_assert_msg(strstr(out->str, "# ccid-agent serve: nss card in 1 "
			     "slot") != NULL, "stdout: %s", out->str);
	ck_assert_ptr_nonnull(strstr(out->str, "\nqemu: -chardev socket,"));
	ck_assert_ptr_nonnull(strstr(out->str, "\nlibvirt: <redirdev "));
	ck_assert_ptr_nonnull(strstr(out->str, "\ncontrol: "));

	fake_qemu_init(&g, unix_connect(sock));
	ck_assert(fake_qemu_spin(&g, fake_qemu_is_connected, NULL, 5000));
	ck_assert_uint_eq(g.conn.vendor_id, CCID_EMU_DEFAULT_VID);
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_start_interrupt(&g);
	ck_assert(fake_qemu_spin(&g, fake_qemu_intr_n, GUINT_TO_POINTER(1),
				 5000));
	/* NotifySlotChange: slot 0 present, changed (the token is in). */
	ck_assert_int_eq(g.intr[0][0], CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE);
	ck_assert_int_eq(g.intr[0][1], 0x03);

	fake_qemu_power_on(&g, 1);
	{
		/* The exact ATR, through a fresh power cycle's DataBlock. */
		const uint8_t on[10] = { CCID_PC_TO_RDR_ICC_POWER_ON, 0, 0, 0,
					 0, 0, 2, 0, 0, 0 };

		fake_qemu_bulk_out(&g, on, sizeof(on));
		r = fake_qemu_bulk_in(&g, 65536 + 100, 5000);
		ck_assert_int_eq(r->len, 10 + (int)CACARD_ATR_LEN);
		ck_assert_mem_eq(r->data + 10, cacard_atr, CACARD_ATR_LEN);
	}
	{
		/* SELECT of PKI applet 0 answers like the CAC card it is. */
		const uint8_t sel[] = { 0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0,
					0x00, 0x00, 0x00, 0x79, 0x01, 0x00 };

		r = xfr(&g, 3, sel, sizeof(sel));
		ck_assert_int_eq(r->data[0], CCID_RDR_TO_PC_DATA_BLOCK);
		ck_assert_int_eq(r->data[7], 0x00);
		ck_assert_int_eq(r->len, 12);
		ck_assert_int_eq(r->data[10], 0x61);
	}
	fake_qemu_fini(&g);

	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "serve exit status %d", status);
	close(out_fd);
	g_spawn_close_pid(pid);
}
END_TEST

int main(void)
{
	Suite *s;
	TCase *tc;
	SRunner *sr;
	int failed;

	agent_bin = g_getenv("CCID_AGENT");
	if (agent_bin == NULL) {
		fprintf(stderr, "CCID_AGENT is not set\n");
		return 1;
	}
	if (!nss_fixture_build())
		return 77;
	s = suite_create("nss serve");
	tc = tcase_create("serve");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_serve_nss);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed == 0)
		nss_fixture_remove();
	return failed == 0 ? 0 : 1;
}
