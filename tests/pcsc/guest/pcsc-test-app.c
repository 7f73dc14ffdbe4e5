/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcsc-test-app: an ordinary PC/SC application for the guest test of the
 * pcsc backend (test-pcsc-guest.sh).  The same binary runs on the host,
 * against the private pcscd with the vicc card (PCSCLITE_CSOCK_NAME), and
 * in the guest, against the guest's pcscd + libccid and ccid-emu's reader:
 * what one side answers, the other must answer byte for byte.
 *
 * Plain C on libpcsclite only (the guest has nothing else), built on the
 * host (Debian 12, like the guest).
 *
 *   atr                     wait for a card, connect shared, print its ATR
 *   run IN OUT              the APDUs of IN (hex, one a line) in one
 *                           connection and transaction, the answers to OUT
 *                           (hex, one a line)
 *   xfr HEX                 one APDU; prints ok or the PC/SC error, and
 *                           how long it took (also on failure)
 *   unpower                 connect shared, disconnect with
 *                           SCARD_UNPOWER_CARD
 *   hold MS                 connect exclusively (retrying while another
 *                           program has the card, up to -t), vicc COUNT,
 *                           keep the card MS ms, COUNT again: how many
 *                           APDUs of others ran meanwhile (must be none)
 *   crosstalk SECONDS BURST PAUSE_MS
 *                           sequences of SELECT FID + READ BINARY 64 +
 *                           READ BINARY 32 at offset 32 on the vicc card's
 *                           files 1001..1004, FID chosen at random, BURST
 *                           sequences in one transaction, then PAUSE_MS
 *                           quiet; counts sequences, mixed-up answers
 *                           (another file's bytes) and errors
 *
 * Options: -r READER (substring of the reader name; default: the first
 * reader), -t MS (how long to wait for the reader, the card or an
 * exclusive connection; default 10000), -s SEED (crosstalk).
 * Exit status: 0 ok, 1 a mixed-up or wrong answer, 2 usage, 3 PC/SC
 * error, 4 timeout.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <winscard.h>

/* Shared with the guest kit's tool; a relative path, so plain compiler
 * flags still build this one file. */
#include "../../guest/tool/pcsc_tool_util.h"

#define EXIT_MISMATCH 1
#define EXIT_USAGE    2
#define EXIT_PCSC     3
#define EXIT_TIMEOUT  4

/* Extended APDUs: 4 + 3 + 65535 + 2; answers 65536 + 2. */
#define CMD_CAP  (4u + 3u + 65535u + 2u)
#define RESP_CAP (65536u + 2u)

/* The vicc card's small files (tests/pcsc/vicc_card.py). */
#define SMALL_LEN 64u
static const uint16_t small_fids[4] = { 0x1001, 0x1002, 0x1003, 0x1004 };

struct app {
	const char *reader_match;
	long timeout_ms;
	unsigned seed;
	SCARDCONTEXT ctx;
	bool have_ctx;
	SCARDHANDLE card;
	bool connected;
	DWORD protocol;
	char reader[512];
};

/* Hex to bytes; blanks are skipped.  False (with a message) on anything
 * else or more than @cap bytes. */
static bool hex_parse(const char *s, uint8_t *out, size_t cap, size_t *len)
{
	const char *start = s;
	size_t n = 0;

	while (*s != '\0') {
		if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
			s++;
			continue;
		}
		int hi = tool_hex_nibble(s[0]);
		int lo = hi < 0 ? -1 : tool_hex_nibble(s[1]);

		if (hi < 0 || lo < 0) {
			fprintf(stderr, "pcsc-test-app: '%.40s': not a hex byte at offset %td\n",
				start, s - start);
			return false;
		}
		if (n == cap) {
			fprintf(stderr, "pcsc-test-app: '%.40s...': more than %zu bytes\n",
				start, cap);
			return false;
		}
		out[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	*len = n;
	return true;
}

static bool parse_long(const char *s, long min, long max, const char *what,
		       long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "pcsc-test-app: %s '%s': expected %ld..%ld\n",
			what, s, min, max);
		return false;
	}
	*out = v;
	return true;
}

static long remaining(double deadline)
{
	double left = deadline - tool_now_ms();

	return left > 0 ? (long)left : 0;
}

static int app_establish(struct app *a)
{
	LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL,
					&a->ctx);

	if (rv != SCARD_S_SUCCESS) {
		tool_pcsc_error("pcsc-test-app", "SCardEstablishContext", rv);
		return EXIT_PCSC;
	}
	a->have_ctx = true;
	return 0;
}

/* Waits until a reader matching -r exists and holds a card. */
static int app_wait_card(struct app *a, double deadline)
{
	char buf[4096];

	for (;;) {
		DWORD len = sizeof(buf);
		LONG rv = SCardListReaders(a->ctx, NULL, buf, &len);

		a->reader[0] = '\0';
		if (rv == SCARD_S_SUCCESS)
			for (const char *p = buf; *p != '\0'; p += strlen(p) + 1)
				if (a->reader_match == NULL ||
				    strstr(p, a->reader_match) != NULL) {
					snprintf(a->reader, sizeof(a->reader),
						 "%s", p);
					break;
				}
		if (a->reader[0] != '\0')
			break;
		if (rv != SCARD_S_SUCCESS && rv != SCARD_E_NO_READERS_AVAILABLE) {
			tool_pcsc_error("pcsc-test-app", "SCardListReaders", rv);
			return EXIT_PCSC;
		}
		if (remaining(deadline) == 0) {
			fprintf(stderr, "pcsc-test-app: timeout: no reader matching '%s'\n",
				a->reader_match ? a->reader_match : "");
			return EXIT_TIMEOUT;
		}
		tool_sleep_ms(100);
	}
	SCARD_READERSTATE rs = { .szReader = a->reader,
				 .dwCurrentState = SCARD_STATE_UNAWARE };
	for (;;) {
		LONG rv = SCardGetStatusChange(a->ctx, (DWORD)remaining(deadline),
					       &rs, 1);

		if (rv == SCARD_E_TIMEOUT) {
			fprintf(stderr, "pcsc-test-app: timeout: no card in '%s'\n",
				a->reader);
			return EXIT_TIMEOUT;
		}
		if (rv != SCARD_S_SUCCESS) {
			tool_pcsc_error("pcsc-test-app", "SCardGetStatusChange", rv);
			return EXIT_PCSC;
		}
		if ((rs.dwEventState & SCARD_STATE_PRESENT) &&
		    !(rs.dwEventState & SCARD_STATE_MUTE))
			return 0;
		rs.dwCurrentState = rs.dwEventState & ~SCARD_STATE_CHANGED;
	}
}

static int app_connect(struct app *a, DWORD share)
{
	double deadline = tool_now_ms() + (double)a->timeout_ms;
	int ret = a->have_ctx ? 0 : app_establish(a);

	if (ret == 0)
		ret = app_wait_card(a, deadline);
	while (ret == 0) {
		LONG rv = SCardConnect(a->ctx, a->reader, share,
				       SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
				       &a->card, &a->protocol);

		if (rv == SCARD_S_SUCCESS) {
			a->connected = true;
			break;
		}
		/* Another program has the card (or we want it alone and
		 * somebody is connected): wait for it. */
		if (rv == SCARD_E_SHARING_VIOLATION && remaining(deadline) > 0) {
			tool_sleep_ms(50);
			continue;
		}
		/* The card went away between the wait and the connect (the
		 * host's pcscd with vpcd reports a card it just powered off
		 * as gone for a moment when vicc answers the power-up late):
		 * wait for it again, within -t. */
		if ((rv == SCARD_E_NO_SMARTCARD || rv == SCARD_W_REMOVED_CARD ||
		     rv == SCARD_W_UNRESPONSIVE_CARD) && remaining(deadline) > 0) {
			ret = app_wait_card(a, deadline);
			continue;
		}
		tool_pcsc_error("pcsc-test-app", "SCardConnect", rv);
		ret = rv == SCARD_E_SHARING_VIOLATION ? EXIT_TIMEOUT : EXIT_PCSC;
	}
	return ret;
}

static void app_close(struct app *a, DWORD disposition)
{
	if (a->connected)
		(void)SCardDisconnect(a->card, disposition);
	a->connected = false;
	if (a->have_ctx)
		(void)SCardReleaseContext(a->ctx);
	a->have_ctx = false;
}

static LONG app_xfr(struct app *a, const uint8_t *cmd, size_t n,
		    uint8_t *resp, size_t *len)
{
	const SCARD_IO_REQUEST *pci = a->protocol == SCARD_PROTOCOL_T0 ?
		SCARD_PCI_T0 : SCARD_PCI_T1;
	DWORD rlen = RESP_CAP;
	LONG rv = SCardTransmit(a->card, pci, cmd, (DWORD)n, NULL, resp, &rlen);

	*len = rv == SCARD_S_SUCCESS ? rlen : 0;
	/* A card that dies mid-APDU can come back as "success", 0 bytes. */
	if (rv == SCARD_S_SUCCESS && rlen < 2)
		return SCARD_F_COMM_ERROR;
	return rv;
}

/* --- commands ---------------------------------------------------------------- */

static int cmd_atr(struct app *a)
{
	uint8_t atr[MAX_ATR_SIZE];
	DWORD atr_len = sizeof(atr), state, proto, rlen = 0;
	double t0 = tool_now_ms();
	int ret = app_connect(a, SCARD_SHARE_SHARED);
	LONG rv;

	if (ret != 0)
		return ret;
	rv = SCardStatus(a->card, NULL, &rlen, &state, &proto, atr, &atr_len);
	if (rv != SCARD_S_SUCCESS) {
		tool_pcsc_error("pcsc-test-app", "SCardStatus", rv);
		return EXIT_PCSC;
	}
	printf("atr=");
	tool_print_hex(stdout, atr, atr_len, SIZE_MAX);
	printf(" protocol=T=%d waited_ms=%.0f\nreader=%s\n",
	       proto == SCARD_PROTOCOL_T0 ? 0 : 1, tool_now_ms() - t0, a->reader);
	return 0;
}

static int cmd_run(struct app *a, const char *in_path, const char *out_path)
{
	FILE *in = fopen(in_path, "r"), *out = NULL;
	uint8_t *cmd = malloc(CMD_CAP), *resp = malloc(RESP_CAP);
	char *line = NULL;
	size_t cap = 0;
	unsigned n_apdus = 0;
	double t0;
	int ret = 0;
	LONG rv;

	if (in == NULL || cmd == NULL || resp == NULL) {
		fprintf(stderr, "pcsc-test-app: %s: %s\n", in_path, strerror(errno));
		ret = EXIT_USAGE;
	}
	if (ret == 0 && (out = fopen(out_path, "w")) == NULL) {
		fprintf(stderr, "pcsc-test-app: %s: %s\n", out_path, strerror(errno));
		ret = EXIT_USAGE;
	}
	if (ret == 0)
		ret = app_connect(a, SCARD_SHARE_SHARED);
	if (ret == 0 && (rv = SCardBeginTransaction(a->card)) != SCARD_S_SUCCESS) {
		tool_pcsc_error("pcsc-test-app", "SCardBeginTransaction", rv);
		ret = EXIT_PCSC;
	}
	t0 = tool_now_ms();
	while (ret == 0 && getline(&line, &cap, in) > 0) {
		size_t n, len;

		if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0')
			continue;
		if (!hex_parse(line, cmd, CMD_CAP, &n) || n < 4) {
			ret = EXIT_USAGE;
			break;
		}
		rv = app_xfr(a, cmd, n, resp, &len);
		if (rv != SCARD_S_SUCCESS) {
			fprintf(stderr, "pcsc-test-app: APDU %u: ", n_apdus + 1);
			tool_pcsc_error("pcsc-test-app", "SCardTransmit", rv);
			ret = EXIT_PCSC;
			break;
		}
		tool_print_hex(out, resp, len, SIZE_MAX);
		fputc('\n', out);
		n_apdus++;
	}
	if (a->connected)
		(void)SCardEndTransaction(a->card, SCARD_LEAVE_CARD);
	if (ret == 0)
		printf("run apdus=%u ms=%.1f\n", n_apdus, tool_now_ms() - t0);
	free(line);
	free(cmd);
	free(resp);
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0 && ret == 0)
		ret = EXIT_PCSC;
	return ret;
}

static int cmd_xfr(struct app *a, const char *hex)
{
	uint8_t cmd[300], *resp = malloc(RESP_CAP);
	size_t n, len = 0;
	double t0;
	int ret;
	LONG rv;

	if (resp == NULL)
		return EXIT_PCSC;
	if (!hex_parse(hex, cmd, sizeof(cmd), &n) || n < 4) {
		free(resp);
		return EXIT_USAGE;
	}
	ret = app_connect(a, SCARD_SHARE_SHARED);
	if (ret != 0) {
		free(resp);
		return ret;
	}
	t0 = tool_now_ms();
	rv = app_xfr(a, cmd, n, resp, &len);
	if (rv == SCARD_S_SUCCESS) {
		printf("xfr ok ms=%.0f resp=", tool_now_ms() - t0);
		tool_print_hex(stdout, resp, len > 64 ? 64 : len, SIZE_MAX);
		printf("%s\n", len > 64 ? "..." : "");
	} else {
		printf("xfr error ms=%.0f rv=0x%08lX %s\n", tool_now_ms() - t0,
		       (unsigned long)rv, pcsc_stringify_error(rv));
		ret = EXIT_PCSC;
	}
	free(resp);
	return ret;
}

static int cmd_unpower(struct app *a)
{
	int ret = app_connect(a, SCARD_SHARE_SHARED);

	if (ret == 0) {
		LONG rv = SCardDisconnect(a->card, SCARD_UNPOWER_CARD);

		a->connected = false;
		if (rv != SCARD_S_SUCCESS) {
			tool_pcsc_error("pcsc-test-app", "SCardDisconnect(UNPOWER)", rv);
			return EXIT_PCSC;
		}
		printf("unpower ok\n");
	}
	return ret;
}

/* The vicc COUNT command: how many APDUs the card ran before this one. */
static int vicc_count(struct app *a, uint32_t *count)
{
	static const uint8_t apdu[] = { 0x80, 0x16, 0x00, 0x00, 0x04 };
	uint8_t r[16];
	DWORD len = sizeof(r);
	LONG rv = SCardTransmit(a->card, a->protocol == SCARD_PROTOCOL_T0 ?
				SCARD_PCI_T0 : SCARD_PCI_T1, apdu, sizeof(apdu),
				NULL, r, &len);

	if (rv != SCARD_S_SUCCESS || len != 6 || r[4] != 0x90 || r[5] != 0) {
		fprintf(stderr, "pcsc-test-app: COUNT failed (rv 0x%08lX, %lu bytes)\n",
			(unsigned long)rv, (unsigned long)len);
		return EXIT_PCSC;
	}
	*count = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 |
		 (uint32_t)r[2] << 8 | r[3];
	return 0;
}

static int cmd_hold(struct app *a, long ms)
{
	double t0 = tool_now_ms(), t1;
	uint32_t before = 0, after = 0;
	int ret = app_connect(a, SCARD_SHARE_EXCLUSIVE);

	if (ret != 0)
		return ret;
	t1 = tool_now_ms();
	printf("hold exclusive after_ms=%.0f\n", t1 - t0);
	fflush(stdout);
	ret = vicc_count(a, &before);
	if (ret == 0) {
		tool_sleep_ms(ms);
		ret = vicc_count(a, &after);
	}
	if (ret == 0) {
		/* after - before == 1: only our own first COUNT ran. */
		printf("hold done held_ms=%.0f count_before=%u count_after=%u others=%u\n",
		       tool_now_ms() - t1, before, after, after - before - 1);
		if (after - before != 1)
			ret = EXIT_MISMATCH;
	}
	app_close(a, SCARD_LEAVE_CARD);
	printf("hold released\n");
	return ret;
}

static uint8_t small_byte(uint16_t fid, unsigned i)
{
	return (uint8_t)(((fid & 0xFFu) * 37u + i * 11u) & 0xFFu);
}

/* Which small file's bytes @r holds, from @offset on; 0 if none. */
static uint16_t which_file(const uint8_t *r, size_t n, unsigned offset)
{
	for (unsigned f = 0; f < 4; f++) {
		size_t i;

		for (i = 0; i < n; i++)
			if (r[i] != small_byte(small_fids[f], offset + (unsigned)i))
				break;
		if (i == n)
			return small_fids[f];
	}
	return 0;
}

struct tally {
	unsigned seqs, mixed, errors, apdus, slow_begins;
	double max_seq_ms, max_begin_ms;
};

/* One sequence: SELECT, READ 64, READ 32 at 32.  Returns false on a
 * PC/SC error (counted). */
static bool one_sequence(struct app *a, uint16_t fid, struct tally *t)
{
	uint8_t sel[] = { 0x00, 0xA4, 0x00, 0x0C, 0x02, fid >> 8, fid & 0xFF };
	static const uint8_t rd1[] = { 0x00, 0xB0, 0x00, 0x00, SMALL_LEN };
	static const uint8_t rd2[] = { 0x00, 0xB0, 0x00, 0x20, 0x20 };
	uint8_t r[300];
	size_t len;
	bool mixed = false;
	LONG rv;

	t->seqs++;
	rv = app_xfr(a, sel, sizeof(sel), r, &len);
	t->apdus++;
	if (rv == SCARD_S_SUCCESS && (len != 2 || r[0] != 0x90 || r[1] != 0))
		mixed = true;       /* a SELECT can only fail by itself */
	if (rv == SCARD_S_SUCCESS) {
		rv = app_xfr(a, rd1, sizeof(rd1), r, &len);
		t->apdus++;
		if (rv == SCARD_S_SUCCESS &&
		    (len != SMALL_LEN + 2 || r[len - 2] != 0x90 ||
		     which_file(r, SMALL_LEN, 0) != fid))
			mixed = true;
	}
	if (rv == SCARD_S_SUCCESS) {
		rv = app_xfr(a, rd2, sizeof(rd2), r, &len);
		t->apdus++;
		if (rv == SCARD_S_SUCCESS &&
		    (len != 0x20 + 2 || r[len - 2] != 0x90 ||
		     which_file(r, 0x20, 0x20) != fid))
			mixed = true;
	}
	if (rv != SCARD_S_SUCCESS) {
		t->errors++;
		tool_pcsc_error("pcsc-test-app", "crosstalk: SCardTransmit", rv);
		return false;
	}
	if (mixed) {
		t->mixed++;
		fprintf(stderr, "pcsc-test-app: crosstalk: sequence %u on %04X got another file's answer\n",
			t->seqs, fid);
	}
	return true;
}

static int cmd_crosstalk(struct app *a, long seconds, long burst, long pause)
{
	struct tally t = { 0 };
	double end, t_start;
	int ret = app_connect(a, SCARD_SHARE_SHARED);

	if (ret != 0)
		return ret;
	srand(a->seed);
	t_start = tool_now_ms();
	end = t_start + (double)seconds * 1e3;
	while (tool_now_ms() < end && t.errors == 0) {
		double t0 = tool_now_ms(), tb;
		LONG rv = SCardBeginTransaction(a->card);

		tb = tool_now_ms() - t0;
		if (tb > t.max_begin_ms)
			t.max_begin_ms = tb;
		/* Waited for somebody else's transaction: the two sides
		 * really did run at the same time. */
		if (tb > 20)
			t.slow_begins++;
		if (rv != SCARD_S_SUCCESS) {
			tool_pcsc_error("pcsc-test-app", "SCardBeginTransaction", rv);
			t.errors++;
			break;
		}
		for (long i = 0; i < burst; i++) {
			double ts = tool_now_ms();

			if (!one_sequence(a, small_fids[rand() % 4], &t))
				break;
			if (tool_now_ms() - ts > t.max_seq_ms)
				t.max_seq_ms = tool_now_ms() - ts;
		}
		(void)SCardEndTransaction(a->card, SCARD_LEAVE_CARD);
		if (pause > 0)
			tool_sleep_ms(pause / 2 + rand() % (pause + 1));
	}
	printf("crosstalk sequences=%u mixed=%u errors=%u apdus=%u seconds=%.1f waited_begins=%u max_begin_ms=%.0f max_seq_ms=%.1f\n",
	       t.seqs, t.mixed, t.errors, t.apdus, (tool_now_ms() - t_start) / 1e3,
	       t.slow_begins, t.max_begin_ms, t.max_seq_ms);
	if (t.errors > 0)
		return EXIT_PCSC;
	return t.mixed > 0 ? EXIT_MISMATCH : 0;
}

static void usage(FILE *f)
{
	fputs("usage: pcsc-test-app [-r READER] [-t MS] [-s SEED] COMMAND [ARGS]\n"
	      "  atr | run IN OUT | xfr HEX | unpower | hold MS |\n"
	      "  crosstalk SECONDS BURST PAUSE_MS\n"
	      "exit: 0 ok, 1 mismatch, 2 usage, 3 PC/SC error, 4 timeout\n", f);
}

int main(int argc, char **argv)
{
	struct app a = { .timeout_ms = 10000, .seed = (unsigned)getpid() };
	long v, w, x;
	const char *cmd;
	int opt, ret;

	while ((opt = getopt(argc, argv, "+r:t:s:h")) != -1) {
		switch (opt) {
		case 'r':
			a.reader_match = optarg;
			break;
		case 't':
			if (!parse_long(optarg, 0, 3600000, "timeout", &v))
				return EXIT_USAGE;
			a.timeout_ms = v;
			break;
		case 's':
			if (!parse_long(optarg, 0, 0x7FFFFFFF, "seed", &v))
				return EXIT_USAGE;
			a.seed = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	cmd = argv[optind];
	argc -= optind + 1;
	argv += optind + 1;
	if (strcmp(cmd, "atr") == 0 && argc == 0)
		ret = cmd_atr(&a);
	else if (strcmp(cmd, "run") == 0 && argc == 2)
		ret = cmd_run(&a, argv[0], argv[1]);
	else if (strcmp(cmd, "xfr") == 0 && argc == 1)
		ret = cmd_xfr(&a, argv[0]);
	else if (strcmp(cmd, "unpower") == 0 && argc == 0)
		ret = cmd_unpower(&a);
	else if (strcmp(cmd, "hold") == 0 && argc == 1)
		ret = parse_long(argv[0], 0, 600000, "hold ms", &v) ?
			cmd_hold(&a, v) : EXIT_USAGE;
	else if (strcmp(cmd, "crosstalk") == 0 && argc == 3)
		ret = parse_long(argv[0], 1, 3600, "seconds", &v) &&
		      parse_long(argv[1], 1, 1000, "burst", &w) &&
		      parse_long(argv[2], 0, 60000, "pause ms", &x) ?
			cmd_crosstalk(&a, v, w, x) : EXIT_USAGE;
	else {
		usage(stderr);
		ret = EXIT_USAGE;
	}
	app_close(&a, SCARD_LEAVE_CARD);
	return ret;
}
