/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cryptography of the virtual PIV card, all of it through OpenSSL's
 * libcrypto EVP interfaces: management-key block encryption (3DES, AES),
 * key generation, the RSA private-key operation, ECDSA, ECDH, and the
 * encodings the card stores and sends (DER private keys, the public-key
 * template of GENERATE ASYMMETRIC KEY PAIR).  No algorithm is written here.
 *
 * Functions return FALSE (or NULL) for bad input as well as for a library
 * failure; the applet answers both with a status word, never aborts.
 */
#ifndef CCID_EMU_PIV_CRYPTO_H
#define CCID_EMU_PIV_CRYPTO_H

#include <glib.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

/* Block size of a management-key algorithm (8 for 3DES, 16 for AES), 0 if
 * @alg is not one. */
size_t piv_crypto_block_len(uint8_t alg);
/* One block in ECB mode, no padding: @in and @out are block_len bytes. */
gboolean piv_crypto_block(uint8_t alg, const uint8_t *key, size_t key_len,
			  gboolean encrypt, const uint8_t *in, uint8_t *out);

/* Fills @buf with cryptographically strong random bytes. */
gboolean piv_crypto_random(uint8_t *buf, size_t len);

/* A new key pair for an asymmetric algorithm (RSA1024/2048, P-256/384). */
EVP_PKEY *piv_crypto_generate(uint8_t alg);
/* The PIV algorithm identifier of @pkey, 0 if the card cannot use it. */
uint8_t piv_crypto_key_alg(EVP_PKEY *pkey);

/* Appends the contents of the public-key template 7F49 (tags 81 82 for
 * RSA, 86 for ECC), without the 7F49 header. */
gboolean piv_crypto_public_template(EVP_PKEY *pkey, GByteArray *out);

/* The RSA private-key operation on a block of exactly the modulus length
 * (PIV sign and decrypt are both this raw operation). */
gboolean piv_crypto_rsa_raw(EVP_PKEY *pkey, const uint8_t *in, size_t len,
			    GByteArray *out);
/* ECDSA over a hash given by the host; appends the DER signature. */
gboolean piv_crypto_ecdsa(EVP_PKEY *pkey, const uint8_t *hash, size_t len,
			  GByteArray *out);
/* ECDH with the peer's uncompressed point; appends the x coordinate. */
gboolean piv_crypto_ecdh(EVP_PKEY *pkey, const uint8_t *point, size_t len,
			 GByteArray *out);

/* A private key from the parts Yubico's IMPORT KEY sends: RSA by its CRT
 * parameters (big-endian, leading zeros allowed; public exponent 65537,
 * as Yubico's import assumes) for a modulus of @bits bits; ECC by its
 * private scalar on P-256 or P-384.  NULL if the parts do not make a
 * consistent key of that size. */
EVP_PKEY *piv_crypto_import_rsa(const uint8_t *const part[5],
				const size_t part_len[5], int bits);
EVP_PKEY *piv_crypto_import_ec(uint8_t alg, const uint8_t *scalar,
			       size_t len);

/* DER encoding of a private key (PKCS#8 PrivateKeyInfo) and back. */
GBytes *piv_crypto_key_to_der(EVP_PKEY *pkey);
EVP_PKEY *piv_crypto_key_from_der(const uint8_t *der, size_t len);

/* Constant-time equality of two equal-length buffers. */
gboolean piv_crypto_equal(const uint8_t *a, const uint8_t *b, size_t len);

G_END_DECLS

#endif /* CCID_EMU_PIV_CRYPTO_H */
