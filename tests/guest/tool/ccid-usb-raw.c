/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-usb-raw: drives a CCID reader with the loopback card straight through
 * libusb (no pcscd), to do what pcscd never does: leave a reply waiting while
 * the guest does not poll, read half a reply and stop, cancel a pending
 * read.  The host controller then stops the endpoint (UHCI after 32 unseen
 * frames, xHCI on the cancel), and on ccid-emu's interrupt data path QEMU
 * frees what it had buffered (docs/serve.md, "Data path").  Each check
 * asserts that no reply is lost or corrupted, and that the next exchange is
 * in step.
 *
 * Usage: ccid-usb-raw CHECK...   CHECK: idle-reply idle-64k partial-idle
 *                                       cancel-pending
 * Prints "ok CHECK detail" or "FAIL CHECK detail" per check; exit 0 when all
 * passed, 1 when one failed, 2 when no CCID reader could be opened.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libusb.h>

#define EP_OUT 0x02
#define EP_IN  0x81
#define MSG_MAX (10 + 65544)
#define IDLE_MS 300     /* far more than UHCI's 32 frames */

static libusb_device_handle *h;
/* dwMaxCCIDMessageLength: the largest reply that comes in one message
 * (a longer one is chained, CCID 1.1 §6.2.1). */
static uint32_t max_msg;
static uint8_t seq;
static uint8_t rbuf[MSG_MAX + 64], ref[MSG_MAX];
static uint32_t ref_len;

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Opens the first device with a CCID interface (class 0x0B). */
static int open_ccid(void)
{
	libusb_device **list;
	ssize_t n = libusb_get_device_list(NULL, &list);
	int found = 0;

	for (ssize_t i = 0; i < n && !found; i++) {
		struct libusb_config_descriptor *cfg;

		if (libusb_get_active_config_descriptor(list[i], &cfg) != 0)
			continue;
		if (cfg->bNumInterfaces >= 1 &&
		    cfg->interface[0].altsetting[0].bInterfaceClass == 0x0B &&
		    libusb_open(list[i], &h) == 0) {
			const struct libusb_interface_descriptor *alt =
				&cfg->interface[0].altsetting[0];
			const uint8_t *x = alt->extra;

			/* the CCID class descriptor, type 0x21, 54 bytes;
			 * dwMaxCCIDMessageLength at offset 44 */
			if (alt->extra_length >= 54 && x[1] == 0x21)
				max_msg = x[44] | x[45] << 8 |
					  (uint32_t)x[46] << 16 |
					  (uint32_t)x[47] << 24;
			found = 1;
		}
		libusb_free_config_descriptor(cfg);
	}
	libusb_free_device_list(list, 1);
	if (!found || max_msg < 10 + 2 || max_msg > MSG_MAX)
		return -1;
	libusb_set_auto_detach_kernel_driver(h, 1);
	return libusb_claim_interface(h, 0) == 0 ? 0 : -1;
}

static int send_msg(uint8_t type, const uint8_t *data, uint32_t len)
{
	static uint8_t m[MSG_MAX];
	int done = 0;

	m[0] = type;
	m[1] = (uint8_t)len; m[2] = (uint8_t)(len >> 8);
	m[3] = (uint8_t)(len >> 16); m[4] = (uint8_t)(len >> 24);
	m[5] = 0; m[6] = ++seq; m[7] = 0; m[8] = 0; m[9] = 0;
	if (len)
		memcpy(m + 10, data, len);
	return libusb_bulk_transfer(h, EP_OUT, m, (int)(10 + len), &done, 5000) == 0 &&
	       done == (int)(10 + len) ? 0 : -1;
}

/* One bulk-IN transfer of at most @cap bytes; returns the bytes or -1. */
static int read_some(uint8_t *buf, int cap, unsigned timeout_ms)
{
	int got = 0;
	int rc = libusb_bulk_transfer(h, EP_IN, buf, cap, &got, timeout_ms);

	return rc == 0 ? got : (rc == LIBUSB_ERROR_TIMEOUT ? -2 : -1);
}

/* Reads one whole reply (skipping time extensions) into rbuf; returns its
 * length or -1, with @why set. */
static int read_reply(const char **why)
{
	for (int i = 0; i < 200; i++) {
		int n = read_some(rbuf, MSG_MAX, 20000);
		uint32_t dw;

		if (n < 10) {
			*why = n == -2 ? "read timed out" : "short or failed read";
			return -1;
		}
		dw = rbuf[1] | rbuf[2] << 8 | (uint32_t)rbuf[3] << 16 |
		     (uint32_t)rbuf[4] << 24;
		if ((uint32_t)n != 10 + dw) {
			*why = "length differs from dwLength";
			return -1;
		}
		if (rbuf[6] != seq) {
			*why = "bSeq of another command (stale reply)";
			return -1;
		}
		if ((rbuf[7] & 0xC0) == 0x80)   /* time extension */
			continue;
		return n;
	}
	*why = "endless time extensions";
	return -1;
}

static int xfr(const uint8_t *apdu, uint32_t len)
{
	return send_msg(0x6F, apdu, len);
}

static int echo_cmd(unsigned lc)
{
	uint8_t apdu[5 + 255] = { 0x80, 0x01, 0x00, 0x00, (uint8_t)lc };

	for (unsigned i = 0; i < lc; i++)
		apdu[5 + i] = (uint8_t)(i * 7);
	return xfr(apdu, 5 + lc);
}

static int echo_ok(int n, unsigned lc)
{
	if (n != (int)(10 + lc + 2) || rbuf[10 + lc] != 0x90)
		return 0;
	for (unsigned i = 0; i < lc; i++)
		if (rbuf[10 + i] != (uint8_t)(i * 7))
			return 0;
	return 1;
}

/* The largest reply in one message: PATTERN of up to 65536 bytes (extended
 * Le 00 00 00), or of dwMaxCCIDMessageLength - 12 (65523 bytes for the
 * 65535 ccid-agent announces). */
static uint32_t pattern_len(void)
{
	return max_msg - 12 < 65536 ? max_msg - 12 : 65536;
}

static int pattern_cmd(void)
{
	uint32_t n = pattern_len();
	uint8_t apdu[] = { 0x80, 0x02, 0x00, 0x00, 0x00, (uint8_t)(n >> 8),
			   (uint8_t)n };

	return xfr(apdu, sizeof(apdu));
}

/* After each check: one more exchange must answer exactly. */
static int in_step(const char **why)
{
	int n;

	if (echo_cmd(33) < 0) {
		*why = "follow-up command failed";
		return 0;
	}
	n = read_reply(why);
	if (n < 0)
		return 0;
	if (!echo_ok(n, 33)) {
		*why = "follow-up reply wrong";
		return 0;
	}
	return 1;
}

static int check_idle_reply(const char **why)
{
	int n;

	if (echo_cmd(200) < 0) {
		*why = "command failed";
		return 0;
	}
	sleep_ms(IDLE_MS);
	n = read_reply(why);
	if (n < 0)
		return 0;
	if (!echo_ok(n, 200)) {
		*why = "reply bytes wrong";
		return 0;
	}
	return in_step(why);
}

static int check_idle_64k(const char **why)
{
	int n;

	if (pattern_cmd() < 0) {
		*why = "command failed";
		return 0;
	}
	sleep_ms(IDLE_MS);
	n = read_reply(why);
	if (n < 0)
		return 0;
	if (n != (int)(10 + pattern_len() + 2) || rbuf[10 + pattern_len()] != 0x90 ||
	    rbuf[9] != 0) {
		*why = "not one whole reply of the largest message size ending 90 00";
		return 0;
	}
	memcpy(ref, rbuf, (size_t)n);
	ref_len = (uint32_t)n;
	return in_step(why);
}

/* Reads the first 64 bytes of a largest reply, idles, then reads on: what
 * comes is either the rest (the endpoint kept its data, as a bulk endpoint
 * does) or the whole reply again from its header (ccid-emu re-sent it after
 * QEMU freed it); never a gap. */
static int check_partial_idle(const char **why, const char **how)
{
	int n, rest;

	if (ref_len == 0 && !check_idle_64k(why))
		return 0;
	if (pattern_cmd() < 0) {
		*why = "command failed";
		return 0;
	}
	n = read_some(rbuf, 64, 5000);
	if (n != 64 || memcmp(rbuf + 7, ref + 7, 64 - 7) != 0 || rbuf[6] != seq) {
		*why = "first 64 bytes wrong";
		return 0;
	}
	sleep_ms(IDLE_MS);
	rest = read_some(rbuf, MSG_MAX, 20000);
	if (rest == (int)ref_len && rbuf[6] == seq &&
	    memcmp(rbuf + 10, ref + 10, ref_len - 10) == 0) {
		*how = "whole reply again";
	} else if (rest == (int)ref_len - 64 &&
		   memcmp(rbuf, ref + 64, ref_len - 64) == 0) {
		*how = "the rest";
	} else {
		*why = "neither the rest nor the whole reply";
		return 0;
	}
	return in_step(why);
}

/* A read cancelled before the reply is ready (libusb timeout: xHCI stops
 * the endpoint), then a new read gets the reply. */
static int check_cancel_pending(const char **why)
{
	/* DELAY 400 ms */
	static const uint8_t delay[] = { 0x80, 0x03, 0x00, 0x00, 0x04,
					 0x00, 0x00, 0x01, 0x90 };
	int n;

	if (xfr(delay, sizeof(delay)) < 0) {
		*why = "command failed";
		return 0;
	}
	n = read_some(rbuf, MSG_MAX, 50);
	if (n >= 10 && (rbuf[7] & 0xC0) == 0x80)
		n = -2;   /* a time extension came first: fine, still pending */
	if (n != -2) {
		*why = "the reply came before the delay";
		return 0;
	}
	n = read_reply(why);
	if (n < 0)
		return 0;
	if (n != 12 || rbuf[10] != 0x90) {
		*why = "reply wrong";
		return 0;
	}
	return in_step(why);
}

int main(int argc, char **argv)
{
	static const uint8_t none[1];
	int failed = 0;
	const char *why;
	int n;

	if (libusb_init(NULL) != 0 || open_ccid() != 0) {
		fprintf(stderr, "ccid-usb-raw: no CCID reader to open\n");
		return 2;
	}
	/* IccPowerOn; the loopback ATR starts 3B */
	if (send_msg(0x62, none, 0) < 0 || (n = read_reply(&why)) < 12 ||
	    rbuf[10] != 0x3B) {
		fprintf(stderr, "ccid-usb-raw: IccPowerOn failed\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		const char *how = "";
		int ok;

		why = "";
		if (!strcmp(argv[i], "idle-reply"))
			ok = check_idle_reply(&why);
		else if (!strcmp(argv[i], "idle-64k"))
			ok = check_idle_64k(&why);
		else if (!strcmp(argv[i], "partial-idle"))
			ok = check_partial_idle(&why, &how);
		else if (!strcmp(argv[i], "cancel-pending"))
			ok = check_cancel_pending(&why);
		else {
			why = "unknown check";
			ok = 0;
		}
		printf("%s %s %s%s\n", ok ? "ok" : "FAIL", argv[i], ok ? how : why,
		       ok ? "" : "");
		failed |= !ok;
	}
	libusb_release_interface(h, 0);
	libusb_close(h);
	libusb_exit(NULL);
	return failed ? 1 : 0;
}
