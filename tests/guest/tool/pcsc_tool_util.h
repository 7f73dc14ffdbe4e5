/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Small helpers shared by the PC/SC test tools that run inside test guests
 * (ccid-guest-tool here, tests/pcsc/guest/pcsc-test-app.c).  Header-only,
 * so each tool still builds from one .c file with plain compiler flags.
 */
#ifndef CCID_TEST_PCSC_TOOL_UTIL_H
#define CCID_TEST_PCSC_TOOL_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <winscard.h>

static inline double tool_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void tool_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* "PROG: WHAT: pcsc-lite's text (0xCODE)" on stderr. */
static inline void tool_pcsc_error(const char *prog, const char *what, LONG rv)
{
	fprintf(stderr, "%s: %s: %s (0x%08lX)\n", prog, what,
		pcsc_stringify_error(rv), (unsigned long)rv);
}

/* Upper-case hex of at most @max of the @n bytes, then "...(N bytes)" if
 * cut short. */
static inline void tool_print_hex(FILE *f, const uint8_t *p, size_t n,
				  size_t max)
{
	size_t shown = n > max ? max : n;

	for (size_t i = 0; i < shown; i++)
		fprintf(f, "%02X", p[i]);
	if (shown < n)
		fprintf(f, "...(%zu bytes)", n);
}

/* 0..15, or -1 for anything but a hex digit. */
static inline int tool_hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif /* CCID_TEST_PCSC_TOOL_UTIL_H */
