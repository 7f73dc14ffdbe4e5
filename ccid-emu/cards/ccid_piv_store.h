/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The on-disk store of a virtual PIV card: one directory per card (mode
 * 0700) holding one key file, card.ini (mode 0600), in GLib's key-file
 * format:
 *
 *   [card]            format=1, serial=N
 *   [pin] [puk]       value=HEX (8 bytes, 0xFF-padded), retries=N,
 *                     remaining=N
 *   [management-key]  algorithm=3DES|AES128|AES192|AES256, key=HEX
 *   [objects]         TAG=BASE64 (TAG: hex, e.g. 5FC102 for the CHUID)
 *   [slot 9a] ...     algorithm=RSA2048|..., origin=generated|imported,
 *                     pin-policy=never|once|always,
 *                     private-key=BASE64 (PKCS#8 DER)
 *
 * It is a test and development card: PIN, PUK and keys are in this file in
 * the clear, protected only by the file mode.
 *
 * Every save replaces the file atomically: write a temporary file, fsync,
 * rename over card.ini, fsync the directory.  A process holds the store
 * with an exclusive lock on DIR/lock for the card's lifetime, so two agents
 * never write one card.
 */
#ifndef CCID_EMU_PIV_STORE_H
#define CCID_EMU_PIV_STORE_H

#include "ccid_piv_data.h"

#include <glib.h>

G_BEGIN_DECLS

#define CCID_PIV_STORE_ERROR (ccid_piv_store_error_quark())
GQuark ccid_piv_store_error_quark(void);

enum ccid_piv_store_error {
	CCID_PIV_STORE_ERROR_IO,        /* cannot create, read or write */
	CCID_PIV_STORE_ERROR_CORRUPT,   /* card.ini is not a valid card */
	CCID_PIV_STORE_ERROR_LOCKED,    /* another process uses the card */
	CCID_PIV_STORE_ERROR_MISSING,   /* no card in that directory */
};

#define CCID_PIV_STORE_FILE "card.ini"

/* $XDG_DATA_HOME/ccid-emu/piv/default (newly allocated). */
char *ccid_piv_store_default_dir(void);

/* Creates @dir (and parents) and a default card in it unless card.ini
 * exists.  *@created tells which. */
gboolean ccid_piv_store_ensure(const char *dir, gboolean *created,
			       GError **error);
/* Reads the card in @dir; errors name the file and the bad field. */
struct piv_data *ccid_piv_store_load(const char *dir, GError **error);
/* Replaces the card in @dir atomically (see above). */
gboolean ccid_piv_store_save(const char *dir, const struct piv_data *d,
			     GError **error);
/* Takes the exclusive lock of @dir: a file descriptor to close to release
 * it, or -1 with @error set. */
int ccid_piv_store_lock(const char *dir, GError **error);

G_END_DECLS

#endif /* CCID_EMU_PIV_STORE_H */
