/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PIV application: APDU decoding, security conditions, chaining and
 * the command table (see ccid_piv_applet.h for the command list).
 *
 * Every byte of a command is hostile: TLVs are parsed with explicit bounds
 * and any structure the spec does not allow is answered 6A80, never read
 * past.
 */
#include "ccid_card_apdu.h"
#include "ccid_piv_applet.h"
#include "ccid_piv_crypto.h"

#include <string.h>

/* ISO/IEC 7816-4 §5.1.3 status words used by SP 800-73-4. */
#define SW_OK                 0x9000u
#define SW_MORE(n)            (0x6100u | ((n) & 0xFFu))
#define SW_TRIES_LEFT(n)      (0x63C0u | ((n) > 15 ? 15u : (n)))
#define SW_MEMORY_FAILURE     0x6581u
#define SW_WRONG_LENGTH       0x6700u
#define SW_SECURITY_STATUS    0x6982u
#define SW_AUTH_BLOCKED       0x6983u
#define SW_CONDITIONS         0x6985u
#define SW_WRONG_DATA         0x6A80u
#define SW_NOT_FOUND          0x6A82u
#define SW_NO_MEMORY          0x6A84u
#define SW_WRONG_P1P2         0x6A86u
#define SW_REF_NOT_FOUND      0x6A88u
#define SW_INS_UNSUPPORTED    0x6D00u
#define SW_CLA_UNSUPPORTED    0x6E00u
#define SW_UNKNOWN            0x6F00u

#define INS_VERIFY            0x20u
#define INS_GENERAL_AUTH      0x87u
#define INS_GET_RESPONSE      0xC0u

static const uint8_t piv_aid[] = {
	0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00
};
/* The shortest right-truncated AID SELECT accepts: the RID. */
#define PIV_AID_MIN 5u

struct piv_applet {
	struct piv_data *d;
	piv_applet_save_fn save;
	void *save_user;
	char *save_error;

	/* Security status (SP 800-73-4 Part 2 §2.4). */
	gboolean pin_verified;
	gboolean pin_always_ok;    /* VERIFY was the command just before */
	gboolean mgmt_ok;

	/* Management-key GENERAL AUTHENTICATE in progress: the witness or
	 * challenge the card sent, valid for the next command only. */
	uint8_t witness[16];
	size_t witness_len;
	uint8_t challenge[16];
	size_t challenge_len;

	/* Command chaining: the data so far and the header it belongs to. */
	GByteArray *chain;
	uint8_t chain_ins, chain_p1, chain_p2;
	gboolean chaining;

	/* Response chaining: what GET RESPONSE still has to send. */
	GByteArray *pending;
	size_t pending_off;
	uint16_t pending_sw;
};

struct cmd {
	uint8_t ins, p1, p2;
	const uint8_t *data;
	size_t nc;
};

/* --- TLV ------------------------------------------------------------------ */

struct tlv {
	uint32_t tag;
	const uint8_t *v;
	size_t len;
};

/* Reads one BER-TLV at *@p (tags of up to three bytes, definite lengths of
 * up to 0xFFFF) and advances *@p; FALSE if it does not fit before @end. */
static gboolean tlv_next(const uint8_t **p, const uint8_t *end, struct tlv *t)
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
static gboolean tlv_single(const uint8_t *data, size_t len, uint32_t tag,
			   struct tlv *t)
{
	const uint8_t *p = data;

	return data != NULL && tlv_next(&p, data + len, t) && t->tag == tag &&
	       p == data + len;
}

static void put_tlv(GByteArray *out, uint32_t tag, const uint8_t *v, size_t len)
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

static void put_tlv_byte(GByteArray *out, uint32_t tag, uint8_t b)
{
	put_tlv(out, tag, &b, 1);
}

/* --- state helpers ---------------------------------------------------------- */

static gboolean save(piv_applet *a)
{
	g_autoptr(GError) error = NULL;

	if (a->save == NULL)
		return TRUE;
	if (!a->save(a->save_user, a->d, &error)) {
		g_free(a->save_error);
		a->save_error = g_strdup(error != NULL ? error->message :
					 "the store refused the write");
		g_debug("piv: %s", a->save_error);
		return FALSE;
	}
	g_clear_pointer(&a->save_error, g_free);
	return TRUE;
}

static void clear_pending(piv_applet *a)
{
	g_byte_array_set_size(a->pending, 0);
	a->pending_off = 0;
}

static void clear_chain(piv_applet *a)
{
	g_byte_array_set_size(a->chain, 0);
	a->chaining = FALSE;
}

static void clear_mgmt_exchange(piv_applet *a)
{
	memset(a->witness, 0, sizeof(a->witness));
	memset(a->challenge, 0, sizeof(a->challenge));
	a->witness_len = 0;
	a->challenge_len = 0;
}

/*
 * One try of a PIN or PUK, pessimistically: the counter goes down and is
 * saved before the comparison, and goes back up only after a match.  So a
 * host that pulls the plug while the card decides never gains a try.
 */
static uint16_t try_reference(piv_applet *a, const uint8_t *value,
			      uint8_t *left, uint8_t max,
			      const uint8_t given[PIV_PIN_LEN],
			      gboolean *matched)
{
	*matched = FALSE;
	if (*left == 0)
		return SW_AUTH_BLOCKED;
	(*left)--;
	if (!save(a))
		return SW_MEMORY_FAILURE;
	if (!piv_crypto_equal(value, given, PIV_PIN_LEN))
		return *left > 0 ? SW_TRIES_LEFT(*left) : SW_AUTH_BLOCKED;
	*left = max;
	*matched = TRUE;
	return save(a) ? SW_OK : SW_MEMORY_FAILURE;
}

/* --- SELECT ------------------------------------------------------------------ */

static uint16_t cmd_select(piv_applet *a, const struct cmd *c, GByteArray *out)
{
	static const uint8_t pix[] = { 0x00, 0x00, 0x10, 0x00, 0x01, 0x00 };
	static const uint8_t authority[] = {
		0x4F, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08
	};
	static const uint8_t label[] = "ccid-emu virtual PIV";
	/* Algorithms of SP 800-78-4 the card implements, then the object
	 * identifier 06 00 that ends the list. */
	static const uint8_t algs[] = {
		0x80, 0x01, PIV_ALG_3DES, 0x80, 0x01, PIV_ALG_AES128,
		0x80, 0x01, PIV_ALG_AES192, 0x80, 0x01, PIV_ALG_AES256,
		0x80, 0x01, PIV_ALG_RSA2048, 0x80, 0x01, PIV_ALG_ECC_P256,
		0x80, 0x01, PIV_ALG_ECC_P384, 0x06, 0x01, 0x00,
	};
	g_autoptr(GByteArray) apt = g_byte_array_new();

	/* P2 00: answer the template; 0C: no response data (ISO 7816-4). */
	if (c->p1 != 0x04 || (c->p2 != 0x00 && c->p2 != 0x0C))
		return SW_WRONG_P1P2;
	if (c->nc < PIV_AID_MIN || c->nc > sizeof(piv_aid) ||
	    memcmp(c->data, piv_aid, c->nc) != 0)
		return SW_NOT_FOUND;
	if (c->p2 == 0x0C)
		return SW_OK;
	put_tlv(apt, 0x4F, pix, sizeof(pix));
	put_tlv(apt, 0x79, authority, sizeof(authority));
	put_tlv(apt, 0x50, label, sizeof(label) - 1);
	put_tlv(apt, 0xAC, algs, sizeof(algs));
	put_tlv(out, 0x61, apt->data, apt->len);
	return SW_OK;
}

/* --- data objects ---------------------------------------------------------- */

enum object_access { OBJ_UNKNOWN, OBJ_FREE, OBJ_PIN };

/* SP 800-73-4 Part 1 Table 3 plus Yubico's vendor objects 5FFF00..15:
 * who may read the object (everyone may write with the management key). */
static enum object_access object_access(uint32_t tag)
{
	switch (tag) {
	case 0x5FC103:   /* cardholder fingerprints */
	case 0x5FC108:   /* cardholder facial image */
	case 0x5FC109:   /* printed information */
	case 0x5FC121:   /* cardholder iris images */
	case 0x5FC123:   /* pairing code reference data */
		return OBJ_PIN;
	case 0x7E:       /* discovery object */
	case 0x7F61:     /* biometric information templates group */
		return OBJ_FREE;
	default:
		break;
	}
	if (tag >= 0x5FC101 && tag <= 0x5FC123)
		return OBJ_FREE;
	if (tag >= 0x5FFF00 && tag <= 0x5FFF15)
		return OBJ_FREE;
	return OBJ_UNKNOWN;
}

/* The discovery object of a card that was never given one: the PIV AID and
 * a PIN usage policy of "PIV application PIN only". */
static const uint8_t default_discovery[] = {
	0x4F, 0x0B, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00,
	0x01, 0x00, 0x5F, 0x2F, 0x02, 0x40, 0x00,
};

static gboolean tag_from_bytes(const struct tlv *t, uint32_t *tag)
{
	if (t->len < 1 || t->len > 3)
		return FALSE;
	*tag = 0;
	for (size_t i = 0; i < t->len; i++)
		*tag = *tag << 8 | t->v[i];
	return TRUE;
}

/* The tag an object's value travels in: its own for the two objects that
 * are not wrapped in 53. */
static uint32_t wrapper_tag(uint32_t tag)
{
	return tag == 0x7E || tag == 0x7F61 ? tag : 0x53;
}

static uint16_t cmd_get_data(piv_applet *a, const struct cmd *c,
			     GByteArray *out)
{
	struct tlv t;
	uint32_t tag;
	enum object_access acc;
	GBytes *value;

	if (c->p1 != 0x3F || c->p2 != 0xFF)
		return SW_WRONG_P1P2;
	if (!tlv_single(c->data, c->nc, 0x5C, &t) || !tag_from_bytes(&t, &tag))
		return SW_WRONG_DATA;
	acc = object_access(tag);
	if (acc == OBJ_UNKNOWN)
		return SW_NOT_FOUND;
	if (acc == OBJ_PIN && !a->pin_verified)
		return SW_SECURITY_STATUS;
	value = g_tree_lookup(a->d->objects, GUINT_TO_POINTER(tag));
	if (value != NULL) {
		gsize len;
		const uint8_t *v = g_bytes_get_data(value, &len);

		put_tlv(out, wrapper_tag(tag), v, len);
		return SW_OK;
	}
	if (tag == 0x7E) {
		put_tlv(out, 0x7E, default_discovery, sizeof(default_discovery));
		return SW_OK;
	}
	return SW_NOT_FOUND;
}

static uint16_t cmd_put_data(piv_applet *a, const struct cmd *c,
			     GByteArray *out)
{
	const uint8_t *p, *end;
	struct tlv t, v;
	uint32_t tag;

	if (c->p1 != 0x3F || c->p2 != 0xFF)
		return SW_WRONG_P1P2;
	if (!a->mgmt_ok)
		return SW_SECURITY_STATUS;
	if (c->data == NULL)
		return SW_WRONG_DATA;
	p = c->data;
	end = c->data + c->nc;
	if (!tlv_next(&p, end, &t))
		return SW_WRONG_DATA;
	if (t.tag == 0x5C) {
		if (!tag_from_bytes(&t, &tag) || !tlv_next(&p, end, &v) ||
		    v.tag != 0x53 || p != end)
			return SW_WRONG_DATA;
		if (wrapper_tag(tag) != 0x53)
			return SW_WRONG_DATA;
	} else if ((t.tag == 0x7E || t.tag == 0x7F61) && p == end) {
		tag = t.tag;
		v = t;
	} else {
		return SW_WRONG_DATA;
	}
	if (object_access(tag) == OBJ_UNKNOWN)
		return SW_NOT_FOUND;
	if (v.len > PIV_MAX_OBJECT)
		return SW_NO_MEMORY;
	/* An empty value deletes the object, as yubico-piv-tool expects. */
	if (v.len == 0)
		g_tree_remove(a->d->objects, GUINT_TO_POINTER(tag));
	else
		g_tree_insert(a->d->objects, GUINT_TO_POINTER(tag),
			      g_bytes_new(v.v, v.len));
	return save(a) ? SW_OK : SW_MEMORY_FAILURE;
}

/* --- PIN and PUK ------------------------------------------------------------ */

static uint16_t cmd_verify(piv_applet *a, const struct cmd *c, GByteArray *out)
{
	gboolean matched;
	uint16_t sw;

	if (c->p1 == 0xFF) {
		/* Reset of the PIN's security status; no data allowed. */
		if (c->p2 != PIV_REF_PIN)
			return SW_REF_NOT_FOUND;
		if (c->nc != 0)
			return SW_WRONG_DATA;
		a->pin_verified = FALSE;
		a->pin_always_ok = FALSE;
		return SW_OK;
	}
	if (c->p1 != 0x00)
		return SW_WRONG_P1P2;
	if (c->p2 != PIV_REF_PIN)
		return SW_REF_NOT_FOUND;
	if (c->nc == 0) {
		/* Status query: costs no try. */
		if (a->d->pin_left == 0)
			return SW_AUTH_BLOCKED;
		return a->pin_verified ? SW_OK : SW_TRIES_LEFT(a->d->pin_left);
	}
	if (c->nc != PIV_PIN_LEN)
		return SW_WRONG_DATA;
	a->pin_verified = FALSE;
	sw = try_reference(a, a->d->pin, &a->d->pin_left, a->d->pin_max,
			   c->data, &matched);
	if (matched && sw == SW_OK) {
		a->pin_verified = TRUE;
		a->pin_always_ok = TRUE;
	}
	return sw;
}

static uint16_t cmd_change_reference(piv_applet *a, const struct cmd *c,
				     GByteArray *out)
{
	gboolean is_pin = c->p2 == PIV_REF_PIN;
	uint8_t *value, *left, max;
	gboolean matched;
	uint16_t sw;

	if (c->p1 != 0x00)
		return SW_WRONG_P1P2;
	if (c->p2 != PIV_REF_PIN && c->p2 != PIV_REF_PUK)
		return SW_REF_NOT_FOUND;
	if (c->nc != 2 * PIV_PIN_LEN ||
	    !piv_pin_well_formed(c->data + PIV_PIN_LEN))
		return SW_WRONG_DATA;
	value = is_pin ? a->d->pin : a->d->puk;
	left = is_pin ? &a->d->pin_left : &a->d->puk_left;
	max = is_pin ? a->d->pin_max : a->d->puk_max;
	if (is_pin)
		a->pin_verified = FALSE;
	sw = try_reference(a, value, left, max, c->data, &matched);
	if (!matched || sw != SW_OK)
		return sw;
	memcpy(value, c->data + PIV_PIN_LEN, PIV_PIN_LEN);
	if (!save(a))
		return SW_MEMORY_FAILURE;
	if (is_pin)
		a->pin_verified = TRUE;
	return SW_OK;
}

static uint16_t cmd_reset_retry(piv_applet *a, const struct cmd *c,
				GByteArray *out)
{
	gboolean matched;
	uint16_t sw;

	if (c->p1 != 0x00)
		return SW_WRONG_P1P2;
	if (c->p2 != PIV_REF_PIN)
		return SW_REF_NOT_FOUND;
	if (c->nc != 2 * PIV_PIN_LEN ||
	    !piv_pin_well_formed(c->data + PIV_PIN_LEN))
		return SW_WRONG_DATA;
	sw = try_reference(a, a->d->puk, &a->d->puk_left, a->d->puk_max,
			   c->data, &matched);
	if (!matched || sw != SW_OK)
		return sw;
	memcpy(a->d->pin, c->data + PIV_PIN_LEN, PIV_PIN_LEN);
	a->d->pin_left = a->d->pin_max;
	a->pin_verified = FALSE;
	return save(a) ? SW_OK : SW_MEMORY_FAILURE;
}

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
	if (!tlv_single(c->data, c->nc, 0x7C, &outer))
		return FALSE;
	p = outer.v;
	end = outer.v + outer.len;
	while (p < end) {
		int i;

		if (!tlv_next(&p, end, &t))
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

	put_tlv(inner, tag, v, len);
	put_tlv(out, 0x7C, inner->data, inner->len);
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
		clear_mgmt_exchange(a);
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
			clear_mgmt_exchange(a);
			return SW_CONDITIONS;
		}
		if (g->item[GA_W].len != bl ||
		    (g->has[GA_C] && g->item[GA_C].len != bl)) {
			clear_mgmt_exchange(a);
			return SW_WRONG_DATA;
		}
		ok = piv_crypto_equal(a->witness, g->item[GA_W].v, bl);
		clear_mgmt_exchange(a);
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
		clear_mgmt_exchange(a);
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
			clear_mgmt_exchange(a);
			return SW_CONDITIONS;
		}
		if (g->item[GA_R].len != bl) {
			clear_mgmt_exchange(a);
			return SW_WRONG_DATA;
		}
		sw = mgmt_block(a, TRUE, a->challenge, buf2);
		ok = sw == SW_OK &&
		     piv_crypto_equal(buf2, g->item[GA_R].v, bl);
		clear_mgmt_exchange(a);
		if (sw != SW_OK)
			return sw;
		a->mgmt_ok = ok;
		return ok ? SW_OK : SW_SECURITY_STATUS;
	}
	if (GIVEN(g, GA_C) && ASKED(g, GA_R) && !g->has[GA_W] &&
	    !g->has[GA_E]) {
		clear_mgmt_exchange(a);
		if (g->item[GA_C].len != bl)
			return SW_WRONG_DATA;
		if ((sw = mgmt_block(a, TRUE, g->item[GA_C].v, buf)) != SW_OK)
			return sw;
		put_dyn_auth(out, 0x82, buf, bl);
		return SW_OK;
	}
	clear_mgmt_exchange(a);
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

static uint16_t cmd_general_auth(piv_applet *a, const struct cmd *c,
				 GByteArray *out)
{
	struct ga_items g;

	if (!ga_parse(c, &g)) {
		clear_mgmt_exchange(a);
		return SW_WRONG_DATA;
	}
	if (c->p2 == PIV_REF_MGMT)
		return ga_mgmt(a, c, &g, out);
	clear_mgmt_exchange(a);
	return ga_key(a, c, &g, out);
}

/* --- GENERATE ASYMMETRIC KEY PAIR ------------------------------------------ */

static uint16_t cmd_generate(piv_applet *a, const struct cmd *c,
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
	if (!tlv_single(c->data, c->nc, 0xAC, &ctl))
		return SW_WRONG_DATA;
	p = ctl.v;
	end = ctl.v + ctl.len;
	while (p < end) {
		if (!tlv_next(&p, end, &t) || t.len != 1)
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
	if (!save(a))
		return SW_MEMORY_FAILURE;
	put_tlv(out, 0x7F49, pub->data, pub->len);
	return SW_OK;
}

/* --- Yubico extensions ------------------------------------------------------ */

static uint16_t cmd_get_version(piv_applet *a, const struct cmd *c,
				GByteArray *out)
{
	static const uint8_t v[] = {
		PIV_APPLET_VERSION_MAJOR, PIV_APPLET_VERSION_MINOR,
		PIV_APPLET_VERSION_PATCH
	};

	g_byte_array_append(out, v, sizeof(v));
	return SW_OK;
}

static uint16_t cmd_get_serial(piv_applet *a, const struct cmd *c,
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
static uint16_t cmd_get_metadata(piv_applet *a, const struct cmd *c,
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

		put_tlv_byte(out, 0x01, 0xFF);
		put_tlv_byte(out, 0x05, is_default_ref(pin ? a->d->pin : a->d->puk,
						       pin ? PIV_DEFAULT_PIN :
							     PIV_DEFAULT_PUK));
		put_tlv(out, 0x06, tries, sizeof(tries));
		return SW_OK;
	}
	if (c->p2 == PIV_REF_MGMT) {
		static const uint8_t policy[] = { 0x00, 0x01 };

		put_tlv_byte(out, 0x01, a->d->mgmt_alg);
		put_tlv(out, 0x02, policy, sizeof(policy));
		put_tlv_byte(out, 0x05,
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
		put_tlv_byte(out, 0x01, k->alg);
		put_tlv(out, 0x02, policy, sizeof(policy));
		put_tlv_byte(out, 0x03, (uint8_t)k->origin);
		put_tlv(out, 0x04, pub->data, pub->len);
	}
	return SW_OK;
}

/* Yubico SET MANAGEMENT KEY: P2 FF (or FE, touch: no sensor, accepted);
 * data alg 9B len key. */
static uint16_t cmd_set_mgmt_key(piv_applet *a, const struct cmd *c,
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
	return save(a) ? SW_OK : SW_MEMORY_FAILURE;
}

/* Yubico SET PIN RETRIES: P1 PIN tries, P2 PUK tries; PIN and PUK go back
 * to their defaults, as on a YubiKey. */
static uint16_t cmd_set_pin_retries(piv_applet *a, const struct cmd *c,
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
	return save(a) ? SW_OK : SW_MEMORY_FAILURE;
}

/* Yubico RESET: only a card whose PIN and PUK are both blocked. */
static uint16_t cmd_reset(piv_applet *a, const struct cmd *c, GByteArray *out)
{
	if (c->p1 != 0x00 || c->p2 != 0x00)
		return SW_WRONG_P1P2;
	if (a->d->pin_left != 0 || a->d->puk_left != 0)
		return SW_CONDITIONS;
	piv_data_reset(a->d);
	piv_applet_reset(a);
	return save(a) ? SW_OK : SW_MEMORY_FAILURE;
}

/* --- dispatch --------------------------------------------------------------- */

static const struct {
	uint8_t ins;
	uint16_t (*fn)(piv_applet *a, const struct cmd *c, GByteArray *out);
} commands[] = {
	{ 0xA4, cmd_select },
	{ 0xCB, cmd_get_data },
	{ 0xDB, cmd_put_data },
	{ INS_VERIFY, cmd_verify },
	{ 0x24, cmd_change_reference },
	{ 0x2C, cmd_reset_retry },
	{ INS_GENERAL_AUTH, cmd_general_auth },
	{ 0x47, cmd_generate },
	{ 0xFD, cmd_get_version },
	{ 0xF8, cmd_get_serial },
	{ 0xF7, cmd_get_metadata },
	{ 0xFF, cmd_set_mgmt_key },
	{ 0xFA, cmd_set_pin_retries },
	{ 0xFB, cmd_reset },
};

static size_t put_sw(uint8_t *resp, size_t off, uint16_t sw)
{
	resp[off] = (uint8_t)(sw >> 8);
	resp[off + 1] = (uint8_t)sw;
	return off + 2;
}

/* Sends what is left of the pending response, at most @ne bytes. */
static size_t send_pending(piv_applet *a, size_t ne, uint8_t *resp)
{
	size_t left = a->pending->len - a->pending_off;
	size_t n = MIN(left, ne);

	if (n > 0)
		memcpy(resp, a->pending->data + a->pending_off, n);
	a->pending_off += n;
	left -= n;
	if (left == 0) {
		uint16_t sw = a->pending_sw;

		clear_pending(a);
		return put_sw(resp, n, sw);
	}
	return put_sw(resp, n, SW_MORE(left >= 256 ? 0 : left));
}

piv_applet *piv_applet_new(struct piv_data *data, piv_applet_save_fn save_fn,
			   void *save_user)
{
	piv_applet *a = g_new0(piv_applet, 1);

	a->d = data;
	a->save = save_fn;
	a->save_user = save_user;
	a->chain = g_byte_array_new();
	a->pending = g_byte_array_new();
	return a;
}

void piv_applet_free(piv_applet *a)
{
	if (a == NULL)
		return;
	piv_data_free(a->d);
	g_byte_array_unref(a->chain);
	g_byte_array_unref(a->pending);
	g_free(a->save_error);
	g_free(a);
}

void piv_applet_reset(piv_applet *a)
{
	a->pin_verified = FALSE;
	a->pin_always_ok = FALSE;
	a->mgmt_ok = FALSE;
	clear_mgmt_exchange(a);
	clear_chain(a);
	clear_pending(a);
}

size_t piv_applet_process(piv_applet *a, const uint8_t *apdu, size_t len,
			  uint8_t *resp)
{
	g_autoptr(GByteArray) out = g_byte_array_new();
	struct ccid_apdu p;
	struct cmd c;
	size_t ne;
	uint16_t sw = SW_INS_UNSUPPORTED;

	if (ccid_apdu_parse(apdu, len, &p) != CCID_APDU_OK) {
		clear_chain(a);
		clear_pending(a);
		return put_sw(resp, 0, SW_WRONG_LENGTH);
	}
	/* Without Le a T=1 card answers as if Le were 00. */
	ne = p.has_le ? p.ne :
	     (p.apdu_case >= CCID_APDU_CASE_2E ? 65536u : 256u);
	if ((p.cla & ~0x10u) != 0x00) {
		/* No secure messaging, no logical channels, no proprietary
		 * class. */
		clear_chain(a);
		clear_pending(a);
		return put_sw(resp, 0, SW_CLA_UNSUPPORTED);
	}
	if (p.ins == INS_GET_RESPONSE && !(p.cla & 0x10u)) {
		if (p.p1 != 0 || p.p2 != 0)
			return put_sw(resp, 0, SW_WRONG_P1P2);
		if (a->pending->len == 0)
			return put_sw(resp, 0, SW_CONDITIONS);
		return send_pending(a, ne, resp);
	}
	clear_pending(a);

	/* Command chaining (ISO 7816-4 §5.1.1.1): a chain continues only
	 * with the same INS P1 P2; anything else abandons it. */
	if (a->chaining && (p.ins != a->chain_ins || p.p1 != a->chain_p1 ||
			    p.p2 != a->chain_p2))
		clear_chain(a);
	if (p.cla & 0x10u) {
		if (a->chain->len + p.nc > PIV_APPLET_MAX_CHAIN) {
			clear_chain(a);
			return put_sw(resp, 0, SW_NO_MEMORY);
		}
		a->chaining = TRUE;
		a->chain_ins = p.ins;
		a->chain_p1 = p.p1;
		a->chain_p2 = p.p2;
		if (p.nc > 0)
			g_byte_array_append(a->chain, p.data, p.nc);
		return put_sw(resp, 0, SW_OK);
	}
	c.ins = p.ins;
	c.p1 = p.p1;
	c.p2 = p.p2;
	c.data = p.data;
	c.nc = p.nc;
	if (a->chaining) {
		if (a->chain->len + p.nc > PIV_APPLET_MAX_CHAIN) {
			clear_chain(a);
			return put_sw(resp, 0, SW_NO_MEMORY);
		}
		if (p.nc > 0)
			g_byte_array_append(a->chain, p.data, p.nc);
		c.data = a->chain->data;
		c.nc = a->chain->len;
		a->chaining = FALSE;
	}
	if (c.ins != INS_GENERAL_AUTH)
		clear_mgmt_exchange(a);

	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
		if (commands[i].ins == c.ins) {
			sw = commands[i].fn(a, &c, out);
			break;
		}
	}
	/* Header and status only: never data, which may hold a PIN. */
	g_debug("piv: %02X %02X %02X %02X Nc=%zu -> %04X, %u bytes", p.cla,
		c.ins, c.p1, c.p2, c.nc, sw, out->len);
	if (c.ins == 0xA4 && sw != SW_OK && c.nc > 0 && c.nc <= 16) {
		char aid[33];

		for (size_t i = 0; i < c.nc; i++)
			g_snprintf(aid + 2 * i, 3, "%02X", c.data[i]);
		g_debug("piv: SELECT of AID %s refused", aid);
	}
	/* PIN-always keys need VERIFY as the command right before. */
	if (c.ins != INS_VERIFY)
		a->pin_always_ok = FALSE;
	g_byte_array_set_size(a->chain, 0);

	if (out->len <= ne) {
		if (out->len > 0)
			memcpy(resp, out->data, out->len);
		return put_sw(resp, out->len, sw);
	}
	/* Too long for Ne: the rest waits for GET RESPONSE. */
	g_byte_array_append(a->pending, out->data, out->len);
	a->pending_off = 0;
	a->pending_sw = sw;
	return send_pending(a, ne, resp);
}

const struct piv_data *piv_applet_get_data(const piv_applet *a)
{
	return a->d;
}

const char *piv_applet_last_save_error(const piv_applet *a)
{
	return a->save_error;
}
