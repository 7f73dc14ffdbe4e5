/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Minimal CAC client (see agent_cac.h).  Buffer layout per GSC-IS 2.1
 * §8.4: a PKI applet has a TAG buffer (2-byte LE length, then tag + length
 * pairs; a length byte of FF is followed by a 2-byte LE length) and a VALUE
 * buffer (2-byte LE length, then the values in the same order).  Tag 0x71
 * is CertInfo (bit 0: compressed), tag 0x70 the certificate.
 */
#include "agent_cac.h"

#include <ccid_le.h>
#include <string.h>

#define NO_NSPR_10_SUPPORT
#include <cert.h>

G_DEFINE_QUARK(agent-cac-error-quark, agent_cac_error)

#define CAC_INS_READ_BUFFER   0x52u
#define CAC_INS_SIGN_DECRYPT  0x42u
#define CAC_FILE_TAG          0x01u
#define CAC_FILE_VALUE        0x02u
#define CAC_TAG_CERTIFICATE   0x70u
#define CAC_TAG_CERTINFO      0x71u
#define ISO_INS_GET_RESPONSE  0xC0u
#define SW_OK                 0x9000u

const guint8 agent_cac_ccc_aid[AGENT_CAC_AID_LEN] = {
	0xA0, 0x00, 0x00, 0x01, 0x16, 0xDB, 0x00
};

void agent_cac_pki_aid(guint index, guint8 aid[AGENT_CAC_AID_LEN])
{
	static const guint8 base[AGENT_CAC_AID_LEN] = {
		0xA0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00
	};

	memcpy(aid, base, sizeof(base));
	aid[6] = (guint8)index;
}

static guint16 sw_of(const GByteArray *r)
{
	return (guint16)(r->data[r->len - 2] << 8 | r->data[r->len - 1]);
}

gboolean agent_cac_transmit(struct agent_cac *cac, const guint8 *apdu,
			    gsize len, GByteArray *data, guint16 *sw,
			    GError **error)
{
	g_autoptr(GByteArray) r = g_byte_array_new();
	guint rounds = 0;

	g_byte_array_set_size(data, 0);
	cac->n_apdus++;
	if (!cac->xfer(cac->user, apdu, len, r, error))
		return FALSE;
	for (;;) {
		guint16 s;

		if (r->len < 2) {
			g_set_error(error, AGENT_CAC_ERROR,
				    AGENT_CAC_ERROR_FORMAT,
				    "response of %u bytes has no status word",
				    r->len);
			return FALSE;
		}
		s = sw_of(r);
		g_byte_array_append(data, r->data, r->len - 2);
		if ((s >> 8) != 0x61) {
			*sw = s;
			return TRUE;
		}
		/* 61 xx: xx more bytes (00 = 256 or more) wait for GET
		 * RESPONSE.  Bound the loop: 64 KiB in 256-byte steps. */
		if (++rounds > 300) {
			g_set_error(error, AGENT_CAC_ERROR,
				    AGENT_CAC_ERROR_FORMAT,
				    "card keeps answering 61 xx");
			return FALSE;
		}
		{
			const guint8 get[5] = { 0x00, ISO_INS_GET_RESPONSE,
						0x00, 0x00, (guint8)s };

			cac->n_apdus++;
			if (!cac->xfer(cac->user, get, sizeof(get), r, error))
				return FALSE;
		}
	}
}

static gboolean expect_ok(guint16 sw, const char *what, GError **error)
{
	if (sw == SW_OK)
		return TRUE;
	g_set_error(error, AGENT_CAC_ERROR, AGENT_CAC_ERROR_SW,
		    "%s answered SW %04X, expected 9000", what, sw);
	return FALSE;
}

gboolean agent_cac_select(struct agent_cac *cac, const guint8 *aid,
			  gsize aid_len, GError **error)
{
	g_autoptr(GByteArray) apdu = g_byte_array_new();
	g_autoptr(GByteArray) data = g_byte_array_new();
	const guint8 hdr[5] = { 0x00, 0xA4, 0x04, 0x00, (guint8)aid_len };
	const guint8 le = 0x00;
	g_autofree char *hex = NULL;
	guint16 sw = 0;

	g_return_val_if_fail(aid_len > 0 && aid_len <= 16, FALSE);
	g_byte_array_append(apdu, hdr, sizeof(hdr));
	g_byte_array_append(apdu, aid, (guint)aid_len);
	g_byte_array_append(apdu, &le, 1);
	if (!agent_cac_transmit(cac, apdu->data, apdu->len, data, &sw, error))
		return FALSE;
	hex = g_malloc0(aid_len * 2 + 1);
	for (gsize i = 0; i < aid_len; i++)
		g_snprintf(hex + 2 * i, 3, "%02X", aid[i]);
	if (sw != SW_OK) {
		g_set_error(error, AGENT_CAC_ERROR, AGENT_CAC_ERROR_SW,
			    "SELECT %s answered SW %04X", hex, sw);
		return FALSE;
	}
	return TRUE;
}

/* READ BUFFER of @n (1..255) bytes at @offset of buffer @type. */
static gboolean read_buffer(struct agent_cac *cac, guint8 type, guint16 offset,
			    guint8 n, GByteArray *out, GError **error)
{
	const guint8 apdu[8] = {
		0x80, CAC_INS_READ_BUFFER, (guint8)(offset >> 8),
		(guint8)offset, 0x02, type, n, 0x00
	};
	g_autoptr(GByteArray) data = g_byte_array_new();
	guint16 sw = 0;

	if (!agent_cac_transmit(cac, apdu, sizeof(apdu), data, &sw, error))
		return FALSE;
	if (!expect_ok(sw, "READ BUFFER", error))
		return FALSE;
	if (data->len != n) {
		g_set_error(error, AGENT_CAC_ERROR, AGENT_CAC_ERROR_FORMAT,
			    "READ BUFFER of %u bytes at %u returned %u",
			    n, offset, data->len);
		return FALSE;
	}
	g_byte_array_append(out, data->data, data->len);
	return TRUE;
}

/* Reads a whole TAG or VALUE buffer (without its 2-byte length). */
static GByteArray *read_whole_buffer(struct agent_cac *cac, guint8 type,
				     GError **error)
{
	g_autoptr(GByteArray) buf = g_byte_array_new();
	g_autoptr(GByteArray) lenb = g_byte_array_new();
	guint16 total;

	if (!read_buffer(cac, type, 0, 2, lenb, error))
		return NULL;
	total = ccid_le16_load(lenb->data);
	while (buf->len < total) {
		guint8 n = (guint8)MIN(255u, total - buf->len);

		if (!read_buffer(cac, type, (guint16)(2 + buf->len), n, buf,
				 error))
			return NULL;
	}
	return g_steal_pointer(&buf);
}

GBytes *agent_cac_read_cert(struct agent_cac *cac, guint index, GError **error)
{
	guint8 aid[AGENT_CAC_AID_LEN];
	g_autoptr(GByteArray) tags = NULL;
	g_autoptr(GByteArray) values = NULL;
	gsize voff = 0;

	agent_cac_pki_aid(index, aid);
	if (!agent_cac_select(cac, aid, sizeof(aid), error))
		return NULL;
	tags = read_whole_buffer(cac, CAC_FILE_TAG, error);
	if (tags == NULL)
		return NULL;
	values = read_whole_buffer(cac, CAC_FILE_VALUE, error);
	if (values == NULL)
		return NULL;

	for (gsize t = 0; t < tags->len;) {
		guint8 tag = tags->data[t];
		gsize len;

		if (t + 2 > tags->len)
			break;
		len = tags->data[t + 1];
		t += 2;
		if (len == 0xFF) {
			if (t + 2 > tags->len)
				break;
			len = ccid_le16_load(tags->data + t);
			t += 2;
		}
		if (voff + len > values->len) {
			g_set_error(error, AGENT_CAC_ERROR,
				    AGENT_CAC_ERROR_FORMAT,
				    "PKI applet %u: tag %02X claims %zu bytes "
				    "past the %u-byte value buffer", index,
				    tag, len, values->len);
			return NULL;
		}
		if (tag == CAC_TAG_CERTINFO && len >= 1 &&
		    (values->data[voff] & 0x01)) {
			g_set_error(error, AGENT_CAC_ERROR,
				    AGENT_CAC_ERROR_FORMAT,
				    "PKI applet %u holds a compressed "
				    "certificate, which is not supported",
				    index);
			return NULL;
		}
		if (tag == CAC_TAG_CERTIFICATE)
			return g_bytes_new(values->data + voff, len);
		voff += len;
	}
	g_set_error(error, AGENT_CAC_ERROR, AGENT_CAC_ERROR_FORMAT,
		    "PKI applet %u has no certificate tag in its buffers",
		    index);
	return NULL;
}

GBytes *agent_cac_sign(struct agent_cac *cac, guint index, const guint8 *block,
		       gsize len, GError **error)
{
	guint8 aid[AGENT_CAC_AID_LEN];
	g_autoptr(GByteArray) apdu = g_byte_array_new();
	g_autoptr(GByteArray) data = g_byte_array_new();
	const guint8 hdr[7] = { 0x80, CAC_INS_SIGN_DECRYPT, 0x00, 0x00,
				0x00, (guint8)(len >> 8), (guint8)len };
	const guint8 le[2] = { 0x00, 0x00 };   /* extended Le: up to 65536 */
	guint16 sw = 0;

	g_return_val_if_fail(len > 0 && len <= 65535, NULL);
	agent_cac_pki_aid(index, aid);
	if (!agent_cac_select(cac, aid, sizeof(aid), error))
		return NULL;
	g_byte_array_append(apdu, hdr, sizeof(hdr));
	g_byte_array_append(apdu, block, (guint)len);
	g_byte_array_append(apdu, le, sizeof(le));
	if (!agent_cac_transmit(cac, apdu->data, apdu->len, data, &sw, error))
		return NULL;
	if (!expect_ok(sw, "SIGN/DECRYPT", error))
		return NULL;
	if (data->len != len) {
		g_set_error(error, AGENT_CAC_ERROR, AGENT_CAC_ERROR_FORMAT,
			    "SIGN/DECRYPT returned %u bytes for a %zu-byte "
			    "block", data->len, len);
		return NULL;
	}
	return g_bytes_new(data->data, data->len);
}

char *agent_cert_subject(GBytes *der, GError **error)
{
	gsize len = 0;
	const guint8 *p = g_bytes_get_data(der, &len);
	SECItem item = { siDERCertBuffer, (unsigned char *)p, (unsigned)len };
	CERTCertificate *cert;
	char *subject;
	CERTCertDBHandle *db = CERT_GetDefaultCertDB();

	if (db == NULL) {
		g_set_error(error, AGENT_CAC_ERROR, AGENT_CAC_ERROR_FORMAT,
			    "NSS is not initialised, cannot decode the "
			    "certificate");
		return NULL;
	}
	/* A temporary, non-permanent cert: nothing is written anywhere. */
	cert = CERT_NewTempCertificate(db, &item, NULL, PR_FALSE, PR_TRUE);
	if (cert == NULL) {
		g_set_error(error, AGENT_CAC_ERROR, AGENT_CAC_ERROR_FORMAT,
			    "certificate of %zu bytes does not decode as X.509",
			    len);
		return NULL;
	}
	subject = g_strdup(cert->subjectName != NULL ? cert->subjectName : "");
	CERT_DestroyCertificate(cert);
	return subject;
}
