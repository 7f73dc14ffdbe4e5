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
 * Hardware readers (libcacard's use_hw=): when @hw_nssdb_dir is set, every
 * removable slot of every PKCS#11 module that database loads becomes a
 * reader named after its PKCS#11 slot, and token insertion/removal becomes
 * card events.  use_hw=removable is used, not use_hw=yes: =yes also wants
 * the slot to claim CKF_HW_SLOT, which software tokens such as softhsm2 do
 * not (and softhsm2 additionally needs "slots.removable = true").
 *
 * Soft and hardware readers in one process: libcacard reads all of its
 * options in the single vcard_emul_init(), and soft= and use_hw= can be
 * given together; but it opens only one NSS database (db=).  When the two
 * databases differ, the service opens the soft database first with its own
 * NSS context (so it becomes NSS's default database, whose internal key
 * slot holds the soft certificates), then the hardware database (NSS loads
 * that database's PKCS#11 modules; its own internal token appears as an
 * extra "NSS Application Slot", which libcacard ignores because it belongs
 * to the internal module), and only then calls vcard_emul_init() with
 * db= the soft database.  Both contexts stay open for the process.
 *
 * Because the init is one-shot, a process that wants both must ask for both
 * in its first ccid_cacard_service_get() (or ccid_cacard_service_prepare()
 * before creating any card).  A later request for a part the service was
 * not set up with fails with CCID_CARD_VIRTUAL_ERROR_CONFLICT saying so.
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
	/* Soft readers: existing NSS DB directory holding their certificates,
	 * or NULL for no soft readers (then @hw_nssdb_dir is required). */
	const char *nssdb_dir;
	const char *const *soft_nicknames;     /* NULL = resolve (see nssdb) */
	/* Hardware readers: NSS DB directory whose PKCS#11 modules provide
	 * the tokens, or NULL for none. */
	const char *hw_nssdb_dir;
};

typedef struct ccid_cacard_service ccid_cacard_service;

/* Initialises libcacard on first call, or returns the existing service if
 * @cfg is compatible with it.  Never freed. */
ccid_cacard_service *ccid_cacard_service_get(const struct ccid_cacard_config *cfg,
					     GError **error);

/* Like ccid_cacard_service_get() without returning the service: lets a
 * program ask for soft and hardware readers together before its first
 * card, whichever card kind comes first. */
gboolean ccid_cacard_service_prepare(const struct ccid_cacard_config *cfg,
				     GError **error);

/* Canonical database directories (NULL when that part is not set up) and
 * the nicknames in use (NULL without soft readers). */
const char *ccid_cacard_service_nssdb_dir(const ccid_cacard_service *svc);
const char *ccid_cacard_service_hw_nssdb_dir(const ccid_cacard_service *svc);
const char *const *ccid_cacard_service_nicknames(const ccid_cacard_service *svc);

/* Borrows a free soft reader (a new reference); fails with
 * CCID_CARD_VIRTUAL_ERROR_BUSY when all are taken. */
VReader *ccid_cacard_service_acquire_reader(ccid_cacard_service *svc,
					    GError **error);
/* Returns the reader: its card is powered off (which resets applet and
 * login state) and put back if it was pulled.  Drops the reference. */
void ccid_cacard_service_release_reader(ccid_cacard_service *svc,
					VReader *reader);

/* Borrows a hardware reader (a new reference).  @token non-NULL: the
 * reader whose PKCS#11 slot holds the token with that label (or whose slot
 * has that name); NULL: the first hardware reader not in use, preferring
 * readers that hold a token.  Fails with CCID_CARD_VIRTUAL_ERROR_BUSY when
 * it is taken, CCID_CARD_VIRTUAL_ERROR_NO_CERT when there is none. */
VReader *ccid_cacard_service_acquire_hw_reader(ccid_cacard_service *svc,
					       const char *token,
					       GError **error);
/* Returns a hardware reader borrowed above; the caller has powered it off
 * already (that touches NSS, which the caller may want to do on another
 * thread).  Drops the reference. */
void ccid_cacard_service_release_hw_reader(ccid_cacard_service *svc,
					   VReader *reader);
/* Gives up a hardware reader whose thread is stuck inside libcacard/NSS:
 * it stays "in use" forever and the service never touches it again (not
 * even to drop a reference, which takes the reader's lock).  Watches on it
 * are dropped without touching it either. */
void ccid_cacard_service_abandon_reader(ccid_cacard_service *svc,
					VReader *reader);
/* Names of the hardware readers libcacard knows (g_strfreev()). */
char **ccid_cacard_service_list_hw_readers(ccid_cacard_service *svc);

typedef void (*ccid_cacard_event_fn)(void *user, gboolean card_present);

/* Calls @fn on @ctx's thread for every card insert/remove on @reader.
 * Returns a watch id (never 0). */
guint ccid_cacard_service_watch(ccid_cacard_service *svc, VReader *reader,
				GMainContext *ctx, ccid_cacard_event_fn fn,
				void *user);
void ccid_cacard_service_unwatch(ccid_cacard_service *svc, guint id);

G_END_DECLS

#endif /* CCID_EMU_CACARD_SERVICE_H */
