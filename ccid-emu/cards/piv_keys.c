/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PIV applet commands on keys: GENERAL AUTHENTICATE (management key and
 * the private keys of the slots) and GENERATE ASYMMETRIC KEY PAIR.
 */
#include "ccid_piv_applet_private.h"
#include "ccid_piv_crypto.h"

#include <string.h>

/* --- GENERAL AUTHENTICATE -------------------------------------------------- */

/* The data objects of a dynamic authentication template 7C. */
struct ga_items {
	struct tlv item[4];      /* 80 witness, 81 challenge, 82 response,
	                          * 85 exponentiation */
	gboolean has[4];
};

static int ga_index(uint32_t tag)
{
	switch (tag) {
	case 0x80: return 0;
	case 0x81: return 1;
	case 0x82: return 2;
	case 0x85: return 3;
	default: return -1;
	}
}

static gboolean ga_parse(const struct cmd *c, struct ga_items *g)
{
	struct tlv outer, t;
	const uint8_t *p, *end;

	memset(g, 0, sizeof(*g));
	if (!piv_tlv_single(c->data, c->nc, 0x7C, &outer))
		return FALSE;
	p = outer.v;
	end = outer.v + outer.len;
	while (p < end) {
		int i;

		if (!piv_tlv_next(&p, end, &t))
			return FALSE;
		i = ga_index(t.tag);
		if (i < 0 || g->has[i])
			return FALSE;
		g->has[i] = TRUE;
		g->item[i] = t;
	}
	return TRUE;
}

#define GA_W 0
#define GA_C 1
#define GA_R 2
#define GA_E 3
#define ASKED(g, i)   ((g)->has[i] && (g)->item[i].len == 0)
#define GIVEN(g, i)   ((g)->has[i] && (g)->item[i].len > 0)

static void put_dyn_auth(GByteArray *out, uint32_t tag, const uint8_t *v,
			 size_t len)
{
	g_autoptr(GByteArray) inner = g_byte_array_new();

	piv_put_tlv(inner, tag, v, len);
	piv_put_tlv(out, 0x7C, inner->data, inner->len);
}

static uint16_t mgmt_block(piv_applet *a, gboolean encrypt, const uint8_t *in,
			   uint8_t *outb)
{
	return piv_crypto_block(a->d->mgmt_alg, a->d->mgmt_key, a->d->mgmt_len,
				encrypt, in, outb) ? SW_OK : SW_UNKNOWN;
}

/*
 * Management key (9B), SP 800-73-4 Part 2 Appendix A.1-A.3:
 *   80 empty                  -> 80 Enc(W)      the card sends a witness
 *   80 W [81 C]               -> [82 Enc(C)]    witness decrypted (and the
 *                                               card proves itself: mutual)
 *   81 empty                  -> 81 C           the card sends a challenge
 *   82 Enc(C)                 -> -              the challenge answered
 *   81 C 82 empty             -> 82 Enc(C)      the card proves itself only
 */
static uint16_t ga_mgmt(piv_applet *a, const struct cmd *c,
			const struct ga_items *g, GByteArray *out)
{
	size_t bl = piv_crypto_block_len(a->d->mgmt_alg);
	uint8_t buf[16], buf2[16];
	uint16_t sw;

	if (c->p1 != a->d->mgmt_alg)
		return SW_WRONG_P1P2;
	if (ASKED(g, GA_W) && !g->has[GA_C] && !g->has[GA_R] &&
	    !g->has[GA_E]) {
		piv_applet_clear_mgmt_exchange(a);
		if (!piv_crypto_random(a->witness, bl))
			return SW_UNKNOWN;
		if ((sw = mgmt_block(a, TRUE, a->witness, buf)) != SW_OK)
			return sw;
		a->witness_len = bl;
		put_dyn_auth(out, 0x80, buf, bl);
		return SW_OK;
	}
	if (GIVEN(g, GA_W) && !g->has[GA_E] && !GIVEN(g, GA_R)) {
		gboolean ok;

		if (a->witness_len == 0) {
			piv_applet_clear_mgmt_exchange(a);
			return SW_CONDITIONS;
		}
		if (g->item[GA_W].len != bl ||
		    (g->has[GA_C] && g->item[GA_C].len != bl)) {
			piv_applet_clear_mgmt_exchange(a);
			return SW_WRONG_DATA;
		}
		ok = piv_crypto_equal(a->witness, g->item[GA_W].v, bl);
		piv_applet_clear_mgmt_exchange(a);
		if (!ok) {
			a->mgmt_ok = FALSE;
			return SW_SECURITY_STATUS;
		}
		a->mgmt_ok = TRUE;
		if (GIVEN(g, GA_C)) {
			if ((sw = mgmt_block(a, TRUE, g->item[GA_C].v, buf)) !=
			    SW_OK)
				return sw;
			put_dyn_auth(out, 0x82, buf, bl);
		}
		return SW_OK;
	}
	if (ASKED(g, GA_C) && !g->has[GA_W] && !g->has[GA_R] &&
	    !g->has[GA_E]) {
		piv_applet_clear_mgmt_exchange(a);
		if (!piv_crypto_random(a->challenge, bl))
			return SW_UNKNOWN;
		a->challenge_len = bl;
		put_dyn_auth(out, 0x81, a->challenge, bl);
		return SW_OK;
	}
	if (GIVEN(g, GA_R) && !g->has[GA_W] && !g->has[GA_C] &&
	    !g->has[GA_E]) {
		gboolean ok;

		if (a->challenge_len == 0) {
			piv_applet_clear_mgmt_exchange(a);
			return SW_CONDITIONS;
		}
		if (g->item[GA_R].len != bl) {
			piv_applet_clear_mgmt_exchange(a);
			return SW_WRONG_DATA;
		}
		sw = mgmt_block(a, TRUE, a->challenge, buf2);
		ok = sw == SW_OK &&
		     piv_crypto_equal(buf2, g->item[GA_R].v, bl);
		piv_applet_clear_mgmt_exchange(a);
		if (sw != SW_OK)
			return sw;
		a->mgmt_ok = ok;
		return ok ? SW_OK : SW_SECURITY_STATUS;
	}
	if (GIVEN(g, GA_C) && ASKED(g, GA_R) && !g->has[GA_W] &&
	    !g->has[GA_E]) {
		piv_applet_clear_mgmt_exchange(a);
		if (g->item[GA_C].len != bl)
			return SW_WRONG_DATA;
		if ((sw = mgmt_block(a, TRUE, g->item[GA_C].v, buf)) != SW_OK)
			return sw;
		put_dyn_auth(out, 0x82, buf, bl);
		return SW_OK;
	}
	piv_applet_clear_mgmt_exchange(a);
	return SW_WRONG_DATA;
}

/* Whether the slot's PIN policy is met right now. */
static gboolean pin_policy_met(piv_applet *a, const struct piv_key *k)
{
	switch (k->pin_policy) {
	case PIV_PIN_POLICY_NEVER:
		return TRUE;
	case PIV_PIN_POLICY_ALWAYS:
		return a->pin_verified && a->pin_always_ok;
	default:
		return a->pin_verified;
	}
}

/*
 * A private-key slot, SP 800-73-4 Part 2 Appendix A.4-A.5:
 *   82 empty 81 block   -> 82 result   RSA raw operation (sign or decrypt)
 *                                      or ECDSA over a hash
 *   82 empty 85 point   -> 82 secret   ECDH (ECC keys only)
 */
static uint16_t ga_key(piv_applet *a, const struct cmd *c,
		       const struct ga_items *g, GByteArray *out)
{
	const struct piv_slot_info *s = piv_slot_by_ref(c->p2);
	g_autoptr(GByteArray) res = g_byte_array_new();
	struct piv_key *k;
	gboolean rsa, ok;

	if (s == NULL)
		return SW_WRONG_P1P2;
	k = &a->d->keys[piv_slot_index(s)];
	if (k->alg == 0)
		return SW_REF_NOT_FOUND;
	if (c->p1 != k->alg)
		return SW_WRONG_P1P2;
	if (!pin_policy_met(a, k))
		return SW_SECURITY_STATUS;
	/* A PIN-always key uses up the VERIFY that came right before. */
	if (k->pin_policy == PIV_PIN_POLICY_ALWAYS)
		a->pin_always_ok = FALSE;
	if (!ASKED(g, GA_R) || g->has[GA_W] ||
	    GIVEN(g, GA_C) == GIVEN(g, GA_E) ||
	    (g->has[GA_C] && g->has[GA_E]))
		return SW_WRONG_DATA;
	rsa = k->alg == PIV_ALG_RSA1024 || k->alg == PIV_ALG_RSA2048;
	if (GIVEN(g, GA_C))
		ok = rsa ? piv_crypto_rsa_raw(k->pkey, g->item[GA_C].v,
					      g->item[GA_C].len, res) :
			   piv_crypto_ecdsa(k->pkey, g->item[GA_C].v,
					    g->item[GA_C].len, res);
	else
		ok = !rsa && piv_crypto_ecdh(k->pkey, g->item[GA_E].v,
					     g->item[GA_E].len, res);
	if (!ok)
		return SW_WRONG_DATA;
	put_dyn_auth(out, 0x82, res->data, res->len);
	return SW_OK;
}

uint16_t piv_cmd_general_auth(piv_applet *a, const struct cmd *c,
			      GByteArray *out)
{
	struct ga_items g;

	if (!ga_parse(c, &g)) {
		piv_applet_clear_mgmt_exchange(a);
		return SW_WRONG_DATA;
	}
	if (c->p2 == PIV_REF_MGMT)
		return ga_mgmt(a, c, &g, out);
	piv_applet_clear_mgmt_exchange(a);
	return ga_key(a, c, &g, out);
}

/* --- GENERATE ASYMMETRIC KEY PAIR ------------------------------------------ */

uint16_t piv_cmd_generate(piv_applet *a, const struct cmd *c,
			  GByteArray *out)
{
	const struct piv_slot_info *s = piv_slot_by_ref(c->p2);
	g_autoptr(GByteArray) pub = g_byte_array_new();
	struct tlv ctl, t;
	const uint8_t *p, *end;
	uint8_t alg = 0, policy = PIV_PIN_POLICY_DEFAULT;
	struct piv_key *k;
	EVP_PKEY *pkey;

	if (c->p1 != 0x00 || s == NULL)
		return SW_WRONG_P1P2;
	if (!a->mgmt_ok)
		return SW_SECURITY_STATUS;
	/* AC { 80 alg [AA pin-policy] [AB touch-policy] } */
	if (!piv_tlv_single(c->data, c->nc, 0xAC, &ctl))
		return SW_WRONG_DATA;
	p = ctl.v;
	end = ctl.v + ctl.len;
	while (p < end) {
		if (!piv_tlv_next(&p, end, &t) || t.len != 1)
			return SW_WRONG_DATA;
		if (t.tag == 0x80)
			alg = t.v[0];
		else if (t.tag == 0xAA)
			policy = t.v[0];
		else if (t.tag != 0xAB)   /* no touch sensor: accepted, moot */
			return SW_WRONG_DATA;
	}
	if (policy > PIV_PIN_POLICY_ALWAYS)
		return SW_WRONG_DATA;
	if (alg != PIV_ALG_RSA1024 && alg != PIV_ALG_RSA2048 &&
	    alg != PIV_ALG_ECC_P256 && alg != PIV_ALG_ECC_P384)
		return SW_WRONG_DATA;
	pkey = piv_crypto_generate(alg);
	if (pkey == NULL || !piv_crypto_public_template(pkey, pub)) {
		EVP_PKEY_free(pkey);
		return SW_UNKNOWN;
	}
	k = &a->d->keys[piv_slot_index(s)];
	EVP_PKEY_free(k->pkey);
	k->pkey = pkey;
	k->alg = alg;
	k->origin = PIV_ORIGIN_GENERATED;
	k->pin_policy = policy != PIV_PIN_POLICY_DEFAULT ?
			(enum piv_pin_policy)policy : s->default_policy;
	if (!piv_applet_save(a))
		return SW_MEMORY_FAILURE;
	piv_put_tlv(out, 0x7F49, pub->data, pub->len);
	return SW_OK;
}
