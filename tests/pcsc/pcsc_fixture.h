/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The real peers of the pcsc tests: a private pcscd (private-pcscd.sh) with
 * the vpcd driver, and the vicc test card (vicc_card.py) behind its first
 * reader.  Plus a "host application" that talks PC/SC directly, as any
 * program on the host would.
 *
 * One pcscd per test program: libpcsclite reads PCSCLITE_CSOCK_NAME once
 * per process, so pcsc_fixture_start() must run before anything in the
 * process touches PC/SC.
 */
#ifndef CCID_PCSC_FIXTURE_H
#define CCID_PCSC_FIXTURE_H

#include <ccid_pcsc_client.h>
#include <glib.h>
#include <winscard.h>

/* The vicc card's files and commands (see vicc_card.py). */
#define VICC_READER        "Virtual PCD 00 00"
#define VICC_EMPTY_READER  "Virtual PCD 00 01"
#define VICC_SMALL_LEN     64u
#define VICC_BIG_FID       0x2000u
#define VICC_BIG_LEN       65533u   /* vpcd frames are at most 65535 bytes */

extern const guint16 vicc_small_fids[4];
guint8 vicc_small_byte(guint16 fid, guint i);
guint8 vicc_pattern_byte(guint i);

/* Starts pcscd and the card: 0 when ready, 77 when the peers are not
 * installed (the caller skips), 1 on failure; reasons go to stderr. */
int pcsc_fixture_start(void);
void pcsc_fixture_stop(void);
/* Stops / starts pcscd again (same directory, socket and vpcd port). */
gboolean pcsc_pcscd_stop(void);
gboolean pcsc_pcscd_start(void);
const char *pcsc_fixture_dir(void);

/* Kills the card (SIGKILL: like pulling it out mid-APDU), or starts it
 * again; waiting for pcscd to see it is up to the caller
 * (pcsc_host_wait_card). */
void pcsc_vicc_kill(void);
gboolean pcsc_vicc_start(void);
gboolean pcsc_vicc_running(void);

/* --- the host application --------------------------------------------------- */

typedef struct pcsc_host {
	SCARDCONTEXT ctx;
	SCARDHANDLE card;
	DWORD protocol;
	gboolean connected;
} pcsc_host;

void pcsc_host_init(pcsc_host *h);       /* asserts success */
void pcsc_host_clear(pcsc_host *h);
LONG pcsc_host_connect(pcsc_host *h, DWORD share);
void pcsc_host_disconnect(pcsc_host *h, DWORD disposition);
/* SCardTransmit into @resp (cleared first). */
LONG pcsc_host_xfr(pcsc_host *h, const guint8 *apdu, gsize len,
		   GByteArray *resp);
/* The card's ATR as pcscd reports it. */
GByteArray *pcsc_host_atr(pcsc_host *h);
/* Waits up to @ms for the card in VICC_READER to be present (or absent). */
gboolean pcsc_host_wait_card(pcsc_host *h, gboolean present, guint ms);
/* The vicc COUNT command: APDUs the card executed before this one. */
guint32 pcsc_host_count(pcsc_host *h);

/* APDU builders. */
gsize apdu_select(guint8 *buf, guint16 fid);
gsize apdu_read(guint8 *buf, guint16 offset, guint32 ne);
gsize apdu_delay(guint8 *buf, guint32 ms);

#endif /* CCID_PCSC_FIXTURE_H */
