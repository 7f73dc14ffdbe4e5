/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit-test harness for libccidemu: a fake transport (clock the test
 * advances, recorded timer deadlines, wake-up counters, captured log lines)
 * and a scriptable fake card per slot, plus helpers that speak USB to the
 * device the way a host controller would.
 *
 * Everything a harness allocates hangs off `struct harness` and is released
 * by h_free(); h_free_all() (run as a Check checked-teardown) releases the
 * harnesses a failed test left behind, so that runs under valgrind with
 * CK_FORK=no stay leak-free even when an assertion fails.
 */
#ifndef CCID_TEST_HARNESS_H
#define CCID_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include <ccid-emu/ccid_emu.h>

/* A byte-array literal and its length, for commented test-vector tables. */
#define BYTES(...) ((const uint8_t[]){ __VA_ARGS__ }), \
	sizeof((const uint8_t[]){ __VA_ARGS__ })
/* Little-endian spelling of multi-byte fields inside BYTES(). */
#define LE16(v) (uint8_t)((v) & 0xFF), (uint8_t)(((v) >> 8) & 0xFF)
#define LE32(v) (uint8_t)((v) & 0xFF), (uint8_t)(((v) >> 8) & 0xFF), \
	(uint8_t)(((v) >> 16) & 0xFF), (uint8_t)(((v) >> 24) & 0xFF)

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Largest bulk-IN message: header + largest response. */
#define H_MSG_CAP (CCID_HDR_LEN + CCID_EMU_MAX_APDU_RESP + 16u)

/* One input message and the reply it must produce. */
struct vec {
	const char *what;
	const uint8_t *in;
	size_t in_len;
	const uint8_t *out;
	size_t out_len;
};

/* ------------------------------------------------------------------ */
/* Fake card                                                          */
/* ------------------------------------------------------------------ */
enum fake_op {
	FAKE_OP_NONE = 0,
	FAKE_OP_POWER_ON,
	FAKE_OP_TRANSMIT,
};

struct fake_card {
	ccid_slot *slot;
	unsigned index;
	/* Script */
	bool answer_now;              /* complete inside the op */
	int power_on_ret;             /* non-zero: refuse to start */
	int transmit_ret;
	enum ccid_card_status power_on_status;
	enum ccid_card_status apdu_status;
	uint8_t atr[64];
	size_t atr_len;
	uint8_t *resp;                /* scripted response (owned), NULL = 90 00 */
	size_t resp_len;
	/* Record */
	unsigned n_power_on, n_power_off, n_transmit, n_cancel, n_detach;
	enum fake_op pending;
	uint8_t *last_apdu;           /* owned copy of the last transmit */
	size_t last_apdu_len;
	char events[128];             /* 'P'ower on, 'O'ff, 'T'ransmit,
	                               * 'C'ancel, 'D'etach, in call order */
	size_t n_events;
	bool powered;                 /* as far as the card knows */
	bool detached;
	unsigned n_violations;        /* breaches of the ccid_card_ops contract */
	char violation[128];
};

/* ------------------------------------------------------------------ */
/* Harness                                                            */
/* ------------------------------------------------------------------ */
#define H_MAX_DEADLINES 256u
#define H_MAX_LOGS 256u

struct harness {
	ccid_dev *dev;
	struct ccid_config cfg;
	struct ccid_transport_ops tops;
	uint64_t now;
	int64_t deadline;             /* last timer_update value, -1 initially */
	int64_t deadlines[H_MAX_DEADLINES];
	unsigned n_timer_updates;
	unsigned n_bulk_in_ready;
	unsigned n_intr_in_ready;
	char *logs[H_MAX_LOGS];
	int log_levels[H_MAX_LOGS];
	unsigned n_logs;
	unsigned n_logs_dropped;
	struct fake_card cards[CCID_EMU_MAX_SLOTS];
	uint8_t *msg;                 /* H_MSG_CAP bytes for pulled messages */
	size_t msg_len;
	uint8_t *xfer;                /* H_MSG_CAP bytes, one transfer */
	void *allocs[32];             /* h_malloc() blocks, freed by h_free() */
	unsigned n_allocs;
	int registry_index;
};

/* The T=1-only ATR every fake card answers by default:
 * TS=3B direct, T0=80 (TD1 follows, no historical bytes),
 * TD1=01 (T=1, nothing follows), TCK=80^01=81. */
#define FAKE_ATR_T1 0x3B, 0x80, 0x01, 0x81
#define FAKE_ATR_T1_LEN 4u

/* A config with every field set explicitly (1 slot, extended APDU level,
 * default max message length, 64-byte packets, 500 ms time extension). */
void h_config_default(struct ccid_config *cfg);

/* Creates a device from @cfg (NULL = h_config_default) and binds a fake card
 * to every slot, present when @present.  Fails the test if ccid_dev_new()
 * refuses the config. */
struct harness *h_new(const struct ccid_config *cfg, bool present);
/* Same with only the required transport ops (no wake-ups, no log). */
struct harness *h_new_polling(const struct ccid_config *cfg, bool present);
/* h_new() + SET_CONFIGURATION(1) + drain both IN queues. */
struct harness *h_new_configured(const struct ccid_config *cfg, bool present);
/* Frees the device first (so detach is recorded), then the harness. */
void h_free(struct harness *h);
/* Checked teardown: frees every harness still alive. */
void h_free_all(void);
/* Checked teardown that also asserts every log line was DEBUG level. */
void h_teardown(void);

/* Memory that lives as long as the harness, so that a failed assertion
 * does not leak it under CK_FORK=no. */
void *h_malloc(struct harness *h, size_t n);

/* Transport side */
void h_advance(struct harness *h, uint64_t ms);
int h_control(struct harness *h, uint8_t bm_request_type, uint8_t b_request,
	      uint16_t w_value, uint16_t w_index, uint16_t w_length,
	      uint8_t *data, size_t data_cap);
/* SET_CONFIGURATION(@value), asserting it is accepted. */
void h_set_config(struct harness *h, uint8_t value);
/* One bulk-OUT transfer of the whole message. */
void h_send(struct harness *h, const uint8_t *msg, size_t len);
/* The message cut into transfers of @chunk bytes (the last may be short). */
void h_send_split(struct harness *h, const uint8_t *msg, size_t len,
		  size_t chunk);
/* Pulls one full bulk-IN message into h->msg with transfers of
 * bulk_max_packet bytes, until a short or zero-length transfer.  Returns its
 * length, or -1 if nothing was queued.  Fails the test if the queue runs dry
 * in the middle of a message or a transfer exceeds the packet size. */
long h_pull_msg(struct harness *h);
/* Same, with transfers of @cap bytes. */
long h_pull_msg_cap(struct harness *h, size_t cap);
/* Asserts that nothing is queued on bulk-IN. */
#define h_assert_no_reply(h) h_assert_no_reply_at(h, __FILE__, __LINE__)
void h_assert_no_reply_at(struct harness *h, const char *file, int line);
/* Pulls one bulk-IN message and compares it with @exp, @exp_len; the
 * macros take (exp, exp_len, what) so that BYTES() can be passed. */
#define h_expect(h, ...) h_expect_at(h, __VA_ARGS__, __FILE__, __LINE__)
void h_expect_at(struct harness *h, const uint8_t *exp, size_t exp_len,
		 const char *what, const char *file, int line);
/* h_send() + h_expect(). */
#define h_exchange(h, v) h_exchange_at(h, v, __FILE__, __LINE__)
void h_exchange_at(struct harness *h, const struct vec *v, const char *file,
		   int line);
/* One interrupt-IN transfer into @buf (cap 64); returns its length or -1. */
int h_intr_pull(struct harness *h, uint8_t *buf);
#define h_expect_intr(h, ...) \
	h_expect_intr_at(h, __VA_ARGS__, __FILE__, __LINE__)
void h_expect_intr_at(struct harness *h, const uint8_t *exp, size_t exp_len,
		      const char *what, const char *file, int line);
/* Pulls and discards every queued bulk-IN and interrupt-IN message. */
void h_drain(struct harness *h);

/* Byte comparison with a hex dump of both sides on stderr on mismatch. */
#define h_assert_bytes(got, got_len, ...) \
	h_assert_bytes_at(got, got_len, __VA_ARGS__, __FILE__, __LINE__)
void h_assert_bytes_at(const uint8_t *got, size_t got_len, const uint8_t *exp,
		       size_t exp_len, const char *what, const char *file,
		       int line);

/* Whether any captured log line contains @needle. */
bool h_log_contains(const struct harness *h, const char *needle);

/* Convenience: builds a 10-byte command header in @out. */
void h_hdr(uint8_t out[CCID_HDR_LEN], uint8_t type, uint32_t dw_length,
	   uint8_t slot, uint8_t seq, uint8_t b7, uint8_t b8, uint8_t b9);
/* Sends IccPowerOn(auto) to @slot and checks the DataBlock carrying the
 * fake card's ATR (the card must answer synchronously). */
void h_power_on(struct harness *h, uint8_t slot, uint8_t seq);

/* Card presence changes through the reverse API; keeps the fake card's
 * idea of its power state in step (a removed card loses power). */
void h_card_insert(struct harness *h, unsigned slot);
void h_card_remove(struct harness *h, unsigned slot);

/* Fake card */
void fake_card_set_atr(struct fake_card *c, const uint8_t *atr, size_t len);
void fake_card_set_resp(struct fake_card *c, const uint8_t *resp, size_t len);
/* Completes the op in flight with the scripted status and data.  Fails the
 * test if none is in flight. */
void fake_card_complete(struct fake_card *c);
/* Calls the completion although nothing is in flight from the card's point
 * of view (after cancel): the device must ignore it. */
void fake_card_complete_late(struct fake_card *c, enum fake_op op);
const struct ccid_card_ops *fake_card_ops(void);

/* Runs @s (fork mode from CK_FORK, default fork) and returns the exit
 * status for main(). */
int h_run_suite(Suite *s);
/* A TCase with the harness teardown and a generous timeout. */
TCase *h_tcase(const char *name);

#endif /* CCID_TEST_HARNESS_H */
