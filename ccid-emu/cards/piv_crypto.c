/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PIV card cryptography on OpenSSL's EVP interfaces (see ccid_piv_crypto.h).
 */
#include "ccid_piv_crypto.h"
#include "ccid_piv_data.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

size_t piv_crypto_block_len(uint8_t alg)
{
	switch (alg) {
	case PIV_ALG_3DES:
		return 8;
	case PIV_ALG_AES128:
	case PIV_ALG_AES192:
	case PIV_ALG_AES256:
		return 16;
	default:
		return 0;
	}
}

static const char *cipher_name(uint8_t alg)
{
	switch (alg) {
	case PIV_ALG_3DES:
		return "DES-EDE3-ECB";
	case PIV_ALG_AES128:
		return "AES-128-ECB";
	case PIV_ALG_AES192:
		return "AES-192-ECB";
	case PIV_ALG_AES256:
		return "AES-256-ECB";
	default:
		return NULL;
	}
}

gboolean piv_crypto_block(uint8_t alg, const uint8_t *key, size_t key_len,
			  gboolean encrypt, const uint8_t *in, uint8_t *out)
{
	const char *name = cipher_name(alg);
	size_t bl = piv_crypto_block_len(alg);
	EVP_CIPHER *cipher = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	gboolean ok = FALSE;
	int n = 0, fin = 0;

	if (name == NULL || key_len != piv_mgmt_key_len(alg))
		return FALSE;
	cipher = EVP_CIPHER_fetch(NULL, name, NULL);
	ctx = EVP_CIPHER_CTX_new();
	if (cipher == NULL || ctx == NULL)
		goto out;
	if (EVP_CipherInit_ex2(ctx, cipher, key, NULL, encrypt ? 1 : 0,
			       NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
	    EVP_CipherUpdate(ctx, out, &n, in, (int)bl) != 1 ||
	    EVP_CipherFinal_ex(ctx, out + n, &fin) != 1)
		goto out;
	ok = (size_t)(n + fin) == bl;
out:
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(cipher);
	return ok;
}

gboolean piv_crypto_random(uint8_t *buf, size_t len)
{
	return RAND_bytes(buf, (int)len) == 1;
}

EVP_PKEY *piv_crypto_generate(uint8_t alg)
{
	switch (alg) {
	case PIV_ALG_RSA1024:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	case PIV_ALG_RSA2048:
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	case PIV_ALG_ECC_P256:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	case PIV_ALG_ECC_P384:
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	default:
		return NULL;
	}
}

uint8_t piv_crypto_key_alg(EVP_PKEY *pkey)
{
	char group[32];

	if (pkey == NULL)
		return 0;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		int bits = EVP_PKEY_get_bits(pkey);

		return bits == 2048 ? PIV_ALG_RSA2048 :
		       bits == 1024 ? PIV_ALG_RSA1024 : 0;
	}
	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
					   group, sizeof(group), NULL) == 1) {
		if (g_strcmp0(group, "prime256v1") == 0 ||
		    g_strcmp0(group, "P-256") == 0)
			return PIV_ALG_ECC_P256;
		if (g_strcmp0(group, "secp384r1") == 0 ||
		    g_strcmp0(group, "P-384") == 0)
			return PIV_ALG_ECC_P384;
	}
	return 0;
}

/* BER-TLV with a definite length of up to 0xFFFF. */
static void put_tlv(GByteArray *out, uint8_t tag, const uint8_t *v, size_t len)
{
	uint8_t hdr[4];
	guint n = 0;

	hdr[n++] = tag;
	if (len < 0x80) {
		hdr[n++] = (uint8_t)len;
	} else if (len <= 0xFF) {
		hdr[n++] = 0x81;
		hdr[n++] = (uint8_t)len;
	} else {
		hdr[n++] = 0x82;
		hdr[n++] = (uint8_t)(len >> 8);
		hdr[n++] = (uint8_t)len;
	}
	g_byte_array_append(out, hdr, n);
	g_byte_array_append(out, v, (guint)len);
}

static gboolean put_bn(GByteArray *out, uint8_t tag, EVP_PKEY *pkey,
		       const char *param)
{
	BIGNUM *bn = NULL;
	gboolean ok = FALSE;
	int len;

	if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
		return FALSE;
	len = BN_num_bytes(bn);
	if (len > 0 && len <= 1024) {
		g_autofree uint8_t *buf = g_malloc((gsize)len);

		BN_bn2bin(bn, buf);
		put_tlv(out, tag, buf, (size_t)len);
		ok = TRUE;
	}
	BN_free(bn);
	return ok;
}

gboolean piv_crypto_public_template(EVP_PKEY *pkey, GByteArray *out)
{
	uint8_t point[160];
	size_t len = 0;

	if (EVP_PKEY_is_a(pkey, "RSA"))
		return put_bn(out, 0x81, pkey, OSSL_PKEY_PARAM_RSA_N) &&
		       put_bn(out, 0x82, pkey, OSSL_PKEY_PARAM_RSA_E);
	if (EVP_PKEY_get_octet_string_param(pkey,
					    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
					    point, sizeof(point), &len) != 1)
		return FALSE;
	put_tlv(out, 0x86, point, len);
	return TRUE;
}

gboolean piv_crypto_rsa_raw(EVP_PKEY *pkey, const uint8_t *in, size_t len,
			    GByteArray *out)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	size_t outlen = 0;
	gboolean ok = FALSE;
	guint old = out->len;

	if (ctx == NULL)
		return FALSE;
	if ((int)len != EVP_PKEY_get_size(pkey))
		goto done;
	if (EVP_PKEY_decrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) != 1 ||
	    EVP_PKEY_decrypt(ctx, NULL, &outlen, in, len) != 1)
		goto done;
	g_byte_array_set_size(out, old + (guint)outlen);
	if (EVP_PKEY_decrypt(ctx, out->data + old, &outlen, in, len) != 1) {
		g_byte_array_set_size(out, old);
		goto done;
	}
	g_byte_array_set_size(out, old + (guint)outlen);
	ok = TRUE;
done:
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

gboolean piv_crypto_ecdsa(EVP_PKEY *pkey, const uint8_t *hash, size_t len,
			  GByteArray *out)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	size_t siglen = 0;
	gboolean ok = FALSE;
	guint old = out->len;

	if (ctx == NULL)
		return FALSE;
	if (len == 0 || len > 64 ||
	    EVP_PKEY_sign_init(ctx) != 1 ||
	    EVP_PKEY_sign(ctx, NULL, &siglen, hash, len) != 1)
		goto done;
	g_byte_array_set_size(out, old + (guint)siglen);
	if (EVP_PKEY_sign(ctx, out->data + old, &siglen, hash, len) != 1) {
		g_byte_array_set_size(out, old);
		goto done;
	}
	g_byte_array_set_size(out, old + (guint)siglen);
	ok = TRUE;
done:
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* The peer's public key from an uncompressed point on @pkey's curve. */
static EVP_PKEY *peer_from_point(EVP_PKEY *pkey, const uint8_t *point,
				 size_t len)
{
	char group[32];
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *peer = NULL;
	size_t field = (size_t)(EVP_PKEY_get_bits(pkey) + 7) / 8;

	if (len != 1 + 2 * field || point[0] != 0x04)
		return NULL;
	if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
					   group, sizeof(group), NULL) != 1)
		return NULL;
	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					    group, 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
					     point, len) != 1)
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (params == NULL || ctx == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, params) != 1)
		peer = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return peer;
}

gboolean piv_crypto_ecdh(EVP_PKEY *pkey, const uint8_t *point, size_t len,
			 GByteArray *out)
{
	EVP_PKEY *peer = peer_from_point(pkey, point, len);
	EVP_PKEY_CTX *ctx = NULL;
	size_t slen = 0;
	gboolean ok = FALSE;
	guint old = out->len;

	if (peer == NULL)
		return FALSE;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	/* derive_set_peer_ex checks the point is on the curve. */
	if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) != 1 ||
	    EVP_PKEY_derive(ctx, NULL, &slen) != 1)
		goto done;
	g_byte_array_set_size(out, old + (guint)slen);
	if (EVP_PKEY_derive(ctx, out->data + old, &slen) != 1) {
		g_byte_array_set_size(out, old);
		goto done;
	}
	g_byte_array_set_size(out, old + (guint)slen);
	ok = TRUE;
done:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(peer);
	return ok;
}

/* A key pair from OSSL_PARAMs, accepted only if it passes OpenSSL's
 * pairwise consistency check. */
static EVP_PKEY *keypair_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY_CTX *check = NULL;
	EVP_PKEY *pkey = NULL;

	if (params == NULL || ctx == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
		goto out;
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (check == NULL || EVP_PKEY_pairwise_check(check) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

EVP_PKEY *piv_crypto_import_rsa(const uint8_t *const part[5],
				const size_t part_len[5], int bits)
{
	static const char *const names[5] = {
		OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
		OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
		OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
	};
	BIGNUM *bn[5] = { NULL };
	BIGNUM *n = BN_new(), *e = BN_new(), *d = NULL, *phi = BN_new();
	BIGNUM *p1 = BN_new(), *q1 = BN_new();
	BN_CTX *bctx = BN_CTX_new();
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;
	unsigned i;

	if (n == NULL || e == NULL || phi == NULL || p1 == NULL ||
	    q1 == NULL || bctx == NULL || bld == NULL)
		goto out;
	for (i = 0; i < 5; i++) {
		bn[i] = BN_bin2bn(part[i], (int)part_len[i], NULL);
		if (bn[i] == NULL || BN_is_zero(bn[i]))
			goto out;
	}
	/* n = p q, d = e^-1 mod (p-1)(q-1): library arithmetic. */
	if (BN_set_word(e, 65537) != 1 ||
	    BN_mul(n, bn[0], bn[1], bctx) != 1 || BN_num_bits(n) != bits ||
	    BN_sub(p1, bn[0], BN_value_one()) != 1 ||
	    BN_sub(q1, bn[1], BN_value_one()) != 1 ||
	    BN_mul(phi, p1, q1, bctx) != 1)
		goto out;
	d = BN_mod_inverse(NULL, e, phi, bctx);
	if (d == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) != 1)
		goto out;
	for (i = 0; i < 5; i++)
		if (OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]) != 1)
			goto out;
	pkey = keypair_from_params("RSA", bld);
out:
	for (i = 0; i < 5; i++)
		BN_clear_free(bn[i]);
	BN_free(n);
	BN_free(e);
	BN_clear_free(d);
	BN_clear_free(phi);
	BN_clear_free(p1);
	BN_clear_free(q1);
	BN_CTX_free(bctx);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

EVP_PKEY *piv_crypto_import_ec(uint8_t alg, const uint8_t *scalar,
			       size_t len)
{
	const char *name = alg == PIV_ALG_ECC_P256 ? "prime256v1" :
			   alg == PIV_ALG_ECC_P384 ? "secp384r1" : NULL;
	int nid = alg == PIV_ALG_ECC_P256 ? NID_X9_62_prime256v1 :
		  NID_secp384r1;
	EC_GROUP *group = NULL;
	EC_POINT *pub = NULL;
	BIGNUM *priv = NULL;
	BN_CTX *bctx = BN_CTX_new();
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	EVP_PKEY *pkey = NULL;
	uint8_t point[97];
	size_t plen;

	if (name == NULL || bctx == NULL || bld == NULL)
		goto out;
	group = EC_GROUP_new_by_curve_name(nid);
	priv = BN_bin2bn(scalar, (int)len, NULL);
	if (group == NULL || priv == NULL || BN_is_zero(priv) ||
	    BN_cmp(priv, EC_GROUP_get0_order(group)) >= 0)
		goto out;
	/* The public point is the scalar times the base point. */
	pub = EC_POINT_new(group);
	if (pub == NULL ||
	    EC_POINT_mul(group, pub, priv, NULL, NULL, bctx) != 1)
		goto out;
	plen = EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED,
				  point, sizeof(point), bctx);
	if (plen == 0 ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
					    name, 0) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
					     point, plen) != 1)
		goto out;
	pkey = keypair_from_params("EC", bld);
out:
	EC_POINT_free(pub);
	EC_GROUP_free(group);
	BN_clear_free(priv);
	BN_CTX_free(bctx);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

GBytes *piv_crypto_key_to_der(EVP_PKEY *pkey)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
	unsigned char *der = NULL;
	GBytes *b = NULL;
	int len;

	if (p8 == NULL)
		return NULL;
	len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	if (len > 0)
		b = g_bytes_new(der, (gsize)len);
	OPENSSL_clear_free(der, len > 0 ? (size_t)len : 0);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return b;
}

EVP_PKEY *piv_crypto_key_from_der(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
	EVP_PKEY *pkey = NULL;

	if (p8 == NULL)
		return NULL;
	if (p == der + len)
		pkey = EVP_PKCS82PKEY(p8);
	PKCS8_PRIV_KEY_INFO_free(p8);
	return pkey;
}

gboolean piv_crypto_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}
