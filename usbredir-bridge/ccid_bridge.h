/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * usbredir bridge: serves one ccid-emu device model to one usbredir peer
 * (QEMU's usb-redir device) at a time, speaking the usb-host role of the
 * usbredir protocol.  Runs on the thread-default GMainContext of the thread
 * that created it; all I/O is non-blocking.
 *
 * The device model outlives connections: when the peer goes away the USB
 * state is reset but cards, their presence and their backends stay, and
 * the next peer gets the device again.
 */
#ifndef CCID_EMU_CCID_BRIDGE_H
#define CCID_EMU_CCID_BRIDGE_H

#include <glib.h>

#include "ccid_sock_access.h"

#include <ccid-emu/ccid_emu.h>

G_BEGIN_DECLS

#define CCID_BRIDGE_ERROR (ccid_bridge_error_quark())
GQuark ccid_bridge_error_quark(void);

enum ccid_bridge_error_code {
	CCID_BRIDGE_ERROR_CONFIG,     /* bad device configuration */
	CCID_BRIDGE_ERROR_BUSY,       /* a peer is already attached */
	CCID_BRIDGE_ERROR_ADDRESS,    /* malformed or unusable socket address */
	CCID_BRIDGE_ERROR_SOCKET,     /* socket call failed */
};

enum ccid_bridge_event {
	CCID_BRIDGE_EVENT_ATTACHED,     /* a peer connected */
	CCID_BRIDGE_EVENT_DEVICE_SHOWN, /* device_connect sent after hello */
	CCID_BRIDGE_EVENT_DETACHED,     /* the peer went away or was dropped */
};

typedef struct ccid_bridge ccid_bridge;

/* The largest dwMaxCCIDMessageLength with which every command a driver
 * may send fits usbredir's 16-bit interrupt packet length: a driver
 * sends no bulk-OUT transfer longer than dwMaxCCIDMessageLength and
 * chains longer extended APDUs with wLevelParameter (libccid, GnuPG's
 * driver), so even a 64 KiB APDU travels in transfers of at most this. */
#define CCID_BRIDGE_INTR_OUT_MAX_MSG 65535u

/* How the bulk endpoints' data travels over usbredir (docs/serve.md). */
enum ccid_bridge_data_path {
	/* The default.  Bulk-IN announced as interrupt when the peer is
	 * QEMU's usb-redir and the device's limits fit it; bulk for any
	 * other peer. */
	CCID_BRIDGE_PATH_AUTO,
	/* Announce the bulk endpoints as bulk: every transfer waits for us. */
	CCID_BRIDGE_PATH_BULK,
	/* Announce bulk-IN as interrupt whatever the peer says it is (tests);
	 * still falls back to bulk if the peer rejects the device. */
	CCID_BRIDGE_PATH_INTERRUPT,
	/* Bulk-OUT as interrupt too: one frame less per command behind UHCI
	 * and EHCI.  QEMU completes the command before our answer is in, so
	 * the guest's read can meet a stop and restart of the endpoint while
	 * the answer is on its way (a garbled or repeated frame; docs/serve.md):
	 * not the default.  With a dwMaxCCIDMessageLength over
	 * CCID_BRIDGE_INTR_OUT_MAX_MSG, behind xHCI QEMU would also lose a
	 * command over 65535 bytes (its interrupt-OUT length is 16 bits);
	 * ccid_bridge_config_init() avoids that.  The first interrupt-OUT
	 * packet larger than wMaxPacketSize (xHCI) puts bulk-OUT back on the
	 * bulk path. */
	CCID_BRIDGE_PATH_INTERRUPT_BOTH,
};

struct ccid_bridge_callbacks {
	/* Connection state changes; @peer names the peer (may be NULL). */
	void (*event)(void *user, enum ccid_bridge_event ev, const char *peer);
	/* Log lines from the bridge, usbredirparser and the device model;
	 * may be NULL.  Levels are enum ccid_log_level. */
	void (*log)(void *user, enum ccid_log_level level, const char *msg);
};

/* ccid_config_init() for a reader served with interrupt-both: the same,
 * with dwMaxCCIDMessageLength CCID_BRIDGE_INTR_OUT_MAX_MSG, so no command
 * transfer can exceed the interrupt length. */
void ccid_bridge_config_init(struct ccid_config *cfg);

/* Creates the device model from @cfg with a GLib transport.  @cbs may be
 * NULL; it is copied. */
ccid_bridge *ccid_bridge_new(const struct ccid_config *cfg,
			     const struct ccid_bridge_callbacks *cbs, void *user,
			     GError **error);
/* Accepts NULL.  Detaches a peer first (without waiting for a flush). */
void ccid_bridge_free(ccid_bridge *bridge);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_bridge, ccid_bridge_free)

ccid_dev *ccid_bridge_get_dev(ccid_bridge *bridge);

/* Chooses the data path for the next peer's session (the current one
 * keeps its own). */
void ccid_bridge_set_data_path(ccid_bridge *bridge,
			       enum ccid_bridge_data_path path);
/* Parses "auto", "bulk", "interrupt" or "interrupt-both". */
gboolean ccid_bridge_data_path_parse(const char *text,
				     enum ccid_bridge_data_path *path,
				     GError **error);

/* Starts a usbredir session on the connected stream socket @fd; takes
 * ownership of @fd in every case.  Fails with CCID_BRIDGE_ERROR_BUSY if a
 * peer is already attached. */
gboolean ccid_bridge_attach_fd(ccid_bridge *bridge, int fd, const char *peer,
			       GError **error);
gboolean ccid_bridge_is_attached(const ccid_bridge *bridge);

/* Tells the peer the device is gone (usb_redir_device_disconnect), waits up
 * to @flush_timeout_ms for that to be written, then closes the socket. */
void ccid_bridge_detach(ccid_bridge *bridge, unsigned flush_timeout_ms);

/* Counters for tests and the CLI. */
struct ccid_bridge_stats {
	guint64 sessions;        /* peers attached so far */
	guint64 bulk_out;        /* bulk-OUT packets handled */
	guint64 bulk_in;         /* bulk-IN packets completed */
	guint64 intr_in;         /* interrupt packets sent */
	guint64 control;         /* control packets answered */
	guint64 cancelled;       /* bulk-IN packets cancelled by the peer */
	guint64 output_queued;   /* bytes waiting for the peer to read, now */
	gboolean reading;        /* FALSE while back-pressure stops reading */
	gboolean interrupt_path; /* this session uses the interrupt data path */
	gboolean interrupt_out;  /* ... bulk-OUT included (interrupt-both) */
	guint64 intr_out;        /* interrupt-OUT pieces taken (interrupt-both) */
	guint64 data_pieces;     /* bulk-IN data pushed as interrupt pieces */
	guint64 resent;          /* messages pushed again after a stop */
	guint64 fallbacks;       /* interrupt path rejected, bulk path used */
	guint64 out_to_bulk;     /* interrupt-both: bulk-OUT back to bulk (xHCI) */
	guint64 in_to_bulk;      /* interrupt: bulk-IN back to bulk (xHCI) */
	guint64 in_flips;        /* bulk-IN back to bulk for replies that come later */
	guint64 fence_timeouts;  /* commands completed before their reply came */
};
void ccid_bridge_get_stats(const ccid_bridge *bridge,
			   struct ccid_bridge_stats *stats);

/* ---- socket addresses and endpoints (ccid_bridge_socket.c) ---------- */

enum ccid_bridge_addr_kind { CCID_ADDR_UNIX, CCID_ADDR_TCP };

struct ccid_bridge_addr {
	enum ccid_bridge_addr_kind kind;
	char *path;      /* unix */
	char *host;      /* tcp, without brackets */
	guint16 port;    /* tcp */
	/* Who may connect; set from options, not from the spec (see
	 * ccid_sock_access.h and ccid_tls.h). */
	char *tls_dir;   /* tcp: TLS with QEMU's tls-creds-x509 layout */
	struct ccid_sock_access access;  /* unix: besides our uid */
};

/* Parses "unix:PATH" or "tcp:HOST:PORT" ("tcp:[V6ADDR]:PORT"). */
gboolean ccid_bridge_addr_parse(const char *spec, struct ccid_bridge_addr *addr,
				GError **error);
void ccid_bridge_addr_clear(struct ccid_bridge_addr *addr);

typedef struct ccid_bridge_endpoint ccid_bridge_endpoint;

/* Listens on @addr and attaches each accepted peer to @bridge (a second
 * peer while one is attached is refused and closed).  A unix socket path
 * that another live process listens on is an error (CCID_BRIDGE_ERROR_BUSY);
 * a stale one (ECONNREFUSED) is replaced.  Who may connect: unix peers of
 * our uid or @addr->access's group; tcp only on loopback unless
 * @addr->tls_dir (ccid_endpoint.c). */
ccid_bridge_endpoint *ccid_bridge_listen(ccid_bridge *bridge,
					 const struct ccid_bridge_addr *addr,
					 GError **error);
/* Connects to @addr (a QEMU chardev in server mode) and reconnects every
 * @retry_ms after the peer goes away or while it is not there yet. */
ccid_bridge_endpoint *ccid_bridge_connect(ccid_bridge *bridge,
					  const struct ccid_bridge_addr *addr,
					  unsigned retry_ms, GError **error);
/* Accepts NULL.  Stops listening (removes the unix socket file it made) or
 * reconnecting; does not detach the bridge's peer. */
void ccid_bridge_endpoint_free(ccid_bridge_endpoint *ep);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_bridge_endpoint, ccid_bridge_endpoint_free)

G_END_DECLS

#endif /* CCID_EMU_CCID_BRIDGE_H */
