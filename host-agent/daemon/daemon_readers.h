/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PC/SC reader discovery for the daemon: a thread watches pcscd's reader
 * list and every reader's card with SCardGetStatusChange(INFINITE) and
 * posts a snapshot to the main context whenever something changed: a
 * reader came or went, a card was inserted or removed.  pcscd not running
 * is an empty list, looked at again every DAEMON_READERS_RETRY_MS.
 *
 * The daemon turns each reader into a "Shared <reader>" entry (the pcsc
 * card kind: the card in the reader, shared with the host's applications
 * inside PC/SC transactions).
 */
#ifndef CCID_DAEMON_READERS_H
#define CCID_DAEMON_READERS_H

#include <glib.h>

G_BEGIN_DECLS

#define DAEMON_READERS_RETRY_MS 2000u

struct daemon_reader {
	char *name;          /* pcscd's reader name */
	gboolean present;    /* a card is in it */
	/* A host application holds it with SCARD_SHARE_EXCLUSIVE (pcscd's
	 * SCARD_STATE_EXCLUSIVE): nobody else can use the card until it
	 * lets go.  The daemon's own connections are shared. */
	gboolean exclusive;
	char *atr;           /* the card's ATR, upper-case hex; "" without */
	/* SCARD_ATTR_CHANNEL_ID, asked once per reader: 0x0020BBAA for a
	 * USB reader on bus BB, address AA (libccid); 0 when not known. */
	guint32 channel_id;
};

/* @readers: struct daemon_reader *, in pcscd's order; valid during the
 * call.  Runs on the main context the watcher was created on. */
typedef void (*daemon_readers_fn)(void *user, const GPtrArray *readers);

typedef struct daemon_readers daemon_readers;

daemon_readers *daemon_readers_new(daemon_readers_fn changed, void *user);
/* Accepts NULL.  Stops the thread (SCardCancel) and waits for it; no
 * callback runs after it returns. */
void daemon_readers_free(daemon_readers *r);

G_END_DECLS

#endif /* CCID_DAEMON_READERS_H */
