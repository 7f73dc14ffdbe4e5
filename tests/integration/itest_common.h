/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared fixture of the in-process integration tests: a real ccid_dev on a
 * GLib-main-loop transport, driven through its USB API by the agent's
 * miniature host driver, with check-style helpers that assert exact bytes.
 */
#ifndef CCID_ITEST_COMMON_H
#define CCID_ITEST_COMMON_H

#include <agent_host.h>
#include <agent_transport.h>
#include <check.h>
#include <glib.h>

struct itest {
	agent_transport *t;
	agent_host *h;
	ccid_dev *dev;
};

/* Creates the device with @n_slots slots (no cards yet). */
void itest_init(struct itest *it, unsigned n_slots);
/* SET_CONFIGURATION 1 and consumes the NotifySlotChange; returns its
 * slot bits byte. */
guint8 itest_configure(struct itest *it);
void itest_clear(struct itest *it);

/* XfrBlock of @apdu; asserts success and returns the response APDU. */
GByteArray *itest_xfr(struct itest *it, guint8 slot, const guint8 *apdu,
		      gsize len, guint *n_time_ext);
/* Asserts the response equals @data (@len bytes) followed by @sw. */
void itest_assert_resp(const GByteArray *r, const guint8 *data, gsize len,
		       guint16 sw);

/* Runs @argv (NULL-terminated) and returns its exit status; stdout and
 * stderr go to *@out / *@err when non-NULL. */
int itest_run(const char *const *argv, char **out, char **err);

/* The EMSA-PKCS1-v1_5 block (RFC 8017 §9.2) for SHA-256 of the string
 * @msg, @k bytes long: what a raw-RSA CAC SIGN turns into a signature. */
void itest_pkcs1_sha256_block(const char *msg, guint8 *block, gsize k);

#endif /* CCID_ITEST_COMMON_H */
