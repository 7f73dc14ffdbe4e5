/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The persistent contents of a virtual PIV card (NIST SP 800-73-4): PIN,
 * PUK, management key, retry counters, data objects and the private keys
 * of the key slots.  Everything here is what the store writes to disk;
 * session state (what was verified, chains, pending responses) lives in the
 * applet (ccid_piv_applet.h).
 *
 * Constants below are the values SP 800-73-4 Part 2 and the Yubico PIV
 * extensions use on the wire, so tables and test vectors can share them.
 */
#ifndef CCID_EMU_PIV_DATA_H
#define CCID_EMU_PIV_DATA_H

#include <glib.h>
#include <openssl/evp.h>
#include <stdint.h>

G_BEGIN_DECLS

/* Algorithm identifiers (SP 800-78-4 Table 6-2). */
#define PIV_ALG_3DES      0x03u
#define PIV_ALG_RSA1024   0x06u
#define PIV_ALG_RSA2048   0x07u
#define PIV_ALG_AES128    0x08u
#define PIV_ALG_AES192    0x0Au
#define PIV_ALG_AES256    0x0Cu
#define PIV_ALG_ECC_P256  0x11u
#define PIV_ALG_ECC_P384  0x14u

/* Key references (SP 800-73-4 Part 1 Table 4b). */
#define PIV_REF_PIN       0x80u
#define PIV_REF_PUK       0x81u
#define PIV_REF_MGMT      0x9Bu

/* PIN policies of a key slot (Yubico encoding, also on the wire in
 * GENERATE tag AA and GET METADATA tag 02). */
enum piv_pin_policy {
	PIV_PIN_POLICY_DEFAULT = 0,
	PIV_PIN_POLICY_NEVER = 1,
	PIV_PIN_POLICY_ONCE = 2,
	PIV_PIN_POLICY_ALWAYS = 3,
};

/* Where a slot's key came from (GET METADATA tag 03). */
enum piv_key_origin {
	PIV_ORIGIN_NONE = 0,
	PIV_ORIGIN_GENERATED = 1,
	PIV_ORIGIN_IMPORTED = 2,
};

/* Key slots: 9A, 9C, 9D, 9E and the retired-key slots 82..95. */
#define PIV_N_SLOTS 24u

struct piv_slot_info {
	uint8_t ref;                       /* key reference */
	uint32_t cert_tag;                 /* its certificate's data object */
	enum piv_pin_policy default_policy;
	const char *name;                  /* for reports */
};

/* The slot table; NULL when @ref is not a key slot. */
const struct piv_slot_info *piv_slot_by_ref(uint8_t ref);
const struct piv_slot_info *piv_slot_by_index(unsigned i);
unsigned piv_slot_index(const struct piv_slot_info *s);

struct piv_key {
	uint8_t alg;                       /* 0 = empty slot */
	enum piv_key_origin origin;
	enum piv_pin_policy pin_policy;    /* never DEFAULT once stored */
	EVP_PKEY *pkey;
};

#define PIV_PIN_LEN         8u     /* PIN and PUK, padded with 0xFF */
#define PIV_MAX_MGMT_KEY    32u
#define PIV_DEFAULT_TRIES   3u
/* Largest data object the card stores (the value inside tag 53). */
#define PIV_MAX_OBJECT      16384u

/* The defaults every new or reset card gets. */
#define PIV_DEFAULT_PIN     "123456"
#define PIV_DEFAULT_PUK     "12345678"
extern const uint8_t piv_default_mgmt_key[24];

struct piv_data {
	uint32_t serial;
	uint8_t pin[PIV_PIN_LEN];
	uint8_t pin_max, pin_left;
	uint8_t puk[PIV_PIN_LEN];
	uint8_t puk_max, puk_left;
	uint8_t mgmt_alg;
	uint8_t mgmt_key[PIV_MAX_MGMT_KEY];
	size_t mgmt_len;
	GTree *objects;                    /* GUINT_TO_POINTER(tag) -> GBytes */
	struct piv_key keys[PIV_N_SLOTS];
};

/* A card with the default PIN, PUK and management key, no objects and no
 * keys; a random serial. */
struct piv_data *piv_data_new_default(void);
/* Back to the defaults (Yubico RESET), keeping the serial. */
void piv_data_reset(struct piv_data *d);
/* Accepts NULL. */
void piv_data_free(struct piv_data *d);
typedef struct piv_data piv_data;
G_DEFINE_AUTOPTR_CLEANUP_FUNC(piv_data, piv_data_free)

/* Pads an ASCII PIN/PUK to 8 bytes with 0xFF; FALSE if longer than 8. */
gboolean piv_pin_pad(const char *text, uint8_t out[PIV_PIN_LEN]);
/* Whether @v is a well-formed padded value: 6..8 bytes, then only 0xFF. */
gboolean piv_pin_well_formed(const uint8_t v[PIV_PIN_LEN]);
/* Key length of a management-key algorithm, 0 if it is not one. */
size_t piv_mgmt_key_len(uint8_t alg);
/* Name of an algorithm identifier ("RSA2048", "ECCP256", ...) or NULL. */
const char *piv_alg_name(uint8_t alg);

G_END_DECLS

#endif /* CCID_EMU_PIV_DATA_H */
