/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Load driver: one usbredir peer per reader socket, all at once, each
 * sending N APDUs that only it can recognise in the answer (bench/load.sh,
 * bench/README.md "Load").
 *
 *   load_peers [-n N] [-l DATA_LEN] [-i INS] SOCKET...
 *
 * Each peer is a child process speaking usbredir's usb-guest role with
 * the real usbredirparser (tests/common/fake_qemu.c, the peer the serve
 * tests use): it attaches, configures the reader, powers the card on and
 * sends N ECHO APDUs (80 14 00 00 Lc DATA: tests/pcsc/vicc_card.py's ECHO,
 * or with -i 01 the loopback card's ECHO, 80 01).  DATA names the peer and
 * the APDU ("peer 03 apdu 000417 ...") followed by random bytes, so an
 * answer is one of:
 *   ok       exactly DATA 90 00
 *   crossed  another peer's or another APDU's data
 *   error    anything else, or no answer
 * Each child prints one line: "peer I: ok N crossed N errors N ms N
 * p50_us N p99_us N max_us N time_ext N" (time extensions: the reader
 * telling the guest to wait while another VM holds the card); the parent prints the totals and exits 1
 * unless every answer of every peer was ok.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>

#include <ccid-emu/ccid_emu.h>

#include "fake_qemu.h"

#define MAX_PEERS 64

static int unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int cmp_u64(const void *a, const void *b)
{
	guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;

	return x < y ? -1 : x > y;
}

/* Whether @d looks like the data of some peer's APDU (not ours). */
static gboolean is_peer_data(const guint8 *d, int len)
{
	return len >= 22 && memcmp(d, "peer ", 5) == 0 &&
	       memcmp(d + 7, " apdu ", 6) == 0;
}

static unsigned echo_ins = 0x14;

static int run_peer(unsigned idx, const char *sock, unsigned n,
		    unsigned data_len)
{
	static struct fake_qemu g;
	g_autofree guint8 *apdu = g_malloc(5 + data_len);
	g_autofree guint8 *msg = g_malloc(10 + 5 + data_len);
	g_autofree guint64 *lat = g_new0(guint64, n);
	GRand *rnd = g_rand_new();
	unsigned ok = 0, crossed = 0, errors = 0, n_time_ext = 0;
	gint64 t0;
	int fd = unix_connect(sock);

	if (fd < 0) {
		printf("peer %u: cannot connect to %s: %s\n", idx, sock,
		       g_strerror(errno));
		return 1;
	}
	fake_qemu_init(&g, fd);
	if (!fake_qemu_spin(&g, fake_qemu_is_connected, NULL, 10000)) {
		printf("peer %u: no device_connect from %s\n", idx, sock);
		return 1;
	}
	fake_qemu_set_configuration(&g, 1);
	fake_qemu_start_interrupt(&g);
	/* A shared card may come a moment after the reader: wait for the
	 * NotifySlotChange that says it is there (bit 0: present). */
	for (unsigned k = 1;; k++) {
		if (k > FAKE_QEMU_MAX_INTR ||
		    !fake_qemu_spin(&g, fake_qemu_intr_n, GUINT_TO_POINTER(k),
				    20000)) {
			printf("peer %u: no card in the reader of %s\n", idx,
			       sock);
			return 1;
		}
		if (g.intr_len[k - 1] >= 2 && (g.intr[k - 1][1] & 0x01))
			break;
	}
	fake_qemu_power_on(&g, 0);

	t0 = g_get_monotonic_time();
	for (unsigned i = 0; i < n; i++) {
		guint8 seq = (guint8)(i + 1);
		struct fake_qemu_reply *r;
		uint32_t len;
		gint64 s;

		apdu[0] = 0x80; apdu[1] = (guint8)echo_ins; apdu[2] = 0; apdu[3] = 0;
		apdu[4] = (guint8)data_len;
		g_snprintf((char *)apdu + 5, 22, "peer %02u apdu %06u ", idx % 100,
			   i % 1000000);
		for (unsigned k = 21; k < data_len; k++)
			apdu[5 + k] = (guint8)g_rand_int(rnd);
		len = fake_qemu_xfr_block(msg, seq, apdu, 5 + data_len);
		s = g_get_monotonic_time();
		fake_qemu_bulk_out(&g, msg, len);
		r = fake_qemu_bulk_in(&g, 65536 + 100, 30000);
		/* Time extensions (bStatus 80: the card is busy with another
		 * VM's transaction) come before the answer. */
		while (r->len >= 10 && (r->data[7] & 0xC0) == 0x80) {
			n_time_ext++;
			r = fake_qemu_bulk_in(&g, 65536 + 100, 30000);
		}
		lat[i] = (guint64)(g_get_monotonic_time() - s);
		if (r->len == (int)(10 + data_len + 2) &&
		    r->data[0] == CCID_RDR_TO_PC_DATA_BLOCK && r->data[6] == seq &&
		    memcmp(r->data + 10, apdu + 5, data_len) == 0 &&
		    r->data[10 + data_len] == 0x90 &&
		    r->data[11 + data_len] == 0x00) {
			ok++;
		} else if (r->len > 10 && is_peer_data(r->data + 10, r->len - 10)) {
			crossed++;
			printf("peer %u: APDU %u answered with \"%.21s\"\n", idx,
			       i, (const char *)r->data + 10);
		} else {
			errors++;
			if (errors <= 3)
				printf("peer %u: APDU %u: answer of %d bytes, "
				       "bStatus %02X bError %02X\n", idx, i,
				       r->len, r->len > 8 ? r->data[7] : 0,
				       r->len > 8 ? r->data[8] : 0);
		}
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("peer %u: ok %u crossed %u errors %u ms %lld p50_us %llu "
	       "p99_us %llu max_us %llu time_ext %u\n", idx, ok, crossed, errors,
	       (long long)((g_get_monotonic_time() - t0) / 1000),
	       (unsigned long long)lat[n / 2],
	       (unsigned long long)lat[(n * 99) / 100],
	       (unsigned long long)lat[n - 1], n_time_ext);
	fflush(stdout);
	fake_qemu_fini(&g);
	g_rand_free(rnd);
	return ok == n ? 0 : 1;
}

/* fake_qemu asserts with Check, so each peer runs as a Check test (in its
 * own child process already: no fork of Check's). */
static struct {
	unsigned idx, n, data_len;
	const char *sock;
} peer_args;

START_TEST(test_peer)
{
	ck_assert_int_eq(run_peer(peer_args.idx, peer_args.sock, peer_args.n,
				  peer_args.data_len), 0);
}
END_TEST

static int run_peer_checked(unsigned idx, const char *sock, unsigned n,
			    unsigned data_len)
{
	Suite *s = suite_create("load");
	TCase *tc = tcase_create("peer");
	SRunner *sr;
	int failed;

	peer_args.idx = idx;
	peer_args.sock = sock;
	peer_args.n = n;
	peer_args.data_len = data_len;
	tcase_set_timeout(tc, 3600);
	tcase_add_test(tc, test_peer);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	if (failed) {
		TestResult **tr = srunner_failures(sr);

		printf("peer %u: %s\n", idx, tr_msg(tr[0]));
		free(tr);
	}
	srunner_free(sr);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	unsigned n = 1000, data_len = 32, n_peers = 0, failed = 0;
	pid_t pids[MAX_PEERS];
	gint64 t0;
	int opt;

	while ((opt = getopt(argc, argv, "n:l:i:")) != -1) {
		switch (opt) {
		case 'n':
			n = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			echo_ins = (unsigned)strtoul(optarg, NULL, 16) & 0xFF;
			break;
		case 'l':
			data_len = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: load_peers [-n APDUS] "
				"[-l DATA_LEN] [-i INS] SOCKET...\n");
			return 2;
		}
	}
	if (n == 0 || data_len < 22 || data_len > 255 || optind >= argc ||
	    argc - optind > MAX_PEERS) {
		fprintf(stderr, "load_peers: need -n >= 1, 22 <= -l <= 255 and "
			"1 to %d sockets\n", MAX_PEERS);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	t0 = g_get_monotonic_time();
	for (int i = optind; i < argc; i++) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(run_peer_checked(n_peers, argv[i], n, data_len));
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		pids[n_peers++] = pid;
	}
	for (unsigned i = 0; i < n_peers; i++) {
		int st;

		if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0) {
			printf("peer %u: failed (status %d)\n", i, st);
			failed++;
		}
	}
	printf("load: %u peers x %u APDUs in %.2f s, %u peers failed\n",
	       n_peers, n, (g_get_monotonic_time() - t0) / 1e6, failed);
	return failed == 0 ? 0 : 1;
}
