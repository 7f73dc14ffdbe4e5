/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Steady-state cost of one short-APDU round trip through the device model:
 * power the loopback card on once, then N times hand the device a 19-byte
 * PC_to_RDR_XfrBlock (ECHO of 4 bytes) on bulk-OUT and pull the 16-byte
 * RDR_to_PC_DataBlock from bulk-IN, checking every reply.
 *
 *   bench_xfrblock N      prints "xfrblocks=N allocs=A"
 *
 * Instruction counts come from running it under callgrind twice (see
 * run.sh); heap allocations are counted here, during the loop only, by a
 * malloc shim that forwards to glibc (compiled in only when the build has
 * no sanitizer, which would own malloc itself).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ccid-emu/ccid_emu.h>

#include "ccid_card_loopback.h"

#ifdef BENCH_COUNT_ALLOCS
/* glibc's own entry points; replacing malloc, calloc, realloc and free
 * together is the documented way to interpose on glibc's allocator. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static bool bench_counting;
static unsigned long bench_allocs;

void *malloc(size_t size)
{
	if (bench_counting)
		bench_allocs++;
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	if (bench_counting)
		bench_allocs++;
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	if (bench_counting)
		bench_allocs++;
	return __libc_realloc(p, size);
}

void free(void *p)
{
	__libc_free(p);
}
#endif

static uint64_t bench_now(void *user)
{
	(void)user;
	return 0;
}

static void bench_timer_update(void *user, int64_t deadline_ms)
{
	(void)user;
	(void)deadline_ms;
}

static void bench_ready(void *user)
{
	bool *ready = user;

	*ready = true;
}

static const struct ccid_transport_ops bench_tops = {
	.bulk_in_ready = bench_ready,
	.now_ms = bench_now,
	.timer_update = bench_timer_update,
};

static int bench_fail(const char *what)
{
	fprintf(stderr, "bench_xfrblock: %s\n", what);
	return 1;
}

int main(int argc, char **argv)
{
	static const uint8_t setconf[8] = { 0x00, 0x09, 0x01, 0, 0, 0, 0, 0 };
	static const uint8_t power_on[10] = { 0x62, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	/* XfrBlock, dwLength 9, slot 0: ECHO DE AD BE EF. */
	uint8_t xfr[19] = { 0x6F, 9, 0, 0, 0, 0, 0, 0, 0, 0,
			    0x80, 0x01, 0x00, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF };
	static const uint8_t want_tail[8] = { 0, 0, 0xDE, 0xAD, 0xBE, 0xEF, 0x90, 0x00 };
	static uint8_t buf[CCID_EMU_DEFAULT_MAX_MSG];
	struct ccid_config cfg;
	ccid_card_loopback *card;
	ccid_slot *slot;
	ccid_dev *dev;
	const char *err = NULL;
	bool ready = false;
	unsigned long n, allocs = 0;
	int ret;

	if (argc != 2 || (n = strtoul(argv[1], NULL, 10)) == 0) {
		fprintf(stderr, "usage: %s N\n", argv[0]);
		return 2;
	}
	ccid_config_init(&cfg);
	dev = ccid_dev_new(&cfg, &bench_tops, &ready, &err);
	if (!dev)
		return bench_fail(err ? err : "ccid_dev_new failed");
	slot = ccid_dev_get_slot(dev, 0);
	card = ccid_card_loopback_new(slot, NULL, NULL);
	if (!card)
		return bench_fail("ccid_card_loopback_new failed");
	ccid_slot_set_card(slot, ccid_card_loopback_ops(), card, true);
	if (ccid_dev_control(dev, setconf, NULL, 0) != 0)
		return bench_fail("SET_CONFIGURATION(1) stalled");
	ccid_dev_bulk_out(dev, power_on, sizeof(power_on));
	ret = ccid_dev_bulk_in_pull(dev, buf, sizeof(buf));
	if (ret < (int)CCID_HDR_LEN || buf[0] != CCID_RDR_TO_PC_DATA_BLOCK || buf[7] != 0)
		return bench_fail("IccPowerOn failed");

#ifdef BENCH_COUNT_ALLOCS
	{
		/* Prove the shim is in the path before trusting a zero. */
		void *volatile probe;

		bench_allocs = 0;
		bench_counting = true;
		probe = malloc(16);
		free(probe);
		if (bench_allocs != 1)
			return bench_fail("malloc shim is not counting");
		bench_allocs = 0;
	}
#endif
	for (unsigned long i = 0; i < n; i++) {
		xfr[CCID_OFF_SEQ] = (uint8_t)i;
		ready = false;
		ccid_dev_bulk_out(dev, xfr, sizeof(xfr));
		ret = ccid_dev_bulk_in_pull(dev, buf, sizeof(buf));
		/* 80 | dwLength 6 | slot 0 | seq | status 0 | error 0 | chain 0
		 * | DE AD BE EF 90 00 */
		if (ret != 16 || !ready || buf[0] != CCID_RDR_TO_PC_DATA_BLOCK ||
		    buf[1] != 6 || buf[6] != (uint8_t)i ||
		    memcmp(buf + 8, want_tail, sizeof(want_tail)) != 0)
			return bench_fail("wrong XfrBlock reply");
	}
#ifdef BENCH_COUNT_ALLOCS
	bench_counting = false;
	allocs = bench_allocs;
	printf("xfrblocks=%lu allocs=%lu\n", n, allocs);
#else
	(void)allocs;
	printf("xfrblocks=%lu allocs=unknown\n", n);
#endif
	if (ccid_dev_bulk_in_pull(dev, buf, sizeof(buf)) != CCID_PULL_NONE)
		return bench_fail("unexpected data left on bulk-IN");
	ccid_dev_free(dev);
	ccid_card_loopback_free(card);
	return 0;
}
