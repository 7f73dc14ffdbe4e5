/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-guest-tool: the guest half of the guest-boot test kit.  Runs inside
 * the test guest against its stock pcscd + libccid and drives whatever
 * reader the host plugged in (our emulated one behind usb-redir, or QEMU's
 * own usb-ccid): list readers, wait for reader and card events, print the
 * ATR, find a reader by its card's ATR, send APDUs (optionally fetching
 * T=0 "61 xx" answers with GET RESPONSE) and check the answers, check the
 * loopback card's large extended-length answers byte by byte, and time
 * round trips.
 *
 * Output is one "key=value ..." line per fact, for guest scripts to grep.
 * Exit status: 0 success, 1 an answer did not match, 2 usage error,
 * 3 PC/SC error, 4 timeout.
 *
 * Built on the host (Debian 12, like the guest) by build-guest.sh.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <winscard.h>

#include "pcsc_tool_util.h"

#define EXIT_MISMATCH 1
#define EXIT_USAGE    2
#define EXIT_PCSC     3
#define EXIT_TIMEOUT  4

/* The loopback test card's command set (ccid-emu/cards/ccid_card_loopback.h). */
#define LOOP_CLA         0x80u
#define LOOP_INS_ECHO    0x01u
#define LOOP_INS_PATTERN 0x02u
#define LOOP_INS_DELAYED_PATTERN 0x04u
#define MAX_DELAY_MS     600000ul  /* ten minutes: more is a typo */

#define MAX_NC 65535u          /* extended Lc */
#define MAX_NE 65536u          /* extended Le 00 00 */
#define RESP_CAP (MAX_NE + 2u) /* data + SW1 SW2 */
#define CMD_CAP  (7u + MAX_NC + 2u)

/* Alternatives in one EXPECT ("*9000|*61..") */
#define MAX_ALTS 4

#define PNP_READER "\\\\?PnP?\\Notification"

/* Longest APDU or answer printed in full; longer ones are elided. */
#define PRINT_MAX 48u

struct opts {
	const char *reader_match;   /* substring of the reader name, or NULL */
	long timeout_ms;
	bool verbose;
	bool get_response;          /* answer 61 xx with GET RESPONSE */
};

/* ISO 7816-4 GET RESPONSE, and how many a single exchange may need: a
 * 64 KiB answer in 256-byte pieces, plus slack.  A card that keeps
 * answering 61 xx beyond that is broken, not slow. */
#define ISO_INS_GET_RESPONSE 0xC0u
#define MAX_GET_RESPONSES    300u

enum check_kind {
	CHECK_NONE,     /* any answer */
	CHECK_MATCH,    /* any of the alternatives in alts[] */
	CHECK_PATTERN,  /* loopback PATTERN: n pattern bytes + 90 00 */
	CHECK_ECHO,     /* loopback ECHO: the command data back + 90 00 */
};

/* An expected answer: hex with ".." wildcards, or a suffix of one. */
struct expect {
	uint8_t *bytes;
	uint8_t *mask;          /* 0x00: byte is a wildcard */
	size_t len;
	bool suffix;            /* matches the answer's tail */
};

/* One command to send and what its answer must look like. */
struct exchange {
	uint8_t *cmd;
	size_t cmd_len;
	enum check_kind check;
	struct expect alts[MAX_ALTS];
	size_t n_alts;
	size_t n;               /* PATTERN / ECHO data length */
	const uint8_t *echo_data;
	char label[64];
};

static uint8_t loop_pattern_byte(size_t i)
{
	return (uint8_t)((i * 31u + 7u) & 0xFFu);
}

/*
 * Parses hex bytes; spaces and ':' separate nothing and are skipped.  With
 * @mask, ".." is a wildcard byte.  Returns false with a message naming the
 * offending text.
 */
static bool hex_parse(const char *s, uint8_t *out, uint8_t *mask, size_t cap,
		      size_t *len)
{
	size_t n = 0;
	const char *start = s;

	while (*s != '\0') {
		if (*s == ' ' || *s == ':') {
			s++;
			continue;
		}
		if (n == cap) {
			fprintf(stderr, "ccid-guest-tool: '%.20s...': more than %zu bytes\n",
				start, cap);
			return false;
		}
		if (mask != NULL && s[0] == '.' && s[1] == '.') {
			out[n] = 0;
			mask[n++] = 0x00;
			s += 2;
			continue;
		}
		int hi = tool_hex_nibble(s[0]);
		int lo = hi < 0 ? -1 : tool_hex_nibble(s[1]);

		if (hi < 0 || lo < 0) {
			fprintf(stderr, "ccid-guest-tool: '%s': not a hex byte at offset %td\n",
				start, s - start);
			return false;
		}
		out[n] = (uint8_t)(hi << 4 | lo);
		if (mask != NULL)
			mask[n] = 0xFF;
		n++;
		s += 2;
	}
	*len = n;
	return true;
}

static bool parse_ulong(const char *s, unsigned long min, unsigned long max,
			const char *what, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' ||
	    v < min || v > max) {
		fprintf(stderr, "ccid-guest-tool: %s '%s': expected a number %lu..%lu\n",
			what, s, min, max);
		return false;
	}
	*out = v;
	return true;
}

/* --- building exchanges ------------------------------------------------- */

static void exchange_free(struct exchange *x)
{
	if (x == NULL)
		return;
	free(x->cmd);
	for (size_t i = 0; i < x->n_alts; i++) {
		free(x->alts[i].bytes);
		free(x->alts[i].mask);
	}
	memset(x, 0, sizeof(*x));
}

/* PATTERN with Ne = n: short Le up to 256 (Le 00), extended beyond. */
static bool build_pattern(struct exchange *x, unsigned long n)
{
	uint8_t *c = malloc(7);

	if (c == NULL)
		return false;
	c[0] = LOOP_CLA;
	c[1] = LOOP_INS_PATTERN;
	c[2] = 0;
	c[3] = 0;
	if (n <= 256) {
		c[4] = (uint8_t)(n & 0xFFu);    /* 256 -> 00 */
		x->cmd_len = 5;
	} else {
		c[4] = 0;
		c[5] = (uint8_t)((n >> 8) & 0xFFu);     /* 65536 -> 00 00 */
		c[6] = (uint8_t)(n & 0xFFu);
		x->cmd_len = 7;
	}
	x->cmd = c;
	x->check = CHECK_PATTERN;
	x->n = n;
	snprintf(x->label, sizeof(x->label), "pattern:%lu", n);
	return true;
}

/*
 * DELAYED PATTERN: the card waits ms milliseconds, then answers n pattern
 * bytes; case 4 with the delay as 4 big-endian data bytes, short (Lc 04,
 * Le up to 256) or extended (00 00 04 ... Le of 2 bytes) encoding.
 */
static bool build_delayed_pattern(struct exchange *x, unsigned long ms,
				  unsigned long n)
{
	uint8_t *c = malloc(13);
	size_t off;

	if (c == NULL)
		return false;
	c[0] = LOOP_CLA;
	c[1] = LOOP_INS_DELAYED_PATTERN;
	c[2] = 0;
	c[3] = 0;
	if (n <= 256) {
		c[4] = 4;
		off = 5;
	} else {
		c[4] = 0;
		c[5] = 0;
		c[6] = 4;
		off = 7;
	}
	for (int i = 3; i >= 0; i--)
		c[off++] = (uint8_t)((ms >> (8 * i)) & 0xFFu);
	if (n <= 256) {
		c[off++] = (uint8_t)(n & 0xFFu);
	} else {
		c[off++] = (uint8_t)((n >> 8) & 0xFFu);
		c[off++] = (uint8_t)(n & 0xFFu);
	}
	x->cmd = c;
	x->cmd_len = off;
	x->check = CHECK_PATTERN;
	x->n = n;
	snprintf(x->label, sizeof(x->label), "dpattern:%lu:%lu", ms, n);
	return true;
}

/* "MS:N" of a dpattern: spec. */
static bool parse_dpattern(const char *s, struct exchange *x)
{
	const char *colon = strchr(s, ':');
	unsigned long ms, n;
	char *head;
	bool ok;

	if (colon == NULL) {
		fprintf(stderr, "ccid-guest-tool: 'dpattern:%s': expected dpattern:MS:N\n",
			s);
		return false;
	}
	head = strndup(s, (size_t)(colon - s));
	if (head == NULL)
		return false;
	ok = parse_ulong(head, 0, MAX_DELAY_MS, "delay", &ms) &&
	     parse_ulong(colon + 1, 1, MAX_NE, "pattern length", &n);
	free(head);
	return ok && build_delayed_pattern(x, ms, n);
}

/*
 * ECHO with Nc = n bytes of the loopback pattern: case 1 when n is 0,
 * short case 4 (Le 00) up to 255 bytes, extended case 4 (Le 00 00) beyond.
 */
static bool build_echo(struct exchange *x, unsigned long n)
{
	uint8_t *c = malloc(CMD_CAP);
	size_t off;

	if (c == NULL)
		return false;
	c[0] = LOOP_CLA;
	c[1] = LOOP_INS_ECHO;
	c[2] = 0;
	c[3] = 0;
	if (n == 0) {
		off = 4;
	} else if (n <= 255) {
		c[4] = (uint8_t)n;
		off = 5;
	} else {
		c[4] = 0;
		c[5] = (uint8_t)(n >> 8);
		c[6] = (uint8_t)(n & 0xFFu);
		off = 7;
	}
	for (size_t i = 0; i < n; i++)
		c[off + i] = loop_pattern_byte(i);
	x->echo_data = c + off;
	off += n;
	if (n > 255) {
		c[off++] = 0;
		c[off++] = 0;
	} else if (n > 0) {
		c[off++] = 0;
	}
	x->cmd = c;
	x->cmd_len = off;
	x->check = CHECK_ECHO;
	x->n = n;
	snprintf(x->label, sizeof(x->label), "echo:%lu", n);
	return true;
}

/* "HEX", "HEX=EXPECT[|EXPECT...]" (EXPECT: hex with ".." wildcards,
 * '*' in front for a suffix), "pattern:N", "echo:N" or "dpattern:MS:N". */
static bool exchange_parse(struct exchange *x, const char *spec)
{
	unsigned long n;
	const char *eq;
	char *hex;
	bool ok;

	memset(x, 0, sizeof(*x));
	if (strncmp(spec, "pattern:", 8) == 0)
		return parse_ulong(spec + 8, 1, MAX_NE, "pattern length", &n) &&
		       build_pattern(x, n);
	if (strncmp(spec, "echo:", 5) == 0)
		return parse_ulong(spec + 5, 0, MAX_NC, "echo length", &n) &&
		       build_echo(x, n);
	if (strncmp(spec, "dpattern:", 9) == 0)
		return parse_dpattern(spec + 9, x);

	eq = strchr(spec, '=');
	hex = strndup(spec, eq != NULL ? (size_t)(eq - spec) : strlen(spec));
	x->cmd = malloc(CMD_CAP);
	if (hex == NULL || x->cmd == NULL) {
		free(hex);
		return false;
	}
	ok = hex_parse(hex, x->cmd, NULL, CMD_CAP, &x->cmd_len);
	free(hex);
	if (!ok)
		return false;
	if (x->cmd_len < 4) {
		fprintf(stderr, "ccid-guest-tool: '%s': an APDU has at least 4 bytes\n",
			spec);
		return false;
	}
	snprintf(x->label, sizeof(x->label), "apdu");
	if (eq == NULL)
		return true;

	x->check = CHECK_MATCH;
	for (const char *alt = eq + 1; alt != NULL;) {
		const char *bar = strchr(alt, '|');
		struct expect *e;

		if (x->n_alts == MAX_ALTS) {
			fprintf(stderr, "ccid-guest-tool: '%s': more than %d alternatives\n",
				spec, MAX_ALTS);
			return false;
		}
		e = &x->alts[x->n_alts++];
		hex = strndup(alt, bar != NULL ? (size_t)(bar - alt) : strlen(alt));
		e->bytes = malloc(RESP_CAP);
		e->mask = malloc(RESP_CAP);
		if (hex == NULL || e->bytes == NULL || e->mask == NULL) {
			free(hex);
			return false;
		}
		e->suffix = hex[0] == '*';
		ok = hex_parse(hex + (e->suffix ? 1 : 0), e->bytes, e->mask,
			       RESP_CAP, &e->len);
		free(hex);
		if (!ok)
			return false;
		if (e->len < 2) {
			fprintf(stderr, "ccid-guest-tool: '%s': expect at least SW1 SW2\n",
				spec);
			return false;
		}
		alt = bar != NULL ? bar + 1 : NULL;
	}
	return true;
}

static bool expect_match(const struct expect *e, const uint8_t *r, size_t n)
{
	size_t off;

	if (e->suffix ? n < e->len : n != e->len)
		return false;
	off = n - e->len;
	for (size_t i = 0; i < e->len; i++)
		if ((r[off + i] & e->mask[i]) != e->bytes[i])
			return false;
	return true;
}

/* --- checking answers ---------------------------------------------------- */

static bool check_sw_ok(const struct exchange *x, const uint8_t *r, size_t n)
{
	if (r[n - 2] == 0x90 && r[n - 1] == 0x00)
		return true;
	fprintf(stderr, "ccid-guest-tool: %s: SW %02X%02X, expected 9000\n",
		x->label, r[n - 2], r[n - 1]);
	return false;
}

static bool check_answer(const struct exchange *x, const uint8_t *r, size_t n)
{
	if (n < 2) {
		fprintf(stderr, "ccid-guest-tool: %s: answer of %zu bytes has no SW\n",
			x->label, n);
		return false;
	}
	switch (x->check) {
	case CHECK_NONE:
		return true;
	case CHECK_MATCH:
		for (size_t i = 0; i < x->n_alts; i++)
			if (expect_match(&x->alts[i], r, n))
				return true;
		fprintf(stderr, "ccid-guest-tool: %s: answer of %zu bytes (SW %02X%02X) matches no expected answer\n",
			x->label, n, r[n - 2], r[n - 1]);
		return false;
	case CHECK_PATTERN:
	case CHECK_ECHO:
		if (n != x->n + 2) {
			fprintf(stderr, "ccid-guest-tool: %s: answer has %zu bytes, expected %zu\n",
				x->label, n, x->n + 2);
			return false;
		}
		for (size_t i = 0; i < x->n; i++) {
			uint8_t want = x->check == CHECK_PATTERN ?
				       loop_pattern_byte(i) : x->echo_data[i];

			if (r[i] != want) {
				fprintf(stderr, "ccid-guest-tool: %s: data byte %zu is %02X, expected %02X\n",
					x->label, i, r[i], want);
				return false;
			}
		}
		return check_sw_ok(x, r, n);
	}
	return false;
}

/* --- PC/SC plumbing -------------------------------------------------------- */

struct session {
	SCARDCONTEXT ctx;
	bool have_ctx;
	SCARDHANDLE card;
	bool have_card;
	DWORD protocol;
	char reader[MAX_READERNAME];
	double deadline;
};

static long remaining_ms(const struct session *s)
{
	double left = s->deadline - tool_now_ms();

	return left <= 0 ? 0 : (long)left;
}

static void session_close(struct session *s)
{
	if (s->have_card)
		SCardDisconnect(s->card, SCARD_LEAVE_CARD);
	if (s->have_ctx)
		SCardReleaseContext(s->ctx);
	s->have_card = false;
	s->have_ctx = false;
}

/* pcscd may still be starting: retry until the deadline. */
static int session_establish(struct session *s)
{
	LONG rv;

	if (s->have_ctx)
		return 0;
	for (;;) {
		rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &s->ctx);
		if (rv == SCARD_S_SUCCESS) {
			s->have_ctx = true;
			return 0;
		}
		if (rv != SCARD_E_NO_SERVICE) {
			tool_pcsc_error("ccid-guest-tool", "SCardEstablishContext", rv);
			return EXIT_PCSC;
		}
		if (remaining_ms(s) == 0) {
			fprintf(stderr, "ccid-guest-tool: timeout: pcscd is not running\n");
			return EXIT_TIMEOUT;
		}
		tool_sleep_ms(100);
	}
}

/* Reader names into @buf (a multi-string); *@count of them.  No reader is
 * not an error. */
static int session_readers(struct session *s, char *buf, DWORD cap,
			   unsigned *count)
{
	DWORD len = cap;
	LONG rv;

	*count = 0;
	buf[0] = '\0';
	rv = SCardListReaders(s->ctx, NULL, buf, &len);
	if (rv == SCARD_E_NO_READERS_AVAILABLE) {
		buf[0] = '\0';
		return 0;
	}
	if (rv != SCARD_S_SUCCESS) {
		tool_pcsc_error("ccid-guest-tool", "SCardListReaders", rv);
		return EXIT_PCSC;
	}
	/* A multi-string ends with an empty string: two NULs, or one when
	 * the list is empty. */
	if (len == 0 || len > cap || buf[len - 1] != '\0' ||
	    (len >= 2 && buf[len - 2] != '\0')) {
		fprintf(stderr, "ccid-guest-tool: SCardListReaders: malformed list of %lu bytes\n",
			(unsigned long)len);
		return EXIT_PCSC;
	}
	for (const char *p = buf; *p != '\0'; p += strlen(p) + 1)
		(*count)++;
	return 0;
}

/*
 * Waits until at least @want readers exist (and, with a match, one whose
 * name contains it), sleeping in SCardGetStatusChange on the PnP
 * pseudo-reader so a hotplug wakes us at once.  The wait is cut into
 * slices so a lost notification costs at most one slice.
 */
static int session_wait_readers(struct session *s, const char *match,
				unsigned want, char *buf, DWORD cap)
{
	for (;;) {
		unsigned count = 0;
		int ret = session_establish(s);

		if (ret != 0)
			return ret;
		ret = session_readers(s, buf, cap, &count);
		if (ret != 0) {
			/* pcscd restarted under us: start over. */
			session_close(s);
			tool_sleep_ms(50);
			continue;
		}
		if (count >= want) {
			if (match == NULL)
				return 0;
			for (const char *p = buf; *p != '\0'; p += strlen(p) + 1)
				if (strstr(p, match) != NULL)
					return 0;
		}
		if (remaining_ms(s) == 0) {
			fprintf(stderr, "ccid-guest-tool: timeout: %u reader(s), waiting for %u%s%s\n",
				count, want, match != NULL ? " matching " : "",
				match != NULL ? match : "");
			return EXIT_TIMEOUT;
		}

		SCARD_READERSTATE rs = {
			.szReader = PNP_READER,
			.dwCurrentState = (DWORD)count << 16,
		};
		long slice = remaining_ms(s);
		LONG rv;

		if (slice > 500)
			slice = 500;
		rv = SCardGetStatusChange(s->ctx, (DWORD)slice, &rs, 1);
		if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT) {
			session_close(s);
			tool_sleep_ms(50);
		}
	}
}

/* The reader to use: the first one matching opts->reader_match. */
static int session_pick_reader(struct session *s, const struct opts *o)
{
	char buf[4096];
	int ret = session_wait_readers(s, o->reader_match, 1, buf, sizeof(buf));

	if (ret != 0)
		return ret;
	for (const char *p = buf; *p != '\0'; p += strlen(p) + 1) {
		if (o->reader_match == NULL || strstr(p, o->reader_match) != NULL) {
			snprintf(s->reader, sizeof(s->reader), "%s", p);
			return 0;
		}
	}
	return EXIT_PCSC;   /* not reached: the wait found one */
}

static const char *protocol_name(DWORD p)
{
	switch (p) {
	case SCARD_PROTOCOL_T0:
		return "T=0";
	case SCARD_PROTOCOL_T1:
		return "T=1";
	case SCARD_PROTOCOL_RAW:
		return "raw";
	default:
		return "none";
	}
}

/* Waits for a card in the reader (to the deadline), then connects. */
static int session_connect(struct session *s, const struct opts *o)
{
	int ret = session_pick_reader(s, o);

	if (ret != 0)
		return ret;
	for (;;) {
		LONG rv = SCardConnect(s->ctx, s->reader, SCARD_SHARE_SHARED,
				       SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
				       &s->card, &s->protocol);

		if (rv == SCARD_S_SUCCESS) {
			s->have_card = true;
			return 0;
		}
		if (rv != SCARD_E_NO_SMARTCARD && rv != SCARD_W_REMOVED_CARD &&
		    rv != SCARD_E_SHARING_VIOLATION) {
			tool_pcsc_error("ccid-guest-tool", "SCardConnect", rv);
			return EXIT_PCSC;
		}
		if (remaining_ms(s) == 0) {
			tool_pcsc_error("ccid-guest-tool", "timeout: SCardConnect", rv);
			return EXIT_TIMEOUT;
		}
		tool_sleep_ms(100);
	}
}

static int session_transmit_raw(struct session *s, const uint8_t *cmd,
				size_t cmd_len, uint8_t *resp, size_t cap,
				size_t *resp_len)
{
	const SCARD_IO_REQUEST *pci = s->protocol == SCARD_PROTOCOL_T0 ?
				      SCARD_PCI_T0 : SCARD_PCI_T1;
	DWORD len = (DWORD)cap;
	LONG rv = SCardTransmit(s->card, pci, cmd, (DWORD)cmd_len, NULL, resp,
				&len);

	if (rv != SCARD_S_SUCCESS) {
		tool_pcsc_error("ccid-guest-tool", "SCardTransmit", rv);
		return EXIT_PCSC;
	}
	if (len < 2 || len > cap) {
		fprintf(stderr, "ccid-guest-tool: SCardTransmit: answer of %lu bytes (buffer %zu)\n",
			(unsigned long)len, cap);
		return EXIT_PCSC;
	}
	*resp_len = len;
	return 0;
}

/*
 * One exchange: the command, and with -g a GET RESPONSE for every 61 xx
 * answer, the pieces joined (data of each, the last SW), as a T=0 client
 * such as OpenSC does.  *@n_apdus counts the APDUs sent.
 */
static int session_transmit(struct session *s, const struct opts *o,
			    const struct exchange *x, uint8_t *resp,
			    size_t *resp_len, unsigned *n_apdus)
{
	size_t len = 0, have;
	int ret;

	*n_apdus = 1;
	ret = session_transmit_raw(s, x->cmd, x->cmd_len, resp, RESP_CAP, &len);
	if (ret != 0)
		return ret;
	have = len;
	while (o->get_response && resp[have - 2] == 0x61) {
		const uint8_t get[5] = { 0x00, ISO_INS_GET_RESPONSE, 0x00, 0x00,
					 resp[have - 1] };
		size_t piece = 0;

		if (*n_apdus > MAX_GET_RESPONSES) {
			fprintf(stderr, "ccid-guest-tool: %s: card still answers 61 xx after %u GET RESPONSEs\n",
				x->label, MAX_GET_RESPONSES);
			return EXIT_MISMATCH;
		}
		/* The next piece overwrites this one's SW. */
		have -= 2;
		ret = session_transmit_raw(s, get, sizeof(get), resp + have,
					   RESP_CAP - have, &piece);
		(*n_apdus)++;
		if (ret != 0)
			return ret;
		have += piece;
	}
	*resp_len = have;
	return 0;
}

/* --- commands ---------------------------------------------------------------- */

static int cmd_list(struct session *s, const struct opts *o, int argc,
		    char **argv)
{
	char buf[4096];
	unsigned count = 0;
	int ret;

	(void)o;
	(void)argv;
	if (argc != 0)
		return EXIT_USAGE;
	ret = session_establish(s);
	if (ret == 0)
		ret = session_readers(s, buf, sizeof(buf), &count);
	if (ret != 0)
		return ret;
	printf("readers=%u\n", count);
	for (const char *p = buf; *p != '\0'; p += strlen(p) + 1)
		printf("reader=%s\n", p);
	return count > 0 ? 0 : EXIT_MISMATCH;
}

static int cmd_wait_reader(struct session *s, const struct opts *o, int argc,
			   char **argv)
{
	char buf[4096];
	unsigned long want = 1;
	double t0 = tool_now_ms();
	int ret;

	if (argc > 1 ||
	    (argc == 1 && !parse_ulong(argv[0], 1, 64, "reader count", &want)))
		return EXIT_USAGE;
	ret = session_wait_readers(s, o->reader_match, (unsigned)want, buf,
				   sizeof(buf));
	if (ret != 0)
		return ret;
	printf("wait-reader ok waited_ms=%.0f\n", tool_now_ms() - t0);
	for (const char *p = buf; *p != '\0'; p += strlen(p) + 1)
		printf("reader=%s\n", p);
	return 0;
}

static int cmd_wait_card(struct session *s, const struct opts *o, int argc,
			 char **argv)
{
	bool want_present = true;
	double t0 = tool_now_ms();
	const char *request = NULL, *port = NULL;
	int ret;

	/* wait-card STATE REQUEST PORT: once the current state is known,
	 * write REQUEST (a host request line) to PORT and time the event
	 * from that instant: the event latency, without the tool's start. */
	if (argc == 3) {
		request = argv[1];
		port = argv[2];
		argc = 1;
	}
	if (argc > 1)
		return EXIT_USAGE;
	if (argc == 1) {
		if (strcmp(argv[0], "absent") == 0) {
			want_present = false;
		} else if (strcmp(argv[0], "present") != 0) {
			fprintf(stderr, "ccid-guest-tool: wait-card: '%s' is not present or absent\n",
				argv[0]);
			return EXIT_USAGE;
		}
	}
	ret = session_pick_reader(s, o);
	if (ret != 0)
		return ret;

	SCARD_READERSTATE rs = {
		.szReader = s->reader,
		.dwCurrentState = SCARD_STATE_UNAWARE,
	};
	for (;;) {
		long slice = remaining_ms(s);
		LONG rv = SCardGetStatusChange(s->ctx, (DWORD)(slice > 500 ? 500 : slice),
					       &rs, 1);

		if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT) {
			if (!want_present) {
				/* The reader itself left: no card either. */
				printf("wait-card absent reader-gone waited_ms=%.0f\n",
				       tool_now_ms() - t0);
				return 0;
			}
			tool_pcsc_error("ccid-guest-tool", "SCardGetStatusChange", rv);
			return EXIT_PCSC;
		}
		DWORD st = rs.dwEventState;

		if (rv == SCARD_S_SUCCESS && request != NULL &&
		    rs.dwCurrentState == SCARD_STATE_UNAWARE) {
			FILE *f = fopen(port, "w");

			if (f == NULL) {
				fprintf(stderr, "ccid-guest-tool: cannot open %s\n", port);
				return EXIT_USAGE;
			}
			fprintf(f, "%s\n", request);
			fclose(f);
			t0 = tool_now_ms();
		}
		if (rv == SCARD_S_SUCCESS) {
			if (want_present && (st & SCARD_STATE_PRESENT) &&
			    !(st & SCARD_STATE_MUTE)) {
				printf("wait-card present waited_ms=%.0f\n",
				       tool_now_ms() - t0);
				return 0;
			}
			if (!want_present &&
			    (st & (SCARD_STATE_EMPTY | SCARD_STATE_UNKNOWN |
				   SCARD_STATE_UNAVAILABLE))) {
				printf("wait-card absent waited_ms=%.0f\n",
				       tool_now_ms() - t0);
				return 0;
			}
			rs.dwCurrentState = st & ~(DWORD)SCARD_STATE_CHANGED;
		}
		if (remaining_ms(s) == 0) {
			fprintf(stderr, "ccid-guest-tool: timeout: card not %s in '%s' (state 0x%lX)\n",
				want_present ? "present" : "absent", s->reader,
				(unsigned long)st);
			return EXIT_TIMEOUT;
		}
	}
}

static int cmd_atr(struct session *s, const struct opts *o, int argc,
		   char **argv)
{
	uint8_t atr[MAX_ATR_SIZE];
	DWORD atr_len = sizeof(atr), state = 0, proto = 0;
	char name[MAX_READERNAME];
	DWORD name_len = sizeof(name);
	double t0 = tool_now_ms();
	LONG rv;
	int ret;

	(void)argv;
	if (argc != 0)
		return EXIT_USAGE;
	ret = session_connect(s, o);
	if (ret != 0)
		return ret;
	rv = SCardStatus(s->card, name, &name_len, &state, &proto, atr, &atr_len);
	if (rv != SCARD_S_SUCCESS) {
		tool_pcsc_error("ccid-guest-tool", "SCardStatus", rv);
		return EXIT_PCSC;
	}
	printf("atr=");
	tool_print_hex(stdout, atr, atr_len, MAX_ATR_SIZE);
	printf(" protocol=%s waited_ms=%.0f\nreader=%s\n", protocol_name(proto),
	       tool_now_ms() - t0, s->reader);
	return 0;
}

/* Readers find-reader watches at once (the PnP pseudo-reader aside). */
#define FIND_MAX_READERS 16

/*
 * Waits for a reader holding a card whose ATR starts with the given bytes
 * (and, with -r, whose name matches) and prints its name: scripts pick
 * the reader of a given card this way when several readers have the same
 * name but for pcscd's index.  Sleeps in SCardGetStatusChange on the
 * readers and the PnP pseudo-reader, so card and reader events wake it.
 */
static int cmd_find_reader(struct session *s, const struct opts *o, int argc,
			   char **argv)
{
	uint8_t want[MAX_ATR_SIZE];
	size_t want_len = 0;
	double t0 = tool_now_ms();

	if (argc != 1)
		return EXIT_USAGE;
	if (!hex_parse(argv[0], want, NULL, sizeof(want), &want_len) ||
	    want_len == 0) {
		fprintf(stderr, "ccid-guest-tool: find-reader: '%s' is not an ATR prefix in hex\n",
			argv[0]);
		return EXIT_USAGE;
	}
	for (;;) {
		SCARD_READERSTATE rs[FIND_MAX_READERS + 1];
		char buf[4096];
		unsigned count = 0, n = 0;
		int ret = session_establish(s);
		LONG rv;

		if (ret != 0)
			return ret;
		if (session_readers(s, buf, sizeof(buf), &count) != 0) {
			session_close(s);
			tool_sleep_ms(50);
			continue;
		}
		memset(rs, 0, sizeof(rs));
		for (const char *p = buf; *p != '\0' && n < FIND_MAX_READERS;
		     p += strlen(p) + 1) {
			rs[n].szReader = p;
			rs[n++].dwCurrentState = SCARD_STATE_UNAWARE;
		}
		/* The current state of every reader, at once. */
		rv = n > 0 ? SCardGetStatusChange(s->ctx, 0, rs, n) :
			     SCARD_S_SUCCESS;
		if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT) {
			session_close(s);
			tool_sleep_ms(50);
			continue;
		}
		for (unsigned i = 0; i < n; i++) {
			DWORD st = rs[i].dwEventState;

			if (o->reader_match != NULL &&
			    strstr(rs[i].szReader, o->reader_match) == NULL)
				continue;
			if (!(st & SCARD_STATE_PRESENT) || (st & SCARD_STATE_MUTE) ||
			    rs[i].cbAtr < want_len ||
			    memcmp(rs[i].rgbAtr, want, want_len) != 0)
				continue;
			printf("reader=%s\natr=", rs[i].szReader);
			tool_print_hex(stdout, rs[i].rgbAtr, rs[i].cbAtr, MAX_ATR_SIZE);
			printf(" waited_ms=%.0f\n", tool_now_ms() - t0);
			return 0;
		}
		if (remaining_ms(s) == 0) {
			fprintf(stderr, "ccid-guest-tool: timeout: no card with ATR %s... in %u reader(s)\n",
				argv[0], count);
			return EXIT_TIMEOUT;
		}
		/* Sleep until a card or reader event, or a slice passes. */
		for (unsigned i = 0; i < n; i++)
			rs[i].dwCurrentState = rs[i].dwEventState &
					       ~(DWORD)SCARD_STATE_CHANGED;
		rs[n].szReader = PNP_READER;
		rs[n].dwCurrentState = (DWORD)count << 16;
		long slice = remaining_ms(s);

		rv = SCardGetStatusChange(s->ctx, (DWORD)(slice > 500 ? 500 : slice),
					  rs, n + 1);
		if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT) {
			session_close(s);
			tool_sleep_ms(50);
		}
	}
}

static int run_exchanges(struct session *s, const struct opts *o,
			 struct exchange *xs, int n)
{
	uint8_t *resp = malloc(RESP_CAP);
	int ret = 0;

	if (resp == NULL)
		return EXIT_PCSC;
	for (int i = 0; i < n && ret == 0; i++) {
		size_t len = 0;
		unsigned n_apdus = 0;
		double t0 = tool_now_ms();

		ret = session_transmit(s, o, &xs[i], resp, &len, &n_apdus);
		if (ret != 0)
			break;
		printf("%s[%d] ms=%.2f apdus=%u cmd_len=%zu resp_len=%zu > ",
		       xs[i].label, i, tool_now_ms() - t0, n_apdus, xs[i].cmd_len, len);
		tool_print_hex(stdout, xs[i].cmd, xs[i].cmd_len,
			  o->verbose ? CMD_CAP : PRINT_MAX);
		printf(" < ");
		tool_print_hex(stdout, resp, len, o->verbose ? RESP_CAP : PRINT_MAX);
		putchar('\n');
		if (!check_answer(&xs[i], resp, len))
			ret = EXIT_MISMATCH;
	}
	free(resp);
	return ret;
}

static int cmd_apdu(struct session *s, const struct opts *o, int argc,
		    char **argv)
{
	struct exchange *xs;
	int ret = 0;

	if (argc < 1)
		return EXIT_USAGE;
	xs = calloc((size_t)argc, sizeof(*xs));
	if (xs == NULL)
		return EXIT_PCSC;
	for (int i = 0; i < argc && ret == 0; i++)
		if (!exchange_parse(&xs[i], argv[i]))
			ret = EXIT_USAGE;
	if (ret == 0)
		ret = session_connect(s, o);
	if (ret == 0)
		ret = run_exchanges(s, o, xs, argc);
	for (int i = 0; i < argc; i++)
		exchange_free(&xs[i]);
	free(xs);
	return ret;
}

/* "pattern N" and "echo N" are shorthands for "apdu pattern:N". */
static int cmd_loop(struct session *s, const struct opts *o, int argc,
		    char **argv, const char *kind)
{
	char spec[32];
	char *args[1] = { spec };

	if (argc != 1)
		return EXIT_USAGE;
	snprintf(spec, sizeof(spec), "%s:%.20s", kind, argv[0]);
	return cmd_apdu(s, o, 1, args);
}

/*
 * N rounds of the SPECs in order (default one echo:0), all in one card
 * connection.  apdus_per_s counts every APDU sent, GET RESPONSEs (-g)
 * included; rounds_per_s counts rounds; min/max are per round.
 */
static int cmd_bench(struct session *s, const struct opts *o, int argc,
		     char **argv)
{
	struct exchange *xs;
	int n_specs = argc > 1 ? argc - 1 : 1;
	unsigned long count, apdus = 0;
	char label[160] = "";
	uint8_t *resp = NULL;
	double total, min = 1e12, max = 0, t_start;
	int ret = 0;

	if (argc < 1)
		return EXIT_USAGE;
	if (!parse_ulong(argv[0], 1, 10000000, "round trips", &count))
		return EXIT_USAGE;
	xs = calloc((size_t)n_specs, sizeof(*xs));
	if (xs == NULL)
		return EXIT_PCSC;
	for (int i = 0; i < n_specs && ret == 0; i++) {
		size_t used = strlen(label);

		if (!exchange_parse(&xs[i], argc > 1 ? argv[i + 1] : "echo:0"))
			ret = EXIT_USAGE;
		else
			snprintf(label + used, sizeof(label) - used, "%s%s",
				 i > 0 ? "+" : "", xs[i].label);
	}
	if (ret == 0) {
		resp = malloc(RESP_CAP);
		ret = resp == NULL ? EXIT_PCSC : session_connect(s, o);
	}
	t_start = tool_now_ms();
	for (unsigned long r = 0; r < count && ret == 0; r++) {
		double t0 = tool_now_ms(), dt;

		for (int i = 0; i < n_specs && ret == 0; i++) {
			size_t len = 0;
			unsigned n = 0;

			ret = session_transmit(s, o, &xs[i], resp, &len, &n);
			apdus += n;
			if (ret == 0 && !check_answer(&xs[i], resp, len)) {
				fprintf(stderr, "ccid-guest-tool: bench: round %lu, %s failed\n",
					r, xs[i].label);
				ret = EXIT_MISMATCH;
			}
		}
		dt = tool_now_ms() - t0;
		if (dt < min)
			min = dt;
		if (dt > max)
			max = dt;
	}
	total = tool_now_ms() - t_start;
	if (ret == 0)
		printf("bench %s n=%lu apdus=%lu total_ms=%.1f mean_ms=%.3f min_ms=%.3f max_ms=%.3f rounds_per_s=%.1f apdus_per_s=%.1f\n",
		       label, count, apdus, total, total / (double)count, min,
		       max, (double)count * 1e3 / total,
		       (double)apdus * 1e3 / total);
	free(resp);
	for (int i = 0; i < n_specs; i++)
		exchange_free(&xs[i]);
	free(xs);
	return ret;
}

/* Prints the APDU an exchange spec encodes; no PC/SC needed. */
static int cmd_encode(int argc, char **argv)
{
	struct exchange x;
	int ret = 0;

	for (int i = 0; i < argc && ret == 0; i++) {
		if (!exchange_parse(&x, argv[i])) {
			ret = EXIT_USAGE;
		} else {
			tool_print_hex(stdout, x.cmd, x.cmd_len, CMD_CAP);
			putchar('\n');
		}
		exchange_free(&x);
	}
	return argc > 0 ? ret : EXIT_USAGE;
}

static void usage(FILE *f)
{
	fputs("usage: ccid-guest-tool [-r READER] [-t TIMEOUT_MS] [-g] [-v] COMMAND [ARGS]\n"
	      "  list                   readers now (exit 1 when none)\n"
	      "  wait-reader [N]        wait for N readers (default 1)\n"
	      "  wait-card [present|absent [REQUEST PORT]]\n"
	      "  atr                    connect and print the ATR and protocol\n"
	      "  find-reader ATRHEX     wait for a card whose ATR starts with\n"
	      "                         ATRHEX, print its reader=NAME\n"
	      "  apdu SPEC...           send APDUs in one connection, check answers\n"
	      "  pattern N              loopback PATTERN, Ne = N (1..65536), checked\n"
	      "  echo N                 loopback ECHO, Nc = N (0..65535), checked\n"
	      "  bench N [SPEC...]      N rounds of the SPECs (default echo:0):\n"
	      "                         rounds_per_s, apdus_per_s\n"
	      "  encode SPEC...         print the APDUs, send nothing\n"
	      "SPEC: HEX | HEX=EXPECT[|EXPECT...] | pattern:N | echo:N |\n"
	      "      dpattern:MS:N (loopback DELAYED PATTERN: MS ms, then N bytes)\n"
	      "      EXPECT: the whole answer in hex, '..' matching any byte;\n"
	      "      *EXPECT: the answer's tail (e.g. *9000)\n"
	      "-r: first reader whose name contains READER; -t: deadline for the\n"
	      "whole command, waits for pcscd/reader/card included (default 10000)\n"
	      "-g: answer 61 xx with GET RESPONSE (00 C0 00 00 xx), check the\n"
	      "joined answer; -v: print whole APDUs\n"
	      "exit: 0 ok, 1 mismatch, 2 usage, 3 PC/SC error, 4 timeout\n", f);
}

int main(int argc, char **argv)
{
	struct opts o = { .timeout_ms = 10000 };
	struct session s = { 0 };
	unsigned long t;
	const char *cmd;
	int opt, ret;

	while ((opt = getopt(argc, argv, "+r:t:vgh")) != -1) {
		switch (opt) {
		case 'g':
			o.get_response = true;
			break;
		case 'r':
			o.reader_match = optarg;
			break;
		case 't':
			if (!parse_ulong(optarg, 0, LONG_MAX / 2, "timeout", &t))
				return EXIT_USAGE;
			o.timeout_ms = (long)t;
			break;
		case 'v':
			o.verbose = true;
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
	cmd = argv[optind];
	argc -= optind + 1;
	argv += optind + 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	s.deadline = tool_now_ms() + (double)o.timeout_ms;

	if (strcmp(cmd, "list") == 0)
		ret = cmd_list(&s, &o, argc, argv);
	else if (strcmp(cmd, "wait-reader") == 0)
		ret = cmd_wait_reader(&s, &o, argc, argv);
	else if (strcmp(cmd, "wait-card") == 0)
		ret = cmd_wait_card(&s, &o, argc, argv);
	else if (strcmp(cmd, "atr") == 0)
		ret = cmd_atr(&s, &o, argc, argv);
	else if (strcmp(cmd, "find-reader") == 0)
		ret = cmd_find_reader(&s, &o, argc, argv);
	else if (strcmp(cmd, "apdu") == 0)
		ret = cmd_apdu(&s, &o, argc, argv);
	else if (strcmp(cmd, "pattern") == 0)
		ret = cmd_loop(&s, &o, argc, argv, "pattern");
	else if (strcmp(cmd, "echo") == 0)
		ret = cmd_loop(&s, &o, argc, argv, "echo");
	else if (strcmp(cmd, "bench") == 0)
		ret = cmd_bench(&s, &o, argc, argv);
	else if (strcmp(cmd, "encode") == 0)
		ret = cmd_encode(argc, argv);
	else {
		fprintf(stderr, "ccid-guest-tool: unknown command '%s'\n", cmd);
		ret = EXIT_USAGE;
	}
	if (ret == EXIT_USAGE)
		fprintf(stderr, "ccid-guest-tool: usage error in '%s' (-h for help)\n", cmd);
	session_close(&s);
	return ret;
}
