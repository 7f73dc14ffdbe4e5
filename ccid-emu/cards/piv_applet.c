/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PIV application: APDU decoding, command and response chaining, the
 * command table, the session, SELECT, the data objects and the PIN and
 * PUK commands (see ccid_piv_applet.h for the command list; key commands
 * are in piv_keys.c, the Yubico extensions in piv_yubico.c).
 *
 * Every byte of a command is hostile: TLVs are parsed with explicit bounds
 * and any structure the spec does not allow is answered 6A80, never read
 * past.
 */
#include "ccid_card_apdu.h"
#include "ccid_piv_applet_private.h"
#include "ccid_piv_crypto.h"

#include <string.h>

static const uint8_t piv_aid[] = {
	0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00
};
/* The shortest right-truncated AID SELECT accepts: the RID. */
#define PIV_AID_MIN 5u

/* --- state helpers ---------------------------------------------------------- */

gboolean piv_applet_save(piv_applet *a)
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

void piv_applet_clear_mgmt_exchange(piv_applet *a)
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
	if (!piv_applet_save(a))
		return SW_MEMORY_FAILURE;
	if (!piv_crypto_equal(value, given, PIV_PIN_LEN))
		return *left > 0 ? SW_TRIES_LEFT(*left) : SW_AUTH_BLOCKED;
	*left = max;
	*matched = TRUE;
	return piv_applet_save(a) ? SW_OK : SW_MEMORY_FAILURE;
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
	piv_put_tlv(apt, 0x4F, pix, sizeof(pix));
	piv_put_tlv(apt, 0x79, authority, sizeof(authority));
	piv_put_tlv(apt, 0x50, label, sizeof(label) - 1);
	piv_put_tlv(apt, 0xAC, algs, sizeof(algs));
	piv_put_tlv(out, 0x61, apt->data, apt->len);
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
	if (!piv_tlv_single(c->data, c->nc, 0x5C, &t) || !tag_from_bytes(&t, &tag))
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

		piv_put_tlv(out, wrapper_tag(tag), v, len);
		return SW_OK;
	}
	if (tag == 0x7E) {
		piv_put_tlv(out, 0x7E, default_discovery, sizeof(default_discovery));
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
	if (!piv_tlv_next(&p, end, &t))
		return SW_WRONG_DATA;
	if (t.tag == 0x5C) {
		if (!tag_from_bytes(&t, &tag) || !piv_tlv_next(&p, end, &v) ||
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
	return piv_applet_save(a) ? SW_OK : SW_MEMORY_FAILURE;
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
	if (!piv_applet_save(a))
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
	return piv_applet_save(a) ? SW_OK : SW_MEMORY_FAILURE;
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
	{ INS_GENERAL_AUTH, piv_cmd_general_auth },
	{ 0x47, piv_cmd_generate },
	{ 0xFD, piv_cmd_get_version },
	{ 0xF8, piv_cmd_get_serial },
	{ 0xF7, piv_cmd_get_metadata },
	{ 0xFF, piv_cmd_set_mgmt_key },
	{ 0xFA, piv_cmd_set_pin_retries },
	{ 0xFB, piv_cmd_reset },
	{ 0xFE, piv_cmd_import_key },
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
	piv_applet_clear_mgmt_exchange(a);
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
		piv_applet_clear_mgmt_exchange(a);

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
