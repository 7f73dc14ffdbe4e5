/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * BER-TLV reading and writing for the PIV applet.  Every byte read is
 * guest input: lengths are checked against the end of the buffer before
 * anything is touched.
 */
#include "ccid_piv_applet_private.h"

/* Reads one BER-TLV at *@p (tags of up to three bytes, definite lengths of
 * up to 0xFFFF) and advances *@p; FALSE if it does not fit before @end. */
gboolean piv_tlv_next(const uint8_t **p, const uint8_t *end, struct tlv *t)
{
	const uint8_t *q = *p;
	size_t len;

	if (q >= end)
		return FALSE;
	t->tag = *q++;
	if ((t->tag & 0x1Fu) == 0x1Fu) {
		for (int i = 0; ; i++) {
			if (q >= end || i == 2)
				return FALSE;
			t->tag = t->tag << 8 | *q;
			if (!(*q++ & 0x80u))
				break;
		}
	}
	if (q >= end)
		return FALSE;
	len = *q++;
	if (len == 0x81u) {
		if (end - q < 1)
			return FALSE;
		len = *q++;
	} else if (len == 0x82u) {
		if (end - q < 2)
			return FALSE;
		len = (size_t)q[0] << 8 | q[1];
		q += 2;
	} else if (len > 0x7Fu) {
		return FALSE;
	}
	if ((size_t)(end - q) < len)
		return FALSE;
	t->v = q;
	t->len = len;
	*p = q + len;
	return TRUE;
}

/* The whole of @data is exactly one TLV with tag @tag. */
gboolean piv_tlv_single(const uint8_t *data, size_t len, uint32_t tag,
			struct tlv *t)
{
	const uint8_t *p = data;

	return data != NULL && piv_tlv_next(&p, data + len, t) && t->tag == tag &&
	       p == data + len;
}

void piv_put_tlv(GByteArray *out, uint32_t tag, const uint8_t *v, size_t len)
{
	uint8_t hdr[7];
	guint n = 0;

	if (tag > 0xFFFFu)
		hdr[n++] = (uint8_t)(tag >> 16);
	if (tag > 0xFFu)
		hdr[n++] = (uint8_t)(tag >> 8);
	hdr[n++] = (uint8_t)tag;
	if (len < 0x80u) {
		hdr[n++] = (uint8_t)len;
	} else if (len <= 0xFFu) {
		hdr[n++] = 0x81;
		hdr[n++] = (uint8_t)len;
	} else {
		hdr[n++] = 0x82;
		hdr[n++] = (uint8_t)(len >> 8);
		hdr[n++] = (uint8_t)len;
	}
	g_byte_array_append(out, hdr, n);
	if (len > 0)
		g_byte_array_append(out, v, (guint)len);
}

void piv_put_tlv_byte(GByteArray *out, uint32_t tag, uint8_t b)
{
	piv_put_tlv(out, tag, &b, 1);
}
