/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fake transport and invariant checker shared by the fuzz targets.  The
 * checks are the guest's view of the device: whatever the input, every
 * transfer must be one a real CCID host driver could parse.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ccid_le.h"
#include "fuzz_harness.h"

#define FZ_GUARD        16u
#define FZ_GUARD_BYTE   0xA5u
#define FZ_DRAIN_QUEUE  64u    /* messages a drain allows for; more than any queue */

void fz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("FUZZ INVARIANT BROKEN: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

bool fz_trace_enabled(void)
{
	static int enabled = -1;

	if (enabled < 0) {
		const char *v = getenv("FUZZ_TRACE");

		enabled = v && *v && strcmp(v, "0") != 0;
	}
	return enabled;
}

void fz_trace(const char *fmt, ...)
{
	va_list ap;

	if (!fz_trace_enabled())
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void fz_bytes(struct fz_in *in, uint8_t *dst, size_t len)
{
	size_t n = len < in->n ? len : in->n;

	if (n)
		memcpy(dst, in->p, n);
	if (len > n)
		memset(dst + n, 0, len - n);
	in->p += n;
	in->n -= n;
}

#define FZ_MAX_SCRATCH 4u

static char *fz_scratch[FZ_MAX_SCRATCH];

static int fz_remove_one(const char *path, const struct stat *st, int flag,
			 struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void fz_scratch_remove(void)
{
	for (unsigned i = 0; i < FZ_MAX_SCRATCH && fz_scratch[i]; i++) {
		nftw(fz_scratch[i], fz_remove_one, 16, FTW_DEPTH | FTW_PHYS);
		free(fz_scratch[i]);
		fz_scratch[i] = NULL;
	}
}

const char *fz_scratch_dir(const char *prefix)
{
	struct stat st;
	const char *base = getenv("TMPDIR");
	unsigned i = 0;
	size_t len;
	char *dir;

	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK) == 0)
		base = "/dev/shm";
	else if (base == NULL || *base == '\0')
		base = "/tmp";
	while (i < FZ_MAX_SCRATCH && fz_scratch[i])
		i++;
	FZ_CHECK(i < FZ_MAX_SCRATCH, "more than %u scratch directories",
		 FZ_MAX_SCRATCH);
	len = strlen(base) + strlen(prefix) + 9;
	dir = malloc(len);
	FZ_CHECK(dir != NULL, "out of memory");
	snprintf(dir, len, "%s/%s-XXXXXX", base, prefix);
	FZ_CHECK(mkdtemp(dir) != NULL, "cannot make %s", dir);
	if (i == 0)
		atexit(fz_scratch_remove);
	fz_scratch[i] = dir;
	return dir;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FZ_ASAN 1
#endif

#ifdef FZ_ASAN
#include <sanitizer/asan_interface.h>

void fz_touch(const void *p, size_t len)
{
	const volatile uint8_t *bad = __asan_region_is_poisoned((void *)p, len);

	/* An instrumented read of the first bad byte: ASan's own report,
	 * with where the buffer came from. */
	if (bad != NULL)
		(void)*bad;
}
#else
void fz_touch(const void *p, size_t len)
{
	const volatile uint8_t *b = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += b[i];
	(void)sum;
}
#endif

void fz_hdr(uint8_t hdr[CCID_HDR_LEN], uint8_t type, uint32_t dwlen, uint8_t slot,
	    uint8_t seq, uint8_t s0, uint8_t s1, uint8_t s2)
{
	hdr[CCID_OFF_TYPE] = type;
	ccid_le32_store(hdr + CCID_OFF_LENGTH, dwlen);
	hdr[CCID_OFF_SLOT] = slot;
	hdr[CCID_OFF_SEQ] = seq;
	hdr[CCID_OFF_SPEC0] = s0;
	hdr[CCID_OFF_SPEC1] = s1;
	hdr[CCID_OFF_SPEC2] = s2;
}

/* A bus reset (or SET_CONFIGURATION(0)) drops queued data and halts. */
static void fz_reset_checker(struct fz_dev *fd)
{
	fd->chk.in_msg = false;
	fd->chk.zlp_due = false;
	fd->chk.got = 0;
	fd->halt_bulk_in = fd->halt_intr_in = false;
}

/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------ */
static const uint32_t fz_level_features[2] = {
	CCID_FEAT_LEVEL_SHORT_APDU, CCID_FEAT_LEVEL_EXTENDED_APDU,
};

bool fz_config_read(struct fz_in *in, struct ccid_config *cfg, bool allow_invalid,
		    bool *with_log)
{
	uint8_t b0 = fz_u8(in), b1 = fz_u8(in);
	uint16_t len = fz_u16(in);
	uint8_t b4 = fz_u8(in);

	ccid_config_init(cfg);
	if (with_log)
		*with_log = (b0 & 0x40) != 0;
	if (allow_invalid && (b0 & 0x80)) {
		/* Raw fields: exercises ccid_dev_new's validation. */
		cfg->n_slots = b1 & 0x0F;
		cfg->max_busy_slots = b1 >> 4;
		cfg->max_message_len = len * 2u;
		cfg->features = fz_u32(in);
		cfg->bulk_max_packet = fz_u8(in);
		cfg->intr_interval_ms = fz_u8(in);
		cfg->time_extension_ms = fz_u16(in);
		cfg->remote_wakeup = b4 & 1;
		if (b4 & 2)
			cfg->manufacturer = NULL;
		if (b4 & 8) {
			/* A string from the input: any bytes up to a NUL. */
			static char str[256];
			size_t n = fz_u8(in);

			fz_bytes(in, (uint8_t *)str, n);
			str[n] = '\0';
			cfg->product = str;
		}
		if (b4 & 4)  /* 126 UTF-16 units: the most a descriptor holds */
			cfg->serial = "\xc3\xa9" "123456789012345678901234567890"
				      "123456789012345678901234567890"
				      "123456789012345678901234567890"
				      "123456789012345678901234567890"
				      "123\xf0\x9f\x94\x91";
		return false;
	}
	cfg->n_slots = (uint8_t)(1u + (b0 & 7u));
	cfg->features = (cfg->features & ~CCID_FEAT_LEVEL_EXTENDED_APDU) |
			fz_level_features[(b0 >> 3) & 1u];
	cfg->remote_wakeup = (b0 >> 4) & 1u;
	if (b0 & 0x20)
		cfg->product = NULL;
	cfg->max_busy_slots = (uint8_t)(1u + (b1 & 0x0F) % cfg->n_slots);
	cfg->bulk_max_packet = (uint8_t)(8u << ((b1 >> 4) & 3u));
	if (b1 & 0x40)
		cfg->max_message_len = CCID_EMU_MIN_MAX_MSG +
			len % (CCID_EMU_DEFAULT_MAX_MSG - CCID_EMU_MIN_MAX_MSG + 1u);
	cfg->time_extension_ms = 10u + (uint32_t)b4 * 4u;
	if (b1 & 0x80)
		cfg->intr_interval_ms = (uint8_t)(b4 | 1u);
	return true;
}

/* Every dwFeatures bit ccid_proto.h names; the device refuses others. */
#define FZ_FEATURES_KNOWN \
	(CCID_FEAT_AUTO_PARAM_ATR | CCID_FEAT_AUTO_ACTIVATION | \
	 CCID_FEAT_AUTO_VOLTAGE | CCID_FEAT_AUTO_CLOCK | CCID_FEAT_AUTO_BAUD | \
	 CCID_FEAT_AUTO_PPS_NEGOTIATION | CCID_FEAT_AUTO_PPS_CURRENT | \
	 CCID_FEAT_CLOCK_STOP | CCID_FEAT_NAD_NOT_ZERO | CCID_FEAT_AUTO_IFSD | \
	 CCID_FEAT_LEVEL_TPDU | CCID_FEAT_LEVEL_SHORT_APDU | \
	 CCID_FEAT_LEVEL_EXTENDED_APDU | CCID_FEAT_USB_WAKEUP)

/* Strict UTF-8 (RFC 3629: no overlongs, surrogates or values past
 * U+10FFFF) into UTF-16 units; returns the unit count or -1. */
static int fz_utf16_of(const char *str, uint16_t *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)str;
	size_t units = 0;

	while (*p) {
		uint32_t cp, min;
		unsigned n;

		if (*p < 0x80) {
			cp = *p;
			n = 1;
			min = 0;
		} else if (*p >= 0xC2 && *p <= 0xDF) {
			cp = *p & 0x1Fu;
			n = 2;
			min = 0x80;
		} else if ((*p & 0xF0) == 0xE0) {
			cp = *p & 0x0Fu;
			n = 3;
			min = 0x800;
		} else if (*p >= 0xF0 && *p <= 0xF4) {
			cp = *p & 0x07u;
			n = 4;
			min = 0x10000;
		} else {
			return -1;
		}
		for (unsigned i = 1; i < n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return -1;
			cp = cp << 6 | (p[i] & 0x3Fu);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return -1;
		if (cp >= 0x10000) {
			if (units + 2 > cap)
				return -1;
			out[units++] = (uint16_t)(0xD800 | (cp - 0x10000) >> 10);
			out[units++] = (uint16_t)(0xDC00 | ((cp - 0x10000) & 0x3FF));
		} else {
			if (units + 1 > cap)
				return -1;
			out[units++] = (uint16_t)cp;
		}
		p += n;
	}
	return (int)units;
}

#define FZ_STRING_MAX_UNITS 126  /* (255 - 2) / 2: a descriptor's bLength */

static bool fz_string_valid(const char *str)
{
	uint16_t u[FZ_STRING_MAX_UNITS];

	return !str || fz_utf16_of(str, u, FZ_STRING_MAX_UNITS) >= 0;
}

bool fz_config_documented_valid(const struct ccid_config *cfg)
{
	uint32_t level = cfg->features & (CCID_FEAT_LEVEL_TPDU |
					  CCID_FEAT_LEVEL_SHORT_APDU |
					  CCID_FEAT_LEVEL_EXTENDED_APDU);

	return cfg->n_slots >= 1 && cfg->n_slots <= CCID_EMU_MAX_SLOTS &&
	       cfg->max_busy_slots >= 1 && cfg->max_busy_slots <= cfg->n_slots &&
	       cfg->max_message_len >= CCID_EMU_MIN_MAX_MSG &&
	       cfg->max_message_len <= CCID_EMU_DEFAULT_MAX_MSG &&
	       !(cfg->features & ~FZ_FEATURES_KNOWN) &&
	       (level == CCID_FEAT_LEVEL_SHORT_APDU ||
		level == CCID_FEAT_LEVEL_EXTENDED_APDU) &&
	       /* CCID 1.1 §5.1: the two automatic PPS modes are alternatives */
	       (cfg->features & (CCID_FEAT_AUTO_PPS_NEGOTIATION |
				 CCID_FEAT_AUTO_PPS_CURRENT)) !=
		       (CCID_FEAT_AUTO_PPS_NEGOTIATION | CCID_FEAT_AUTO_PPS_CURRENT) &&
	       (cfg->bulk_max_packet == 8 || cfg->bulk_max_packet == 16 ||
		cfg->bulk_max_packet == 32 || cfg->bulk_max_packet == 64) &&
	       fz_string_valid(cfg->manufacturer) && fz_string_valid(cfg->product) &&
	       fz_string_valid(cfg->serial) && fz_string_valid(cfg->interface) &&
	       cfg->intr_interval_ms >= 1 &&
	       cfg->time_extension_ms >= 10 && cfg->time_extension_ms <= 60000;
}

/* ------------------------------------------------------------------------
 * Fake transport
 * ------------------------------------------------------------------------ */
static void fz_t_bulk_ready(void *user)
{
	struct fz_dev *fd = user;

	fd->chk.bulk_woken = true;
}

static void fz_t_intr_ready(void *user)
{
	struct fz_dev *fd = user;

	fd->chk.intr_woken = true;
}

static uint64_t fz_t_now(void *user)
{
	struct fz_dev *fd = user;

	return fd->now;
}

static void fz_t_timer_update(void *user, int64_t deadline_ms)
{
	struct fz_dev *fd = user;

	fd->deadline = deadline_ms < 0 ? -1 : deadline_ms;
	fd->n_timer_updates++;
}

static void fz_t_log(void *user, enum ccid_log_level level, const char *msg)
{
	size_t len;

	FZ_CHECK(msg != NULL, "log callback got a NULL message");
	FZ_CHECK(level == CCID_LOG_DEBUG, "library logged at level %d, not DEBUG",
		 (int)level);
	len = strlen(msg);
	FZ_CHECK(len > 0 && msg[len - 1] != '\n',
		 "log line empty or ends in a newline: \"%s\"", msg);
	fz_trace("  log: %s", msg);
}

/* GET_DESCRIPTOR(STRING) must return the config's string as UTF-16LE;
 * an absent or empty string has index 0. */
static void fz_check_string(const struct fz_dev *fd, uint8_t idx, const char *str,
			    const char *field)
{
	uint16_t u[FZ_STRING_MAX_UNITS];
	uint8_t setup[8] = { USB_DIR_IN, USB_REQ_GET_DESCRIPTOR, idx, USB_DT_STRING,
			     0x09, 0x04, 0xFF, 0x00 };
	uint8_t buf[255];
	int units = str ? fz_utf16_of(str, u, FZ_STRING_MAX_UNITS) : 0;
	int ret;

	FZ_CHECK((idx == 0) == (units == 0), "%s is %u for a %d-unit string", field,
		 idx, units);
	if (!idx)
		return;
	ret = ccid_dev_control(fd->dev, setup, buf, sizeof(buf));
	FZ_CHECK(ret == 2 + 2 * units && buf[0] == ret && buf[1] == USB_DT_STRING,
		 "string %u (%s): %d bytes for %d units", idx, field, ret, units);
	for (int i = 0; i < units; i++)
		FZ_CHECK(ccid_le16_load(buf + 2 + 2 * i) == u[i],
			 "string %u (%s): unit %d is %04x, want %04x", idx, field, i,
			 ccid_le16_load(buf + 2 + 2 * i), u[i]);
}

/* ------------------------------------------------------------------------
 * Descriptors: every config must produce self-consistent blobs.
 * ------------------------------------------------------------------------ */
static void fz_check_descriptors(const struct fz_dev *fd)
{
	const struct ccid_config *cfg = &fd->cfg;
	const uint8_t *d;
	size_t len, pos;
	bool seen_class = false;
	unsigned n_ep = 0;

	d = ccid_dev_device_descriptor(fd->dev, &len);
	FZ_CHECK(d && len == USB_DT_DEVICE_LEN && d[0] == USB_DT_DEVICE_LEN &&
		 d[1] == USB_DT_DEVICE, "bad device descriptor (len %zu)", len);
	FZ_CHECK(ccid_le16_load(d + 8) == cfg->vendor_id &&
		 ccid_le16_load(d + 10) == cfg->product_id,
		 "device descriptor VID:PID does not match the config");

	fz_check_string(fd, d[14], cfg->manufacturer, "iManufacturer");
	fz_check_string(fd, d[15], cfg->product, "iProduct");
	fz_check_string(fd, d[16], cfg->serial, "iSerialNumber");

	d = ccid_dev_config_descriptor(fd->dev, &len);
	FZ_CHECK(d && len >= USB_DT_CONFIG_LEN && d[1] == USB_DT_CONFIG &&
		 ccid_le16_load(d + 2) == len,
		 "config descriptor wTotalLength != blob length %zu", len);
	for (pos = 0; pos < len; pos += d[pos]) {
		FZ_CHECK(d[pos] >= 2 && d[pos] <= len - pos,
			 "config descriptor: bad bLength %u at offset %zu",
			 d[pos], pos);
		if (d[pos + 1] == CCID_CLASS_DESC_TYPE) {
			const uint8_t *c = d + pos;

			FZ_CHECK(c[0] == CCID_CLASS_DESC_LEN,
				 "class descriptor is %u bytes", c[0]);
			FZ_CHECK(c[4] == cfg->n_slots - 1u,
				 "bMaxSlotIndex %u for %u slots", c[4], cfg->n_slots);
			FZ_CHECK(ccid_le32_load(c + 44) == cfg->max_message_len,
				 "dwMaxCCIDMessageLength %u, config %u",
				 ccid_le32_load(c + 44), cfg->max_message_len);
			FZ_CHECK(c[53] == cfg->max_busy_slots,
				 "bMaxCCIDBusySlots %u, config %u", c[53],
				 cfg->max_busy_slots);
			seen_class = true;
		} else if (d[pos + 1] == USB_DT_ENDPOINT) {
			const uint8_t *e = d + pos;

			FZ_CHECK(e[0] == USB_DT_ENDPOINT_LEN, "endpoint bLength %u", e[0]);
			if ((e[3] & 3u) == USB_EP_XFER_BULK)
				FZ_CHECK(ccid_le16_load(e + 4) == cfg->bulk_max_packet,
					 "bulk wMaxPacketSize %u, config %u",
					 ccid_le16_load(e + 4), cfg->bulk_max_packet);
			n_ep++;
		}
	}
	FZ_CHECK(pos == len, "config descriptor chain overruns its length");
	FZ_CHECK(seen_class && n_ep == 3,
		 "config descriptor lacks the class descriptor or 3 endpoints");
}

/* ------------------------------------------------------------------------
 * Lifetime
 * ------------------------------------------------------------------------ */
bool fz_dev_init(struct fz_dev *fd, const struct ccid_config *cfg, unsigned ops)
{
	const char *err = NULL;
	bool valid = fz_config_documented_valid(cfg);

	memset(fd, 0, sizeof(*fd));
	fd->cfg = *cfg;
	fd->deadline = -1;
	fd->now = 1000;
	fd->tops.now_ms = fz_t_now;
	fd->tops.timer_update = fz_t_timer_update;
	if (ops & FZ_OPS_READY) {
		fd->tops.bulk_in_ready = fz_t_bulk_ready;
		fd->tops.intr_in_ready = fz_t_intr_ready;
	}
	if (ops & FZ_OPS_LOG)
		fd->tops.log = fz_t_log;
	fd->dev = ccid_dev_new(cfg, &fd->tops, fd, &err);
	if (!fd->dev) {
		FZ_CHECK(!valid, "ccid_dev_new rejected a documented-valid config: %s",
			 err ? err : "(no message)");
		FZ_CHECK(err != NULL && *err, "ccid_dev_new failed without a message");
		return false;
	}
	FZ_CHECK(valid, "ccid_dev_new accepted an invalid config (n_slots %u busy %u "
		 "max_msg %u features %#x packet %u intr %u te %u)",
		 cfg->n_slots, cfg->max_busy_slots, cfg->max_message_len,
		 cfg->features, cfg->bulk_max_packet, cfg->intr_interval_ms,
		 cfg->time_extension_ms);
	fd->pull_buf = malloc(FZ_PULL_MAX + FZ_GUARD);
	FZ_CHECK(fd->pull_buf != NULL, "out of memory");
	fd->chk.bulk_known_empty = true;
	fd->chk.intr_known_empty = true;
	for (unsigned i = 0; i < CCID_EMU_MAX_SLOTS; i++) {
		ccid_slot *s = ccid_dev_get_slot(fd->dev, i);

		FZ_CHECK((s != NULL) == (i < cfg->n_slots),
			 "ccid_dev_get_slot(%u) with %u slots", i, cfg->n_slots);
		FZ_CHECK(!s || ccid_slot_get_index(s) == i, "slot index mismatch");
	}
	FZ_CHECK(!ccid_dev_is_configured(fd->dev), "new device is configured");
	fz_check_descriptors(fd);
	return true;
}

void fz_dev_fini(struct fz_dev *fd)
{
	ccid_dev_free(fd->dev);
	fd->dev = NULL;
	free(fd->pull_buf);
	fd->pull_buf = NULL;
	free(fd->reply_buf);
	fd->reply_buf = NULL;
}

/* ------------------------------------------------------------------------
 * Control
 * ------------------------------------------------------------------------ */
/* Mirrors the USB state a completed standard request changes (USB 2.0
 * §9.4), so the checker knows when an IN endpoint may legitimately stay
 * silent or lose what it had queued. */
static void fz_control_track(struct fz_dev *fd, const uint8_t setup[8],
			     bool was_configured)
{
	uint16_t value = ccid_le16_load(setup + 2), index = ccid_le16_load(setup + 4);

	if ((setup[0] & USB_TYPE_MASK) != USB_TYPE_STANDARD)
		return;
	switch (setup[1]) {
	case USB_REQ_SET_FEATURE:
	case USB_REQ_CLEAR_FEATURE:
		if ((setup[0] & USB_RECIP_MASK) != USB_RECIP_ENDPOINT ||
		    value != USB_FEATURE_ENDPOINT_HALT)
			return;
		if (index == CCID_EP_BULK_IN)
			fd->halt_bulk_in = setup[1] == USB_REQ_SET_FEATURE;
		else if (index == CCID_EP_INTR_IN)
			fd->halt_intr_in = setup[1] == USB_REQ_SET_FEATURE;
		return;
	case USB_REQ_SET_CONFIGURATION:
		if (value == 0) {
			fz_reset_checker(fd);
			return;
		}
		fd->halt_bulk_in = fd->halt_intr_in = false;
		/* A host that configures the device starts from nothing and
		 * is owed a notification for every card present. */
		if (!was_configured)
			memset(fd->reported_present, 0, sizeof(fd->reported_present));
		return;
	case USB_REQ_SET_INTERFACE:
		fd->halt_bulk_in = fd->halt_intr_in = false;
		return;
	default:
		return;
	}
}

int fz_control(struct fz_dev *fd, const uint8_t setup[8], const uint8_t *data,
	       size_t cap)
{
	uint16_t wlength = ccid_le16_load(setup + 6);
	bool in = setup[0] & USB_DIR_IN;
	size_t buf_len = in ? cap : wlength;
	uint8_t *buf = malloc(buf_len + FZ_GUARD);
	uint8_t *copy = NULL;
	bool was_configured = ccid_dev_is_configured(fd->dev);
	int ret;

	FZ_CHECK(buf != NULL, "out of memory");
	if (!in && buf_len) {
		memcpy(buf, data, buf_len);
		copy = malloc(buf_len);
		FZ_CHECK(copy != NULL, "out of memory");
		memcpy(copy, data, buf_len);
	} else {
		memset(buf, 0x5A, buf_len);
	}
	memset(buf + buf_len, FZ_GUARD_BYTE, FZ_GUARD);
	ret = ccid_dev_control(fd->dev, setup, (in || wlength) ? buf : NULL,
			       in ? cap : wlength);
	for (unsigned i = 0; i < FZ_GUARD; i++)
		FZ_CHECK(buf[buf_len + i] == FZ_GUARD_BYTE,
			 "control %02x %02x wrote past its %zu-byte buffer",
			 setup[0], setup[1], buf_len);
	FZ_CHECK(ret == CCID_CONTROL_STALL || ret >= 0,
		 "control returned %d", ret);
	if (in) {
		size_t lim = cap < wlength ? cap : wlength;

		FZ_CHECK(ret == CCID_CONTROL_STALL || (size_t)ret <= lim,
			 "control IN %02x %02x returned %d > min(wLength %u, cap %zu)",
			 setup[0], setup[1], ret, wlength, cap);
		/* GET_DESCRIPTOR(device/config) must match the blobs. */
		if (ret > 0 && setup[0] == USB_DIR_IN &&
		    setup[1] == USB_REQ_GET_DESCRIPTOR && setup[2] == 0 &&
		    (setup[3] == USB_DT_DEVICE || setup[3] == USB_DT_CONFIG)) {
			size_t dlen;
			const uint8_t *d = setup[3] == USB_DT_DEVICE ?
				ccid_dev_device_descriptor(fd->dev, &dlen) :
				ccid_dev_config_descriptor(fd->dev, &dlen);
			size_t want = lim < dlen ? lim : dlen;

			FZ_CHECK((size_t)ret == want && memcmp(buf, d, want) == 0,
				 "GET_DESCRIPTOR(%u) returned %d bytes, want %zu of the blob",
				 setup[3], ret, want);
		}
	} else {
		FZ_CHECK(ret == CCID_CONTROL_STALL || (size_t)ret <= wlength,
			 "control OUT %02x %02x returned %d > wLength %u",
			 setup[0], setup[1], ret, wlength);
		FZ_CHECK(!buf_len || memcmp(buf, copy, buf_len) == 0,
			 "control OUT %02x %02x modified its data stage",
			 setup[0], setup[1]);
	}
	free(copy);
	free(buf);
	if (ret >= 0)
		fz_control_track(fd, setup, was_configured);
	return ret;
}

int fz_set_configuration(struct fz_dev *fd, uint8_t value)
{
	const uint8_t setup[8] = { 0x00, USB_REQ_SET_CONFIGURATION, value, 0, 0, 0, 0, 0 };
	int ret = fz_control(fd, setup, NULL, 0);

	if (value <= 1) {
		FZ_CHECK(ret == 0, "SET_CONFIGURATION(%u) returned %d", value, ret);
		FZ_CHECK(ccid_dev_is_configured(fd->dev) == (value == 1),
			 "SET_CONFIGURATION(%u) left configured=%d", value,
			 ccid_dev_is_configured(fd->dev));
	}
	return ret;
}

/* ------------------------------------------------------------------------
 * Bulk
 * ------------------------------------------------------------------------ */
void fz_bulk_out(struct fz_dev *fd, const uint8_t *data, size_t len)
{
	ccid_dev_bulk_out(fd->dev, data, len);
}

static bool fz_rdr_type_valid(uint8_t t)
{
	return t >= CCID_RDR_TO_PC_DATA_BLOCK && t <= CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK;
}

/* A whole reply message has been pulled: check it as a host driver would
 * parse it. */
static void fz_check_reply(struct fz_dev *fd)
{
	const uint8_t *h = fd->chk.hdr;
	uint8_t type = h[CCID_OFF_TYPE], status = h[CCID_OFF_STATUS];
	uint8_t err = h[CCID_OFF_ERROR], slot = h[CCID_OFF_SLOT];
	uint32_t dwlen = ccid_le32_load(h + CCID_OFF_LENGTH);
	unsigned cmd = status >> CCID_CMD_STATUS_SHIFT;

	FZ_CHECK((status & 0x3Cu) == 0, "reply %02x: RFU bits set in bStatus %02x",
		 type, status);
	FZ_CHECK((status & CCID_ICC_STATUS_MASK) != 3,
		 "reply %02x: bmICCStatus 3 is RFU", type);
	FZ_CHECK(cmd != 3, "reply %02x: bmCommandStatus 3 is RFU", type);
	/* Garbage (a bad bSlot, or a fragment of one) is answered with an
	 * error naming the slot it claimed, which cannot hold a card. */
	FZ_CHECK(slot < fd->cfg.n_slots ||
		 (cmd == CCID_CMD_FAILED &&
		  (status & CCID_ICC_STATUS_MASK) == CCID_ICC_ABSENT),
		 "reply %02x for slot %u of %u: bStatus %02x bError %02x", type,
		 slot, fd->cfg.n_slots, status, err);
	if (cmd == CCID_CMD_TIME_EXTENSION)
		FZ_CHECK(dwlen == 0, "time-extension reply %02x carries %u bytes",
			 type, dwlen);
	if (cmd == CCID_CMD_FAILED && type != CCID_RDR_TO_PC_PARAMETERS)
		FZ_CHECK(dwlen == 0, "failed reply %02x (bError %02x) carries %u bytes",
			 type, err, dwlen);
	switch (type) {
	case CCID_RDR_TO_PC_SLOT_STATUS:
		FZ_CHECK(dwlen == 0, "SlotStatus with %u data bytes", dwlen);
		break;
	case CCID_RDR_TO_PC_PARAMETERS:
		FZ_CHECK(dwlen == 0 || (dwlen == 5 && h[9] == 0) ||
			 (dwlen == 7 && h[9] == 1),
			 "Parameters with %u bytes for bProtocolNum %u", dwlen, h[9]);
		break;
	case CCID_RDR_TO_PC_DATA_RATE_AND_CLOCK:
		FZ_CHECK(dwlen == 0 || dwlen == 8,
			 "DataRateAndClock with %u bytes", dwlen);
		break;
	default:
		break;
	}
	fd->chk.n_replies++;
	if (fd->on_reply)
		fd->on_reply(fd->on_reply_user, h, fd->reply_buf + CCID_HDR_LEN, dwlen);
}

int fz_bulk_pull(struct fz_dev *fd, size_t cap)
{
	struct fz_checker *c = &fd->chk;
	uint8_t *buf = fd->pull_buf;
	unsigned packet = fd->cfg.bulk_max_packet;
	int ret;

	if (cap > FZ_PULL_MAX)
		cap = FZ_PULL_MAX;
	memset(buf + cap, FZ_GUARD_BYTE, FZ_GUARD);
	ret = ccid_dev_bulk_in_pull(fd->dev, buf, cap);
	for (unsigned i = 0; i < FZ_GUARD; i++)
		FZ_CHECK(buf[cap + i] == FZ_GUARD_BYTE,
			 "bulk-IN pull wrote past its cap %zu (returned %d)", cap, ret);
	fz_trace("  bulk-IN pull cap %zu -> %d", cap, ret);
	if (ret == CCID_PULL_NONE) {
		/* A halted endpoint or a zero-byte buffer hides the queue. */
		if (fd->halt_bulk_in || cap == 0)
			return ret;
		FZ_CHECK(!c->in_msg, "bulk-IN queue empty in the middle of a message "
			 "(%u of %u bytes pulled)", c->got, c->total);
		FZ_CHECK(!c->zlp_due, "bulk-IN queue empty while a ZLP is owed");
		c->bulk_known_empty = true;
		c->bulk_woken = false;
		return ret;
	}
	FZ_CHECK(ret >= 0 && (size_t)ret <= cap,
		 "bulk-IN pull returned %d for cap %zu", ret, cap);
	FZ_CHECK(!fd->halt_bulk_in, "halted bulk-IN endpoint returned data");
	FZ_CHECK(!c->bulk_known_empty || c->bulk_woken || !fd->tops.bulk_in_ready,
		 "bulk-IN data appeared without a bulk_in_ready wake-up");
	c->bulk_known_empty = false;
	if (ret == 0) {
		if (c->zlp_due) {
			c->zlp_due = false;
			return 0;
		}
		FZ_CHECK(cap == 0, "zero-length bulk-IN transfer ends no message "
			 "(cap %zu, %u bytes of a message pulled)", cap, c->got);
		return 0;
	}
	FZ_CHECK(!c->zlp_due, "new bulk-IN data before the owed ZLP");
	if (!c->in_msg) {
		c->in_msg = true;
		c->got = 0;
		c->total = 0;
	}
	/* The transfer is taken a run at a time (the header, then the rest
	 * of the message), not a byte at a time: the same checks, without a
	 * traced comparison per byte of a 64 KiB answer. */
	for (size_t i = 0, n; i < (size_t)ret; i += n) {
		size_t left = (size_t)ret - i;
		bool in_hdr = c->got < CCID_HDR_LEN;

		if (in_hdr) {
			n = CCID_HDR_LEN - c->got < left ? CCID_HDR_LEN - c->got : left;
			memcpy(c->hdr + c->got, buf + i, n);
		} else {
			n = c->total - c->got < left ? c->total - c->got : left;
		}
		if (fd->reply_buf && c->got < FZ_PULL_MAX)
			memcpy(fd->reply_buf + c->got, buf + i,
			       FZ_PULL_MAX - c->got < n ? FZ_PULL_MAX - c->got : n);
		c->got += (uint32_t)n;
		if (in_hdr && c->got == CCID_HDR_LEN) {
			uint32_t dwlen = ccid_le32_load(c->hdr + CCID_OFF_LENGTH);

			FZ_CHECK(fz_rdr_type_valid(c->hdr[CCID_OFF_TYPE]),
				 "bulk-IN message type %02x is not RDR_to_PC",
				 c->hdr[CCID_OFF_TYPE]);
			FZ_CHECK(dwlen <= fd->cfg.max_message_len - CCID_HDR_LEN,
				 "bulk-IN dwLength %u exceeds dwMaxCCIDMessageLength %u",
				 dwlen, fd->cfg.max_message_len);
			c->total = CCID_HDR_LEN + dwlen;
		}
		FZ_CHECK(c->got < CCID_HDR_LEN || c->got <= c->total,
			 "bulk-IN message runs past 10 + dwLength = %u bytes", c->total);
		if (c->got >= CCID_HDR_LEN && c->got == c->total) {
			FZ_CHECK(i + n == (size_t)ret, "two messages in one bulk-IN "
				 "transfer (message ended at byte %zu of %d)", i + n, ret);
			c->in_msg = false;
			c->zlp_due = (size_t)ret == cap && c->total % packet == 0;
			fz_check_reply(fd);
		}
	}
	if (c->in_msg) {
		FZ_CHECK((size_t)ret == cap, "short bulk-IN transfer (%d of cap %zu) "
			 "in the middle of a message (%u of %u bytes)", ret, cap,
			 c->got, c->total);
		/* A cap that is not a whole number of packets ends the
		 * transfer with a short packet: the host takes the message as
		 * over, and the device drops its rest (ccid_bulk_in.c). */
		if (cap % packet != 0) {
			c->in_msg = false;
			c->n_cut++;
		}
	}
	return ret;
}

void fz_bulk_drain(struct fz_dev *fd, size_t cap)
{
	/* Enough pulls for a full queue of the largest messages, plus ZLPs. */
	size_t per_msg = cap ? FZ_PULL_MAX / cap + 2u : 2u;
	size_t limit = FZ_DRAIN_QUEUE * per_msg + 16u;

	for (size_t i = 0; i < limit; i++)
		if (fz_bulk_pull(fd, cap) == CCID_PULL_NONE)
			return;
	fz_fail("bulk-IN never ran dry after %zu pulls of %zu bytes", limit, cap);
}

int fz_intr_pull(struct fz_dev *fd, size_t cap)
{
	struct fz_checker *c = &fd->chk;
	uint8_t buf[64 + FZ_GUARD];
	unsigned n = fd->cfg.n_slots;
	size_t notify_len = 1u + (2u * n + 7u) / 8u;
	int ret;

	if (cap > 64)
		cap = 64;
	memset(buf + cap, FZ_GUARD_BYTE, FZ_GUARD);
	ret = ccid_dev_intr_in_pull(fd->dev, buf, cap);
	for (unsigned i = 0; i < FZ_GUARD; i++)
		FZ_CHECK(buf[cap + i] == FZ_GUARD_BYTE,
			 "interrupt pull wrote past its cap %zu", cap);
	fz_trace("  intr pull cap %zu -> %d", cap, ret);
	if (ret == CCID_PULL_NONE) {
		if (fd->halt_intr_in || cap == 0)
			return ret;
		c->intr_known_empty = true;
		c->intr_woken = false;
		return ret;
	}
	FZ_CHECK(ret >= 0 && (size_t)ret <= cap,
		 "interrupt pull returned %d for cap %zu", ret, cap);
	FZ_CHECK(!fd->halt_intr_in, "halted interrupt endpoint returned data");
	FZ_CHECK(!c->intr_known_empty || c->intr_woken || !fd->tops.intr_in_ready,
		 "interrupt data appeared without an intr_in_ready wake-up");
	c->intr_known_empty = false;
	if (ret == 0)
		return ret;
	if (buf[0] == CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE) {
		if (cap >= notify_len)
			FZ_CHECK((size_t)ret == notify_len,
				 "NotifySlotChange is %d bytes, want %zu", ret, notify_len);
		/* Only a configured device has a host that tracks slots. */
		if ((size_t)ret == notify_len && ccid_dev_is_configured(fd->dev)) {
			for (unsigned i = 0; i < n; i++) {
				unsigned bits = buf[1 + i / 4] >> (2 * (i % 4)) & 3u;
				bool present = bits & CCID_SLOT_BIT_PRESENT;

				FZ_CHECK(!fd->slot_present ||
					 present == fd->slot_present(fd->slot_present_user, i),
					 "NotifySlotChange says slot %u present=%d, the card "
					 "says otherwise", i, present);
				FZ_CHECK(present == fd->reported_present[i] ||
					 (bits & CCID_SLOT_BIT_CHANGED),
					 "NotifySlotChange: slot %u present=%d without the "
					 "changed bit", i, present);
				fd->reported_present[i] = present;
			}
		} else if (fd->slot_present) {
			/* A buffer too small for the message lost it (the
			 * device truncates): nothing left to compare with. */
			for (unsigned i = 0; i < n; i++)
				fd->reported_present[i] =
					fd->slot_present(fd->slot_present_user, i);
		}
		/* Bits of slots that do not exist must be zero. */
		for (unsigned bit = 2u * n; bit < 8u * ((size_t)ret - 1u); bit++)
			FZ_CHECK(!(buf[1 + bit / 8] & (1u << (bit % 8))),
				 "NotifySlotChange sets bit %u for %u slots", bit, n);
	} else if (buf[0] == CCID_RDR_TO_PC_HARDWARE_ERROR) {
		if (cap >= 4)
			FZ_CHECK(ret == 4, "HardwareError is %d bytes", ret);
		if (ret >= 2)
			FZ_CHECK(buf[1] < n, "HardwareError for slot %u of %u", buf[1], n);
		if (ret >= 4)
			FZ_CHECK(buf[3] == CCID_HW_ERROR_OVERCURRENT,
				 "HardwareError code %02x", buf[3]);
	} else {
		fz_fail("interrupt message type %02x", buf[0]);
	}
	return ret;
}

void fz_intr_drain(struct fz_dev *fd)
{
	for (unsigned i = 0; i < 64; i++)
		if (fz_intr_pull(fd, CCID_INTR_MAX_PACKET) == CCID_PULL_NONE)
			return;
	fz_fail("interrupt endpoint never ran dry");
}

void fz_check_presence_reported(struct fz_dev *fd)
{
	if (!fd->slot_present || fd->halt_intr_in || !ccid_dev_is_configured(fd->dev))
		return;
	for (unsigned i = 0; i < fd->cfg.n_slots; i++)
		FZ_CHECK(fd->reported_present[i] ==
			 fd->slot_present(fd->slot_present_user, i),
			 "slot %u: presence changed to %d but no NotifySlotChange "
			 "said so", i, !fd->reported_present[i]);
}

void fz_advance(struct fz_dev *fd, uint32_t ms)
{
	fd->now += ms;
	if (fd->deadline >= 0 && (uint64_t)fd->deadline <= fd->now) {
		fz_trace("  timer fires at %llu", (unsigned long long)fd->now);
		fd->deadline = -1;
		ccid_dev_timer_expired(fd->dev);
	}
}

void fz_reset(struct fz_dev *fd)
{
	ccid_dev_reset(fd->dev);
	FZ_CHECK(!ccid_dev_is_configured(fd->dev), "still configured after reset");
	fz_reset_checker(fd);
}
