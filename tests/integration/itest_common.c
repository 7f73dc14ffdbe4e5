/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "itest_common.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

void itest_init(struct itest *it, unsigned n_slots)
{
	struct ccid_config cfg;
	g_autoptr(GError) error = NULL;

	memset(it, 0, sizeof(*it));
	ccid_config_init(&cfg);
	cfg.n_slots = (uint8_t)n_slots;
	cfg.max_busy_slots = (uint8_t)n_slots;
	it->t = agent_transport_new(NULL, FALSE);
	it->dev = agent_transport_create_dev(it->t, &cfg, &error);
	ck_assert_msg(it->dev != NULL, "device: %s",
		      error ? error->message : "?");
	it->h = agent_host_new(it->t);
	agent_host_set_timeout_ms(it->h, 5000);
}

guint8 itest_configure(struct itest *it)
{
	g_autoptr(GByteArray) m = g_byte_array_new();
	g_autoptr(GError) error = NULL;

	ck_assert_msg(agent_host_set_configuration(it->h, 1, &error),
		      "SET_CONFIGURATION: %s", error ? error->message : "?");
	ck_assert(ccid_dev_is_configured(it->dev));
	ck_assert_msg(agent_host_read_intr(it->h, m, &error),
		      "NotifySlotChange: %s", error ? error->message : "?");
	ck_assert_uint_ge(m->len, 2);
	ck_assert_uint_eq(m->data[0], 0x50);
	return m->data[1];
}

void itest_clear(struct itest *it)
{
	agent_host_free(it->h);
	agent_transport_free(it->t);
	memset(it, 0, sizeof(*it));
}

GByteArray *itest_xfr(struct itest *it, guint8 slot, const guint8 *apdu,
		      gsize len, guint *n_time_ext)
{
	GByteArray *r = g_byte_array_new();
	g_autoptr(GError) error = NULL;

	ck_assert_msg(agent_host_xfr_apdu(it->h, slot, apdu, len, r,
					  n_time_ext, &error),
		      "XfrBlock: %s", error ? error->message : "?");
	return r;
}

void itest_assert_resp(const GByteArray *r, const guint8 *data, gsize len,
		       guint16 sw)
{
	ck_assert_uint_eq(r->len, len + 2);
	if (len > 0)
		ck_assert_mem_eq(r->data, data, len);
	ck_assert_uint_eq(r->data[len], sw >> 8);
	ck_assert_uint_eq(r->data[len + 1], sw & 0xFF);
}

int itest_run(const char *const *argv, char **out, char **err)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *o = NULL;
	g_autofree char *e = NULL;
	int status = -1;

	/* Output is always captured, so tools' chatter stays out of the
	 * test log unless the caller wants it. */
	ck_assert_msg(g_spawn_sync(NULL, (char **)argv, NULL,
				   G_SPAWN_SEARCH_PATH, NULL, NULL, &o, &e,
				   &status, &error),
		      "spawn %s: %s", argv[0], error ? error->message : "?");
	ck_assert_msg(WIFEXITED(status), "%s did not exit normally", argv[0]);
	if (WEXITSTATUS(status) != 0 && out == NULL)
		fprintf(stderr, "%s failed:\n%s%s", argv[0], o, e);
	if (out != NULL)
		*out = g_steal_pointer(&o);
	if (err != NULL)
		*err = g_steal_pointer(&e);
	return WEXITSTATUS(status);
}

void itest_pkcs1_sha256_block(const char *msg, guint8 *block, gsize k)
{
	/* DigestInfo header of SHA-256 (RFC 8017 §9.2, note 1). */
	static const guint8 sha256_prefix[19] = {
		0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
		0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20
	};
	g_autoptr(GChecksum) cs = g_checksum_new(G_CHECKSUM_SHA256);
	guint8 digest[32];
	gsize dlen = sizeof(digest);
	gsize t = sizeof(sha256_prefix) + sizeof(digest);

	g_checksum_update(cs, (const guchar *)msg, -1);
	g_checksum_get_digest(cs, digest, &dlen);
	block[0] = 0x00;
	block[1] = 0x01;
	memset(block + 2, 0xFF, k - t - 3);
	block[k - t - 1] = 0x00;
	memcpy(block + k - t, sha256_prefix, sizeof(sha256_prefix));
	memcpy(block + k - sizeof(digest), digest, sizeof(digest));
}
