/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared machinery of the fuzz targets: a byte reader over the fuzz input,
 * a fake transport that records wake-ups and the timer, and a checker that
 * reassembles every bulk-IN and interrupt-IN transfer and aborts on the
 * first broken invariant.  Built twice: with libFuzzer (clang) and with
 * replay_main.c (any compiler), so every check here also runs in the
 * normal `meson test --suite fuzz`.
 */
#ifndef CCID_FUZZ_HARNESS_H
#define CCID_FUZZ_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ccid-emu/ccid_emu.h>

/* libFuzzer's entry point; replay_main.c calls it for every corpus file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints the broken invariant with the current op and aborts, which
 * libFuzzer and the replay driver both report as a crash. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define FZ_CHECK(cond, ...) \
	do { \
		if (!(cond)) \
			fz_fail(__VA_ARGS__); \
	} while (0)

/* Set FUZZ_TRACE=1 in the environment to print each decoded op. */
bool fz_trace_enabled(void);
void fz_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- Input reader: reads past the end return zeros, so every input
 *     decodes to some script. ------------------------------------------- */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_more(const struct fz_in *in)
{
	return in->n > 0;
}

static inline uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v;

	if (!in->n)
		return 0;
	v = *in->p++;
	in->n--;
	return v;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	uint16_t lo = fz_u8(in);

	return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	uint32_t lo = fz_u16(in);

	return lo | (uint32_t)fz_u16(in) << 16;
}

/* Copies up to @len input bytes to @dst, zero-fills the rest. */
void fz_bytes(struct fz_in *in, uint8_t *dst, size_t len);

/* A new private directory "@prefix-XXXXXX" for a target's files, on
 * tmpfs (/dev/shm) when there is one: the code under test binds sockets,
 * makes directories and saves with fsync, each a journal write on disk.
 * Removed with what is in it when the process exits. */
const char *fz_scratch_dir(const char *prefix);

/* Reads @len bytes at @p, so AddressSanitizer reports a buffer shorter
 * than its length: under ASan one range check (a loop per byte of a
 * 64 KiB APDU cost more than the code under test), otherwise a read of
 * every byte (for valgrind). */
void fz_touch(const void *p, size_t len);

/* --- Device under test and its fake transport -------------------------- */
struct fz_ctx;

/* Per-slot record of what the device told the card (fake card or any
 * other backend wrapped by a target). */
struct fz_checker {
	/* Bulk-IN message being reassembled. */
	uint8_t hdr[CCID_HDR_LEN];
	uint32_t got;          /* bytes of the current message pulled so far */
	uint32_t total;        /* 10 + dwLength, valid once got >= 10 */
	bool in_msg;
	bool zlp_due;          /* the next pull must return 0 */
	unsigned n_replies;
	unsigned n_cut;        /* messages cut short by a transfer that ended them */
	/* Wake-up bookkeeping: a pull that found nothing makes the endpoint
	 * "known empty"; data may only show up again after a wake-up. */
	bool bulk_known_empty, bulk_woken;
	bool intr_known_empty, intr_woken;
};

struct fz_dev {
	ccid_dev *dev;
	struct ccid_config cfg;
	struct ccid_transport_ops tops;
	uint64_t now;
	int64_t deadline;      /* last timer_update value, < 0 = none */
	unsigned n_timer_updates;
	struct fz_checker chk;
	bool halt_bulk_in, halt_intr_in;  /* as the guest set them */
	uint8_t *pull_buf;     /* scratch for pulls, FZ_PULL_MAX + guard */
	/* Whether slot @i holds a card right now, as the backend knows it
	 * (may be NULL).  NotifySlotChange must agree, and must set the
	 * "changed" bit whenever presence differs from what it last said. */
	bool (*slot_present)(void *user, unsigned i);
	void *slot_present_user;
	bool reported_present[CCID_EMU_MAX_SLOTS];
	/* Called on each reply message once complete (may be NULL). */
	void (*on_reply)(void *user, const uint8_t *msg_hdr, const uint8_t *payload,
			 uint32_t payload_len);
	void *on_reply_user;
	uint8_t *reply_buf;    /* the reply being reassembled, when on_reply */
};

#define FZ_PULL_MAX     (CCID_EMU_DEFAULT_MAX_MSG + 256u)

/* Fills @cfg from 5 input bytes into a valid config (or, when
 * @allow_invalid and the input asks for it, a raw, possibly invalid one).
 * Returns false for a raw config.  @with_log (may be NULL) gets bit 6 of
 * the first byte, which no valid config uses: whether the device gets a
 * log op (see FZ_OPS_LOG). */
bool fz_config_read(struct fz_in *in, struct ccid_config *cfg, bool allow_invalid,
		    bool *with_log);
/* Whether @cfg is valid by the rules documented in ccid_emu.h. */
bool fz_config_documented_valid(const struct ccid_config *cfg);

/* Which optional transport ops fz_dev_init() installs. */
enum {
	FZ_OPS_READY = 1,   /* bulk_in_ready and intr_in_ready */
	/* The log op, whose lines are checked.  The library then formats a
	 * debug line for most guest messages: with it on for every input,
	 * vsnprintf was about a third of fuzz_control's time. */
	FZ_OPS_LOG = 2,
	FZ_OPS_ALL = FZ_OPS_READY | FZ_OPS_LOG,
};

/* Creates the device with the optional transport ops @ops (FZ_OPS_*)
 * asks for; returns false (after checking the error) when the config was
 * rejected. */
bool fz_dev_init(struct fz_dev *fd, const struct ccid_config *cfg, unsigned ops);
void fz_dev_fini(struct fz_dev *fd);

/* One control transfer with full checking.  @data is the OUT data stage or
 * ignored for IN; @cap the IN buffer size.  Returns the device's result. */
int fz_control(struct fz_dev *fd, const uint8_t setup[8], const uint8_t *data,
	       size_t cap);
int fz_set_configuration(struct fz_dev *fd, uint8_t value);

void fz_bulk_out(struct fz_dev *fd, const uint8_t *data, size_t len);
/* Pulls once; returns the device's result after checking it. */
int fz_bulk_pull(struct fz_dev *fd, size_t cap);
/* Pulls with @cap until nothing is queued (bounded). */
void fz_bulk_drain(struct fz_dev *fd, size_t cap);
int fz_intr_pull(struct fz_dev *fd, size_t cap);
void fz_intr_drain(struct fz_dev *fd);
/* After a drain: every presence change has been notified. */
void fz_check_presence_reported(struct fz_dev *fd);
/* Advances the clock by @ms and fires the timer if it is due. */
void fz_advance(struct fz_dev *fd, uint32_t ms);
/* Bus reset; the checker forgets the partly pulled message. */
void fz_reset(struct fz_dev *fd);

/* Builds a PC_to_RDR header into @hdr. */
void fz_hdr(uint8_t hdr[CCID_HDR_LEN], uint8_t type, uint32_t dwlen, uint8_t slot,
	    uint8_t seq, uint8_t s0, uint8_t s1, uint8_t s2);

#endif /* CCID_FUZZ_HARNESS_H */
