/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The libpcsclite calls that change the process's list of contexts and
 * card handles, made safe to call from several threads at once.
 *
 * Every code in a process that uses the pcsc card, the card itself, the
 * agent and the tests, must create and release contexts and disconnect
 * card handles through these, never with SCardEstablishContext,
 * SCardReleaseContext or SCardDisconnect directly (pcsc_client.c says
 * why).  All other PC/SC calls are made as usual.
 */
#ifndef CCID_EMU_PCSC_CLIENT_H
#define CCID_EMU_PCSC_CLIENT_H

#include <glib.h>
#include <winscard.h>

G_BEGIN_DECLS

/* SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, ctx). */
LONG ccid_pcsc_context_establish(SCARDCONTEXT *ctx);
/* SCardReleaseContext(ctx). */
LONG ccid_pcsc_context_release(SCARDCONTEXT ctx);
/* SCardDisconnect(card, disposition).  Any disposition but
 * SCARD_LEAVE_CARD may wait inside pcscd for another application's
 * transaction, and all other callers wait with it. */
LONG ccid_pcsc_card_disconnect(SCARDHANDLE card, DWORD disposition);

G_END_DECLS

#endif /* CCID_EMU_PCSC_CLIENT_H */
