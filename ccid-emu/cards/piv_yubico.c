/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Yubico PIV extensions the applet implements so yubico-piv-tool
 * works: GET VERSION, GET SERIAL, GET METADATA, SET MANAGEMENT KEY, SET
 * PIN RETRIES, RESET and IMPORT KEY.
 */
#include "ccid_piv_applet_private.h"
#include "ccid_piv_crypto.h"

#include <string.h>

uint16_t piv_cmd_get_version(piv_applet *a, const struct cmd *c,
			     GByteArray *out)
{
	static const uint8_t v[] = {
		PIV_APPLET_VERSION_MAJOR, PIV_APPLET_VERSION_MINOR,
		PIV_APPLET_VERSION_PATCH
	};

	g_byte_array_append(out, v, sizeof(v));
	return SW_OK;
}

uint16_t piv_cmd_get_serial(piv_applet *a, const struct cmd *c,
			    GByteArray *out)
{
	uint8_t s[4] = {
		(uint8_t)(a->d->serial >> 24), (uint8_t)(a->d->serial >> 16),
		(uint8_t)(a->d->serial >> 8), (uint8_t)a->d->serial
	};

	g_byte_array_append(out, s, sizeof(s));
	return SW_OK;
}

static gboolean is_default_ref(const uint8_t *v, const char *def)
{
	uint8_t pad[PIV_PIN_LEN];

	(void)piv_pin_pad(def, pad);
	return memcmp(v, pad, PIV_PIN_LEN) == 0;
}

/* Yubico GET METADATA: 01 algorithm, 02 policy, 03 origin, 04 public key,
 * 05 default value, 06 retries (total, remaining). */
uint16_t piv_cmd_get_metadata(piv_applet *a, const struct cmd *c,
			      GByteArray *out)
{
	const struct piv_slot_info *s;
	struct piv_key *k;

	if (c->p1 != 0x00)
		return SW_WRONG_P1P2;
	if (c->p2 == PIV_REF_PIN || c->p2 == PIV_REF_PUK) {
		gboolean pin = c->p2 == PIV_REF_PIN;
		uint8_t tries[2] = {
			pin ? a->d->pin_max : a->d->puk_max,
			pin ? a->d->pin_left : a->d->puk_left
		};

		piv_put_tlv_byte(out, 0x01, 0xFF);
		piv_put_tlv_byte(out, 0x05, is_default_ref(pin ? a->d->pin : a->d->puk,
						       pin ? PIV_DEFAULT_PIN :
							     PIV_DEFAULT_PUK));
		piv_put_tlv(out, 0x06, tries, sizeof(tries));
		return SW_OK;
	}
	if (c->p2 == PIV_REF_MGMT) {
		static const uint8_t policy[] = { 0x00, 0x01 };

		piv_put_tlv_byte(out, 0x01, a->d->mgmt_alg);
		piv_put_tlv(out, 0x02, policy, sizeof(policy));
		piv_put_tlv_byte(out, 0x05,
			     a->d->mgmt_alg == PIV_ALG_3DES &&
			     memcmp(a->d->mgmt_key, piv_default_mgmt_key,
				    sizeof(piv_default_mgmt_key)) == 0);
		return SW_OK;
	}
	s = piv_slot_by_ref(c->p2);
	if (s == NULL)
		return SW_WRONG_P1P2;
	k = &a->d->keys[piv_slot_index(s)];
	if (k->alg == 0)
		return SW_REF_NOT_FOUND;
	{
		g_autoptr(GByteArray) pub = g_byte_array_new();
		uint8_t policy[2] = { (uint8_t)k->pin_policy, 0x01 };

		if (!piv_crypto_public_template(k->pkey, pub))
			return SW_UNKNOWN;
		piv_put_tlv_byte(out, 0x01, k->alg);
		piv_put_tlv(out, 0x02, policy, sizeof(policy));
		piv_put_tlv_byte(out, 0x03, (uint8_t)k->origin);
		piv_put_tlv(out, 0x04, pub->data, pub->len);
	}
	return SW_OK;
}

/* Yubico SET MANAGEMENT KEY: P2 FF (or FE, touch: no sensor, accepted);
 * data alg 9B len key. */
uint16_t piv_cmd_set_mgmt_key(piv_applet *a, const struct cmd *c,
			      GByteArray *out)
{
	size_t len;

	if (c->p1 != 0xFF || (c->p2 != 0xFF && c->p2 != 0xFE))
		return SW_WRONG_P1P2;
	if (!a->mgmt_ok)
		return SW_SECURITY_STATUS;
	if (c->nc < 3 || c->data[1] != PIV_REF_MGMT)
		return SW_WRONG_DATA;
	len = piv_mgmt_key_len(c->data[0]);
	if (len == 0 || c->data[2] != len || c->nc != 3 + len)
		return SW_WRONG_DATA;
	a->d->mgmt_alg = c->data[0];
	memset(a->d->mgmt_key, 0, sizeof(a->d->mgmt_key));
	memcpy(a->d->mgmt_key, c->data + 3, len);
	a->d->mgmt_len = len;
	return piv_applet_save(a) ? SW_OK : SW_MEMORY_FAILURE;
}

/* Yubico SET PIN RETRIES: P1 PIN tries, P2 PUK tries; PIN and PUK go back
 * to their defaults, as on a YubiKey. */
uint16_t piv_cmd_set_pin_retries(piv_applet *a, const struct cmd *c,
				 GByteArray *out)
{
	if (c->p1 == 0 || c->p2 == 0)
		return SW_WRONG_P1P2;
	if (!a->mgmt_ok || !a->pin_verified)
		return SW_SECURITY_STATUS;
	(void)piv_pin_pad(PIV_DEFAULT_PIN, a->d->pin);
	(void)piv_pin_pad(PIV_DEFAULT_PUK, a->d->puk);
	a->d->pin_max = a->d->pin_left = c->p1;
	a->d->puk_max = a->d->puk_left = c->p2;
	return piv_applet_save(a) ? SW_OK : SW_MEMORY_FAILURE;
}

/* Yubico RESET: only a card whose PIN and PUK are both blocked. */
uint16_t piv_cmd_reset(piv_applet *a, const struct cmd *c, GByteArray *out)
{
	if (c->p1 != 0x00 || c->p2 != 0x00)
		return SW_WRONG_P1P2;
	if (a->d->pin_left != 0 || a->d->puk_left != 0)
		return SW_CONDITIONS;
	piv_data_reset(a->d);
	piv_applet_reset(a);
	return piv_applet_save(a) ? SW_OK : SW_MEMORY_FAILURE;
}

/* Yubico IMPORT KEY: P1 algorithm, P2 slot; data: RSA 01 p, 02 q, 03 dP,
 * 04 dQ, 05 qInv (each at most half the modulus long), ECC 06 the private
 * scalar (exactly the field size); then optionally AA PIN policy and AB
 * touch policy (no sensor: accepted, moot). */
uint16_t piv_cmd_import_key(piv_applet *a, const struct cmd *c,
			    GByteArray *out)
{
	const struct piv_slot_info *s = piv_slot_by_ref(c->p2);
	gboolean rsa = c->p1 == PIV_ALG_RSA1024 || c->p1 == PIV_ALG_RSA2048;
	gboolean ec = c->p1 == PIV_ALG_ECC_P256 || c->p1 == PIV_ALG_ECC_P384;
	const uint8_t *part[6] = { NULL };
	size_t part_len[6] = { 0 };
	size_t elem = c->p1 == PIV_ALG_RSA1024 ? 64 :
		      c->p1 == PIV_ALG_RSA2048 ? 128 :
		      c->p1 == PIV_ALG_ECC_P256 ? 32 : 48;
	uint8_t policy = PIV_PIN_POLICY_DEFAULT;
	const uint8_t *p, *end;
	struct piv_key *k;
	EVP_PKEY *pkey;
	struct tlv t;

	if ((!rsa && !ec) || s == NULL)
		return SW_WRONG_P1P2;
	if (!a->mgmt_ok)
		return SW_SECURITY_STATUS;
	if (c->data == NULL)
		return SW_WRONG_DATA;
	p = c->data;
	end = c->data + c->nc;
	while (p < end) {
		if (!piv_tlv_next(&p, end, &t))
			return SW_WRONG_DATA;
		if (t.tag >= 0x01 && t.tag <= 0x06) {
			if (part[t.tag - 1] != NULL || t.len == 0 ||
			    t.len > elem)
				return SW_WRONG_DATA;
			part[t.tag - 1] = t.v;
			part_len[t.tag - 1] = t.len;
		} else if (t.tag == 0xAA && t.len == 1 &&
			   t.v[0] <= PIV_PIN_POLICY_ALWAYS) {
			policy = t.v[0];
		} else if (!(t.tag == 0xAB && t.len == 1)) {
			return SW_WRONG_DATA;
		}
	}
	if (rsa) {
		for (unsigned i = 0; i < 5; i++)
			if (part[i] == NULL)
				return SW_WRONG_DATA;
		if (part[5] != NULL)
			return SW_WRONG_DATA;
		pkey = piv_crypto_import_rsa(part, part_len,
					     (int)elem * 16);
	} else {
		for (unsigned i = 0; i < 5; i++)
			if (part[i] != NULL)
				return SW_WRONG_DATA;
		if (part[5] == NULL || part_len[5] != elem)
			return SW_WRONG_DATA;
		pkey = piv_crypto_import_ec(c->p1, part[5], part_len[5]);
	}
	if (pkey == NULL)
		return SW_WRONG_DATA;
	k = &a->d->keys[piv_slot_index(s)];
	EVP_PKEY_free(k->pkey);
	k->pkey = pkey;
	k->alg = c->p1;
	k->origin = PIV_ORIGIN_IMPORTED;
	k->pin_policy = policy != PIV_PIN_POLICY_DEFAULT ?
			(enum piv_pin_policy)policy : s->default_policy;
	return piv_applet_save(a) ? SW_OK : SW_MEMORY_FAILURE;
}
