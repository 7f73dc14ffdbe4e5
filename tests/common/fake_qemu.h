/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fake QEMU usb-redir device for tests: the usb-guest role of the
 * usbredir protocol, spoken with the real usbredirparser and the
 * capabilities QEMU 7.2 announces, over any connected stream socket.
 * The helpers that act like the guest's USB stack assert with Check.
 *
 * fake_qemu_spin() also iterates the default GMainContext, so a bridge
 * in the same process makes progress while the fake waits; a bridge in
 * another process (ccid-agent serve) does not need it.
 */
#ifndef CCID_TEST_FAKE_QEMU_H
#define CCID_TEST_FAKE_QEMU_H

#include <stdbool.h>
#include <stdint.h>

#include <usbredirparser.h>

#define FAKE_QEMU_MAX_EVENTS 64
#define FAKE_QEMU_MAX_INTR   16
/* Bulk replies are kept by packet id modulo this. */
#define FAKE_QEMU_BULK_SLOTS 8
/* QEMU starts dropping buffered interrupt packets above 2000. */
#define FAKE_QEMU_MAX_PIECES 2100
#define FAKE_QEMU_DATA_BYTES (FAKE_QEMU_MAX_PIECES * 64)

struct fake_qemu_reply {
	bool done;
	uint8_t status;
	unsigned data_count;    /* interrupt pieces queued when it came */
	uint8_t data[70000];
	int len;
};

struct fake_qemu {
	struct usbredirparser *parser;
	int fd;
	bool eof;
	uint64_t next_id;
	/* Order in which session packets arrived, for the ordering rules. */
	char events[FAKE_QEMU_MAX_EVENTS][32];
	unsigned n_events;
	struct usb_redir_device_connect_header conn;
	struct usb_redir_ep_info_header ep;
	bool have_ep, connected, disconnected;
	struct usb_redir_configuration_status_header cfg_status;
	bool have_cfg_status;
	struct usb_redir_interrupt_receiving_status_header intr_status;
	bool have_intr_status;
	uint8_t intr[FAKE_QEMU_MAX_INTR][8];
	int intr_len[FAKE_QEMU_MAX_INTR];
	unsigned n_intr;
	struct fake_qemu_reply ctrl, bulk[FAKE_QEMU_BULK_SLOTS];
	/* The bulk-IN endpoint announced as interrupt: QEMU's bufpq, which
	 * holds packets only between start and stop of interrupt receiving
	 * (hw/usb/redirect.c usbredir_interrupt_packet / usbredir_stop_ep). */
	bool data_started;
	unsigned data_dropped;         /* arrived while not started */
	unsigned data_wrong_type;      /* arrived while bulk-IN was bulk */
	unsigned data_bulk_reads;      /* reads served by bulk-IN requests */
	unsigned data_head, data_count;
	uint32_t data_off[FAKE_QEMU_MAX_PIECES];
	int data_len[FAKE_QEMU_MAX_PIECES];
	uint8_t data[FAKE_QEMU_DATA_BYTES];
	uint32_t data_fill;
	/* device_connect packets seen (a fallback sends a second). */
	unsigned n_connects;
};

/* Takes @fd (made non-blocking) and queues the hello. */
void fake_qemu_init(struct fake_qemu *g, int fd);
/* The same, saying @version in the hello (QEMU 7.2 says
 * "qemu usb-redir guest 7.2.0"). */
void fake_qemu_init_version(struct fake_qemu *g, int fd, const char *version);
/* Destroys the parser and closes the socket; safe to call twice. */
void fake_qemu_fini(struct fake_qemu *g);

typedef bool (*fake_qemu_done_fn)(struct fake_qemu *g, void *arg);

/* Reads, writes and iterates the default main context until @done says
 * so or @timeout_ms pass; returns @done's last verdict (TRUE if NULL). */
bool fake_qemu_spin(struct fake_qemu *g, fake_qemu_done_fn done, void *arg,
		    unsigned timeout_ms);

/* Conditions for fake_qemu_spin(). */
bool fake_qemu_is_connected(struct fake_qemu *g, void *arg);
bool fake_qemu_is_disconnected(struct fake_qemu *g, void *arg);
bool fake_qemu_ctrl_done(struct fake_qemu *g, void *arg);
bool fake_qemu_cfg_done(struct fake_qemu *g, void *arg);
/* @arg: GUINT_TO_POINTER(packet id) */
bool fake_qemu_bulk_done(struct fake_qemu *g, void *arg);
/* @arg: GUINT_TO_POINTER(count) of interrupt packets received */
bool fake_qemu_intr_n(struct fake_qemu *g, void *arg);

/* The guest USB stack: each waits for and asserts its answer. */
struct fake_qemu_reply *fake_qemu_control_in(struct fake_qemu *g, uint8_t type,
					     uint8_t req, uint16_t value,
					     uint16_t index, uint16_t len);
void fake_qemu_set_configuration(struct fake_qemu *g, uint8_t value);
/* start_interrupt_receiving on the CCID interrupt endpoint; waits for
 * its status and asserts success. */
void fake_qemu_start_interrupt(struct fake_qemu *g);
void fake_qemu_bulk_out(struct fake_qemu *g, const uint8_t *msg, uint32_t len);
/* The same in packets of at most @td bytes (UHCI's TDs), each acked;
 * returns the last packet's id (its reply is in bulk[id % SLOTS]). */
uint64_t fake_qemu_bulk_out_tds(struct fake_qemu *g, const uint8_t *msg,
				uint32_t len, unsigned td);
/* The bulk-OUT endpoint announced as interrupt (interrupt-both): @msg as
 * interrupt packets of at most @td bytes, which QEMU completes at once. */
void fake_qemu_intr_out(struct fake_qemu *g, const uint8_t *msg, uint32_t len,
			unsigned td);
/* Interrupt receiving on the bulk-IN endpoint (the interrupt data path):
 * start waits for and asserts the status; stop frees what is buffered, as
 * QEMU does when a controller stops the endpoint. */
void fake_qemu_data_start(struct fake_qemu *g);
void fake_qemu_data_stop(struct fake_qemu *g);
/* A UHCI-like guest read of one message into @buf (room @cap): one
 * buffered piece per TD of at most @td bytes, until a short piece; fails
 * the test on babble (a piece larger than its TD) or when no piece comes
 * for @timeout_ms.  @max_pieces > 0 stops early after that many pieces
 * (a read the guest abandons).  While the last ep_info announces bulk-IN
 * as bulk, the rest of the read is one bulk-IN request, as QEMU combines
 * a transfer's TDs (data_bulk_reads counts them).  Returns the bytes
 * read. */
uint32_t fake_qemu_data_read(struct fake_qemu *g, uint8_t *buf, uint32_t cap,
			     unsigned td, unsigned max_pieces,
			     unsigned timeout_ms);
uint64_t fake_qemu_bulk_in_request(struct fake_qemu *g, uint32_t len);
struct fake_qemu_reply *fake_qemu_bulk_in(struct fake_qemu *g, uint32_t len,
					  unsigned timeout_ms);

/* Builds PC_to_RDR_XfrBlock for slot 0, wLevelParameter 0, around @apdu
 * in @msg (10 + @len bytes); returns its length. */
uint32_t fake_qemu_xfr_block(uint8_t *msg, uint8_t seq, const uint8_t *apdu,
			     uint32_t len);
/* IccPowerOn of slot 0; asserts a DataBlock with an ATR starting 3B. */
void fake_qemu_power_on(struct fake_qemu *g, uint8_t seq);

#endif /* CCID_TEST_FAKE_QEMU_H */
