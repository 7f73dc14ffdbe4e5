/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The process-wide owner of libcacard.
 *
 * Why a process-wide object: libcacard keeps its reader list, its event
 * queue and its NSS context in globals, and vcard_emul_init() works once
 * per process -- a second call returns VCARD_EMUL_INIT_ALREADY_INITED, even
 * when the first one failed.  So exactly one object may initialise it, and
 * every backend built on libcacard goes through this service instead of
 * calling vcard_emul_init() itself.
 *
 * What it sets up: libcacard in soft mode on one NSS database with
 * CCID_CACARD_SOFT_READERS virtual readers ("ccid-emu soft 0" ...), each
 * holding its own CAC card made from the same three certificates.  A
 * virtual card backend borrows one reader for its lifetime, so several
 * slots (or devices) in one process get independent card state.
 *
 * The first successful ccid_cacard_service_get() fixes the configuration.
 * Later calls naming the same database share the service; a different
 * database or different nicknames fail with CCID_CARD_VIRTUAL_ERROR_CONFLICT
 * naming both, because libcacard cannot be re-initialised.  The database is
 * validated with a private NSS context *before* vcard_emul_init(), so a bad
 * path does not burn the one initialisation the process gets.
 *
 * Extending it: a later NSS-hardware mode (libcacard's use_hw=, which
 * mirrors PKCS#11 tokens as readers) must be requested through this same
 * service.  libcacard reads all its options in that single init, so the
 * hardware settings become further fields of struct ccid_cacard_config,
 * the init builds one option string holding both the soft= readers and
 * use_hw=, and readers are told apart by name (soft readers carry the
 * prefix above; hardware readers are named after their PKCS#11 slot).  A
 * process that wants both must ask for both before its first card.
 *
 * Events: one thread blocks in vevent_wait_next_vevent() (the blocking
 * call; vevent_get_next_vevent() only polls) and forwards card insert and
 * remove events to the GMainContext of whoever watches that reader.  The
 * thread and the service live until the process exits, like libcacard's
 * own state.
 *
 * Threading: every function here is thread-safe.  Watch callbacks run on
 * the watch's context; ccid_cacard_service_unwatch() called on that
 * context's thread guarantees no callback afterwards.
 */
#ifndef CCID_EMU_CACARD_SERVICE_H
#define CCID_EMU_CACARD_SERVICE_H

#include <cacard/libcacard.h>
#include <glib.h>

G_BEGIN_DECLS

#define CCID_CACARD_SOFT_READERS 8u
#define CCID_CACARD_SOFT_READER_PREFIX "ccid-emu soft "

struct ccid_cacard_config {
	const char *nssdb_dir;                 /* existing NSS DB directory */
	const char *const *soft_nicknames;     /* NULL = resolve (see nssdb) */
};

typedef struct ccid_cacard_service ccid_cacard_service;

/* Initialises libcacard on first call, or returns the existing service if
 * @cfg is compatible with it.  Never freed. */
ccid_cacard_service *ccid_cacard_service_get(const struct ccid_cacard_config *cfg,
					     GError **error);

/* Canonical database directory and the nicknames in use. */
const char *ccid_cacard_service_nssdb_dir(const ccid_cacard_service *svc);
const char *const *ccid_cacard_service_nicknames(const ccid_cacard_service *svc);

/* Borrows a free soft reader (a new reference); fails with
 * CCID_CARD_VIRTUAL_ERROR_BUSY when all are taken. */
VReader *ccid_cacard_service_acquire_reader(ccid_cacard_service *svc,
					    GError **error);
/* Returns the reader: its card is powered off (which resets applet and
 * login state) and put back if it was pulled.  Drops the reference. */
void ccid_cacard_service_release_reader(ccid_cacard_service *svc,
					VReader *reader);

typedef void (*ccid_cacard_event_fn)(void *user, gboolean card_present);

/* Calls @fn on @ctx's thread for every card insert/remove on @reader.
 * Returns a watch id (never 0). */
guint ccid_cacard_service_watch(ccid_cacard_service *svc, VReader *reader,
				GMainContext *ctx, ccid_cacard_event_fn fn,
				void *user);
void ccid_cacard_service_unwatch(ccid_cacard_service *svc, guint id);

G_END_DECLS

#endif /* CCID_EMU_CACARD_SERVICE_H */
