/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One lock for the libpcsclite calls that change its process-wide lists.
 *
 * libpcsclite keeps every context of the process, and the card handles of
 * each, in global lists.  In 1.9.9 (Debian 12) SCardDisconnect looks its
 * handle up a second time, to drop it, without libpcsclite's own lock,
 * while SCardReleaseContext and SCardEstablishContext in another thread
 * change the context list under that lock: the disconnect then reads a
 * context that was just freed.  Seen here as a SIGSEGV inside
 * SCardDisconnect in a card's worker while its monitor released its
 * context (about 1 run in 40 of the pcsc "idle" test).  Later pcsc-lite
 * versions guard the context list with a lock of its own.
 *
 * So these three calls, which never wait for another application (a
 * disconnect that leaves the card is answered at once by pcscd), run
 * under one lock.  The lock must be process-wide because libpcsclite's
 * lists are.  SCardConnect is left out: pcscd holds it back while another
 * application's transaction runs, and holding the lock that long would
 * stall every other card's threads.  What it changes is only its own
 * context's handle list, a window of a few stores.
 */
#include "ccid_pcsc_client.h"

static GMutex pcsc_lists_lock;

LONG ccid_pcsc_context_establish(SCARDCONTEXT *ctx)
{
	LONG rv;

	g_mutex_lock(&pcsc_lists_lock);
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, ctx);
	g_mutex_unlock(&pcsc_lists_lock);
	return rv;
}

LONG ccid_pcsc_context_release(SCARDCONTEXT ctx)
{
	LONG rv;

	g_mutex_lock(&pcsc_lists_lock);
	rv = SCardReleaseContext(ctx);
	g_mutex_unlock(&pcsc_lists_lock);
	return rv;
}

LONG ccid_pcsc_card_disconnect(SCARDHANDLE card, DWORD disposition)
{
	LONG rv;

	g_mutex_lock(&pcsc_lists_lock);
	rv = SCardDisconnect(card, disposition);
	g_mutex_unlock(&pcsc_lists_lock);
	return rv;
}
