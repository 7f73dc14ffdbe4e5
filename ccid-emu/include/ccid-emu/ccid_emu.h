/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libccidemu: a USB CCID smart-card reader as a pure device model.
 *
 * The library does no I/O, owns no thread, keeps no global state and reads
 * no clock of its own.  Bytes come in through ccid_dev_control() and
 * ccid_dev_bulk_out(); bytes go out when the transport pulls them with
 * ccid_dev_bulk_in_pull() / ccid_dev_intr_in_pull().  Everything the model
 * needs from the outside world arrives through two `const` ops tables:
 *
 *   transport (below):  struct ccid_transport_ops  - wake-ups, clock, timer, log
 *   card (above):       struct ccid_card_ops       - one per slot
 *
 * Threading: a ccid_dev and all its slots are single-threaded.  Every
 * function here, including the card reverse API (ccid_slot_*), must be called
 * from the thread that owns the device.  A backend that works on another
 * thread hands its results back to the owner thread first.
 *
 * Re-entrancy: a card op may call its completion (ccid_slot_*_done) before it
 * returns; the device handles that.  Transport callbacks are never called
 * while the device is in an inconsistent state, but they must not destroy
 * the device.
 */
#ifndef CCID_EMU_CCID_EMU_H
#define CCID_EMU_CCID_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ccid_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CCID_EMU_MAX_SLOTS          8u
/* Largest ISO 7816-4 extended command APDU: 4 header + 3 Lc + 65535 data
 * + 2 Le; largest response: 65536 data + SW1 SW2. */
#define CCID_EMU_MAX_APDU_CMD       65544u
#define CCID_EMU_MAX_APDU_RESP      65538u
#define CCID_EMU_MAX_ATR            33u
/* Default dwMaxCCIDMessageLength: the largest extended command in one
 * message.  It is also the size of the buffers the device really allocates,
 * which is what makes it truthful. */
#define CCID_EMU_DEFAULT_MAX_MSG    (CCID_HDR_LEN + CCID_EMU_MAX_APDU_CMD)
/* Smallest dwMaxCCIDMessageLength accepted: a short APDU (5 + 255 + 1 bytes
 * after the header) plus the header, the value CCID 1.1 §5.1 recommends. */
#define CCID_EMU_MIN_MAX_MSG        271u

/* Log levels, syslog numbering; the library itself only emits DEBUG. */
enum ccid_log_level {
	CCID_LOG_ERR = 3,
	CCID_LOG_WARNING = 4,
	CCID_LOG_INFO = 6,
	CCID_LOG_DEBUG = 7,
};

/* ------------------------------------------------------------------------
 * Configuration: every descriptor byte is generated from this struct.
 * ------------------------------------------------------------------------ */
struct ccid_config {
	uint16_t vendor_id;          /* idVendor */
	uint16_t product_id;         /* idProduct */
	uint16_t bcd_device;         /* bcdDevice */
	/* Strings: valid UTF-8 of at most 126 UTF-16 units (a string
	 * descriptor holds 255 bytes), copied at ccid_dev_new(); NULL or ""
	 * = no string. */
	const char *manufacturer;
	const char *product;
	const char *serial;
	const char *interface;       /* iInterface: pcscd appends it to the
	                              * reader name as " [interface]" */
	uint8_t n_slots;             /* 1..CCID_EMU_MAX_SLOTS */
	uint8_t max_busy_slots;      /* bMaxCCIDBusySlots, 1..n_slots */
	uint32_t max_message_len;    /* dwMaxCCIDMessageLength, CCID_EMU_MIN_MAX_MSG..
	                              * CCID_EMU_DEFAULT_MAX_MSG; smaller values force
	                              * extended-APDU chaining */
	uint32_t features;           /* dwFeatures: only bits named CCID_FEAT_* in
	                              * ccid_proto.h, with exactly one of the
	                              * SHORT_APDU / EXTENDED_APDU levels (TPDU and
	                              * character levels are not implemented) */
	uint8_t bulk_max_packet;     /* wMaxPacketSize of both bulk endpoints: 8,16,32,64 */
	uint8_t intr_interval_ms;    /* bInterval of the interrupt endpoint, 1..255 */
	uint32_t time_extension_ms;  /* how often a pending command is answered with
	                              * a time-extension reply, 10..60000 */
	bool remote_wakeup;          /* advertise remote wake-up in bmAttributes */
};

/* USB identities.  The default is one that stock libccid lists (SCM
 * Microsystems SCR 335), so an unmodified Linux guest's pcscd drives the
 * reader; libccid has no special case for it (docs/usb-identity.md).  The
 * project's own pid.codes ID needs the guest's libccid list edited until
 * libccid ships it. */
#define CCID_EMU_DEFAULT_VID        0x04E6u
#define CCID_EMU_DEFAULT_PID        0x5115u
/* bcdDevice 5.20: GnuPG's CCID driver caps the T=1 IFSD of SCR 335 units
 * older than 5.14 (a firmware bug); none of its quirks must apply. */
#define CCID_EMU_DEFAULT_BCD        0x0520u
#define CCID_EMU_OWN_VID            0x1209u
#define CCID_EMU_OWN_PID            0xCC1Du

/* Fills @cfg with the project's defaults: VID:PID CCID_EMU_DEFAULT_VID:PID,
 * "ccid-emu" strings (manufacturer, product, interface), one slot, extended
 * APDU level, 64-byte bulk packets, 4 ms interrupt interval, time extension
 * every 500 ms. */
void ccid_config_init(struct ccid_config *cfg);

/* Endpoint addresses the generated descriptors use.  Fixed, so transports
 * can route by address. */
#define CCID_EP_BULK_OUT            0x02u
#define CCID_EP_BULK_IN             0x81u
#define CCID_EP_INTR_IN             0x83u
#define CCID_INTR_MAX_PACKET        8u   /* 1 + 2 bytes for 8 slots fits */

typedef struct ccid_dev ccid_dev;
typedef struct ccid_slot ccid_slot;

/* ------------------------------------------------------------------------
 * Seam 1: the transport (below the device).
 * ------------------------------------------------------------------------ */
struct ccid_transport_ops {
	/* Bulk-IN data became available (the queue went from empty to
	 * non-empty, or a message was completed).  The transport calls
	 * ccid_dev_bulk_in_pull() when it has a bulk-IN request to fill.
	 * May be NULL if the transport polls. */
	void (*bulk_in_ready)(void *user);
	/* Same for the interrupt endpoint.  May be NULL. */
	void (*intr_in_ready)(void *user);
	/* Monotonic milliseconds.  Required. */
	uint64_t (*now_ms)(void *user);
	/* The device wants ccid_dev_timer_expired() called at absolute time
	 * @deadline_ms (same clock as now_ms), replacing any earlier request;
	 * a negative deadline cancels.  Required. */
	void (*timer_update)(void *user, int64_t deadline_ms);
	/* Debug log line without trailing newline.  May be NULL. */
	void (*log)(void *user, enum ccid_log_level level, const char *msg);
};

/* ------------------------------------------------------------------------
 * Seam 2: the card backend (above the device), one per slot.
 *
 * Every operation is asynchronous: it starts the work and returns 0, and
 * the backend later reports the result through the matching ccid_slot_*
 * function (possibly before the op returns).  A non-zero return means the
 * op could not even be started; the device answers the guest with a
 * hardware error and no completion may follow.
 *
 * The device guarantees: at most one power_on or transmit in flight per
 * slot; transmit only while the card is powered; buffers passed to an op are
 * only valid during the call (copy what you keep).
 * ------------------------------------------------------------------------ */
enum ccid_card_status {
	CCID_CARD_OK = 0,
	CCID_CARD_ENOCARD,   /* no card / card removed during the operation */
	CCID_CARD_EMUTE,     /* card did not answer */
	CCID_CARD_EHW,       /* reader or backend failure */
	CCID_CARD_ECANCELLED,/* only reported by the device, never by a backend */
};

struct ccid_card_ops {
	const char *name;
	/* Power the card on (cold or warm reset).  Complete with
	 * ccid_slot_power_on_done() carrying the ATR. */
	int (*power_on)(void *card);
	/* Power the card off.  Synchronous; cannot fail.  Any op in flight was
	 * cancelled before this is called. */
	void (*power_off)(void *card);
	/* Send one command APDU (1..CCID_EMU_MAX_APDU_CMD bytes).  Complete
	 * with ccid_slot_apdu_done(); the response may be up to
	 * CCID_EMU_MAX_APDU_RESP bytes. */
	int (*transmit)(void *card, const uint8_t *apdu, size_t len);
	/* Give up the power_on or transmit in flight.  After it returns the
	 * backend must not complete that op.  Required. */
	void (*cancel)(void *card);
	/* The slot forgets this backend (ccid_slot_set_card() with another
	 * card, or ccid_dev_free()).  May be NULL.  The device does not free
	 * the card; its owner does, after this call. */
	void (*detach)(void *card);
};

/* ------------------------------------------------------------------------
 * Device lifetime and configuration
 * ------------------------------------------------------------------------ */

/* Creates a device.  Validates @cfg; on invalid config returns NULL and, if
 * @err is non-NULL, points it at a static English message naming the bad
 * field.  @user is passed to every transport op. */
ccid_dev *ccid_dev_new(const struct ccid_config *cfg,
		       const struct ccid_transport_ops *tops, void *user,
		       const char **err);
/* Accepts NULL.  Cancels ops in flight and detaches every card first. */
void ccid_dev_free(ccid_dev *dev);

/* Slot @index (0-based), or NULL if out of range. */
ccid_slot *ccid_dev_get_slot(ccid_dev *dev, unsigned index);
unsigned ccid_slot_get_index(const ccid_slot *slot);
/* Whether the slot's card is working on a command (a power-on or an
 * APDU the device handed to the backend and that has not completed):
 * lets a host show, or a test wait for, an operation in flight. */
bool ccid_slot_is_busy(const ccid_slot *slot);

/* Binds a card backend to a slot.  @ops == NULL leaves the slot empty.
 * @present tells whether a card is inserted right now.  A previous
 * backend is cancelled and detached first. */
void ccid_slot_set_card(ccid_slot *slot, const struct ccid_card_ops *ops,
			void *card, bool present);

/* ------------------------------------------------------------------------
 * Reverse API for card backends
 * ------------------------------------------------------------------------ */
void ccid_slot_card_inserted(ccid_slot *slot);
/* Removal cancels an op in flight; the guest gets an error reply for it. */
void ccid_slot_card_removed(ccid_slot *slot);
/* Also queues RDR_to_PC_HardwareError on the interrupt endpoint. */
void ccid_slot_hardware_error(ccid_slot *slot);
void ccid_slot_power_on_done(ccid_slot *slot, enum ccid_card_status st,
			     const uint8_t *atr, size_t atr_len);
void ccid_slot_apdu_done(ccid_slot *slot, enum ccid_card_status st,
			 const uint8_t *resp, size_t resp_len);

/* An interposer between the slot and its backend, such as the agent's
 * PIN-retry guard (ccid-emu/cards/ccid_card_pin_guard.h): it is bound as
 * the slot's card and forwards to the real backend, and while a hook is
 * set ccid_slot_apdu_done() hands every answer for the guest's pending
 * command to @fn instead of the guest (stray completions are still
 * dropped first).  @fn may send more APDUs of its own to the backend and
 * ends the guest's command with ccid_slot_apdu_complete(), which is
 * ccid_slot_apdu_done() without the hook.  ccid_slot_set_card() clears
 * the hook; NULL @fn removes it. */
typedef void (*ccid_slot_apdu_hook_fn)(void *user, enum ccid_card_status st,
				       const uint8_t *resp, size_t resp_len);
void ccid_slot_set_apdu_hook(ccid_slot *slot, ccid_slot_apdu_hook_fn fn,
			     void *user);
void ccid_slot_apdu_complete(ccid_slot *slot, enum ccid_card_status st,
			     const uint8_t *resp, size_t resp_len);

/* ------------------------------------------------------------------------
 * USB side, called by the transport
 * ------------------------------------------------------------------------ */

/* Descriptor blobs generated from the config (valid for the device's
 * lifetime).  Useful to transports that must announce interface/endpoint
 * info up front. */
const uint8_t *ccid_dev_device_descriptor(const ccid_dev *dev, size_t *len);
const uint8_t *ccid_dev_config_descriptor(const ccid_dev *dev, size_t *len);

#define CCID_CONTROL_STALL (-1)
/* One control transfer.  @setup is the raw 8-byte SETUP packet.  For
 * host-to-device requests @data holds the wLength bytes of the data stage
 * (may be NULL when wLength is 0); for device-to-host requests the reply is
 * written to @data, at most min(wLength, @data_cap) bytes.  Returns the
 * number of bytes of the data stage, or CCID_CONTROL_STALL. */
int ccid_dev_control(ccid_dev *dev, const uint8_t setup[8], uint8_t *data,
		     size_t data_cap);

/* One bulk-OUT transfer of @len bytes.  Dropped unless the device is
 * configured (SET_CONFIGURATION 1): before that only endpoint 0 exists.  A message may span several
 * transfers; a transfer whose length is not a multiple of the bulk
 * wMaxPacketSize ends the message (USB short packet).  Never fails: bad
 * input is answered on bulk-IN as the spec requires, or dropped with a
 * debug log when no answer is possible. */
void ccid_dev_bulk_out(ccid_dev *dev, const uint8_t *data, size_t len);

#define CCID_PULL_NONE (-1)
/* Fills one bulk-IN transfer of at most @cap bytes.  Never mixes two
 * messages in one transfer.  Returns the number of bytes written (0 for the
 * zero-length packet that ends a message whose length is a multiple of the
 * packet size and which was not already ended by a short transfer), or
 * CCID_PULL_NONE if nothing is queued. */
int ccid_dev_bulk_in_pull(ccid_dev *dev, uint8_t *buf, size_t cap);
/* Whether ccid_dev_bulk_in_pull() would return something now (a message
 * or the zero-length packet that ends one), without pulling it. */
bool ccid_dev_bulk_in_ready(const ccid_dev *dev);
/* Whether a slot is still working on a command: its reply (and any time
 * extension before it) will be queued later, not at once.  A transport
 * that delivers replies differently when they come later asks this right
 * after ccid_dev_bulk_out(). */
bool ccid_dev_reply_pending(const ccid_dev *dev);
/* Fills one interrupt-IN transfer: a NotifySlotChange or HardwareError
 * message, or CCID_PULL_NONE.  @cap should be at least CCID_INTR_MAX_PACKET
 * (the endpoint's wMaxPacketSize); a smaller buffer gets the message cut
 * short.  Both pulls return CCID_PULL_NONE while the device is not
 * configured or the endpoint is halted. */
int ccid_dev_intr_in_pull(ccid_dev *dev, uint8_t *buf, size_t cap);

/* The deadline announced through timer_update has passed. */
void ccid_dev_timer_expired(ccid_dev *dev);

/* USB bus reset: pending bulk data is dropped, ops in flight cancelled,
 * cards powered off, configuration reset to 0.  Card presence is kept. */
void ccid_dev_reset(ccid_dev *dev);

/* Whether SET_CONFIGURATION(1) is in effect. */
bool ccid_dev_is_configured(const ccid_dev *dev);

/* Value->name tables for logs; never NULL ("unknown" for unknown values). */
const char *ccid_msg_type_name(uint8_t type);
const char *ccid_error_name(uint8_t berror);

#ifdef __cplusplus
}
#endif

#endif /* CCID_EMU_CCID_EMU_H */
