/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The persistent contents of a virtual PIV card (see ccid_piv_data.h).
 */
#include "ccid_piv_crypto.h"
#include "ccid_piv_data.h"

#include <string.h>

const uint8_t piv_default_mgmt_key[24] = {
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
};

/* SP 800-73-4 Part 1 Table 4b (key references) and Table 3 (their
 * certificate objects); 9C needs the PIN right before every use, 9E (card
 * authentication) never needs it. */
static const struct piv_slot_info slots[PIV_N_SLOTS] = {
	{ 0x9A, 0x5FC105, PIV_PIN_POLICY_ONCE, "9a (PIV authentication)" },
	{ 0x9C, 0x5FC10A, PIV_PIN_POLICY_ALWAYS, "9c (digital signature)" },
	{ 0x9D, 0x5FC10B, PIV_PIN_POLICY_ONCE, "9d (key management)" },
	{ 0x9E, 0x5FC101, PIV_PIN_POLICY_NEVER, "9e (card authentication)" },
	{ 0x82, 0x5FC10D, PIV_PIN_POLICY_ONCE, "82 (retired 1)" },
	{ 0x83, 0x5FC10E, PIV_PIN_POLICY_ONCE, "83 (retired 2)" },
	{ 0x84, 0x5FC10F, PIV_PIN_POLICY_ONCE, "84 (retired 3)" },
	{ 0x85, 0x5FC110, PIV_PIN_POLICY_ONCE, "85 (retired 4)" },
	{ 0x86, 0x5FC111, PIV_PIN_POLICY_ONCE, "86 (retired 5)" },
	{ 0x87, 0x5FC112, PIV_PIN_POLICY_ONCE, "87 (retired 6)" },
	{ 0x88, 0x5FC113, PIV_PIN_POLICY_ONCE, "88 (retired 7)" },
	{ 0x89, 0x5FC114, PIV_PIN_POLICY_ONCE, "89 (retired 8)" },
	{ 0x8A, 0x5FC115, PIV_PIN_POLICY_ONCE, "8a (retired 9)" },
	{ 0x8B, 0x5FC116, PIV_PIN_POLICY_ONCE, "8b (retired 10)" },
	{ 0x8C, 0x5FC117, PIV_PIN_POLICY_ONCE, "8c (retired 11)" },
	{ 0x8D, 0x5FC118, PIV_PIN_POLICY_ONCE, "8d (retired 12)" },
	{ 0x8E, 0x5FC119, PIV_PIN_POLICY_ONCE, "8e (retired 13)" },
	{ 0x8F, 0x5FC11A, PIV_PIN_POLICY_ONCE, "8f (retired 14)" },
	{ 0x90, 0x5FC11B, PIV_PIN_POLICY_ONCE, "90 (retired 15)" },
	{ 0x91, 0x5FC11C, PIV_PIN_POLICY_ONCE, "91 (retired 16)" },
	{ 0x92, 0x5FC11D, PIV_PIN_POLICY_ONCE, "92 (retired 17)" },
	{ 0x93, 0x5FC11E, PIV_PIN_POLICY_ONCE, "93 (retired 18)" },
	{ 0x94, 0x5FC11F, PIV_PIN_POLICY_ONCE, "94 (retired 19)" },
	{ 0x95, 0x5FC120, PIV_PIN_POLICY_ONCE, "95 (retired 20)" },
};

const struct piv_slot_info *piv_slot_by_ref(uint8_t ref)
{
	for (unsigned i = 0; i < PIV_N_SLOTS; i++)
		if (slots[i].ref == ref)
			return &slots[i];
	return NULL;
}

const struct piv_slot_info *piv_slot_by_index(unsigned i)
{
	return i < PIV_N_SLOTS ? &slots[i] : NULL;
}

unsigned piv_slot_index(const struct piv_slot_info *s)
{
	return (unsigned)(s - slots);
}

size_t piv_mgmt_key_len(uint8_t alg)
{
	switch (alg) {
	case PIV_ALG_3DES:
		return 24;
	case PIV_ALG_AES128:
		return 16;
	case PIV_ALG_AES192:
		return 24;
	case PIV_ALG_AES256:
		return 32;
	default:
		return 0;
	}
}

const char *piv_alg_name(uint8_t alg)
{
	switch (alg) {
	case PIV_ALG_3DES:
		return "3DES";
	case PIV_ALG_RSA1024:
		return "RSA1024";
	case PIV_ALG_RSA2048:
		return "RSA2048";
	case PIV_ALG_AES128:
		return "AES128";
	case PIV_ALG_AES192:
		return "AES192";
	case PIV_ALG_AES256:
		return "AES256";
	case PIV_ALG_ECC_P256:
		return "ECCP256";
	case PIV_ALG_ECC_P384:
		return "ECCP384";
	default:
		return NULL;
	}
}

gboolean piv_pin_pad(const char *text, uint8_t out[PIV_PIN_LEN])
{
	size_t len = strlen(text);

	if (len > PIV_PIN_LEN)
		return FALSE;
	memset(out, 0xFF, PIV_PIN_LEN);
	memcpy(out, text, len);
	return TRUE;
}

gboolean piv_pin_well_formed(const uint8_t v[PIV_PIN_LEN])
{
	size_t len = 0;

	while (len < PIV_PIN_LEN && v[len] != 0xFF)
		len++;
	for (size_t i = len; i < PIV_PIN_LEN; i++)
		if (v[i] != 0xFF)
			return FALSE;
	return len >= 6;
}

static gint tag_cmp(gconstpointer a, gconstpointer b, gpointer user)
{
	guint x = GPOINTER_TO_UINT(a), y = GPOINTER_TO_UINT(b);

	return x < y ? -1 : x > y;
}

static void clear_keys(struct piv_data *d)
{
	for (unsigned i = 0; i < PIV_N_SLOTS; i++) {
		EVP_PKEY_free(d->keys[i].pkey);
		memset(&d->keys[i], 0, sizeof(d->keys[i]));
	}
}

void piv_data_reset(struct piv_data *d)
{
	(void)piv_pin_pad(PIV_DEFAULT_PIN, d->pin);
	(void)piv_pin_pad(PIV_DEFAULT_PUK, d->puk);
	d->pin_max = d->pin_left = PIV_DEFAULT_TRIES;
	d->puk_max = d->puk_left = PIV_DEFAULT_TRIES;
	d->mgmt_alg = PIV_ALG_3DES;
	memset(d->mgmt_key, 0, sizeof(d->mgmt_key));
	memcpy(d->mgmt_key, piv_default_mgmt_key, sizeof(piv_default_mgmt_key));
	d->mgmt_len = sizeof(piv_default_mgmt_key);
	if (d->objects != NULL)
		g_tree_destroy(d->objects);
	d->objects = g_tree_new_full(tag_cmp, NULL, NULL,
				     (GDestroyNotify)g_bytes_unref);
	clear_keys(d);
}

struct piv_data *piv_data_new_default(void)
{
	struct piv_data *d = g_new0(struct piv_data, 1);
	uint8_t r[4] = { 0 };

	piv_data_reset(d);
	if (!piv_crypto_random(r, sizeof(r))) {
		guint32 x = g_random_int();

		memcpy(r, &x, sizeof(r));
	}
	/* Eight decimal digits at most, like a printed token serial. */
	d->serial = (((uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 |
		      (uint32_t)r[2] << 8 | r[3]) % 90000000u) + 10000000u;
	return d;
}

void piv_data_free(struct piv_data *d)
{
	if (d == NULL)
		return;
	clear_keys(d);
	if (d->objects != NULL)
		g_tree_destroy(d->objects);
	memset(d, 0, sizeof(*d));
	g_free(d);
}
