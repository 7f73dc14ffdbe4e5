/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: command APDUs from the input go straight into the virtual
 * PIV card's applet (ccid_piv_applet.h), on a default card with no store.
 * Invariants: every answer is 2..PIV_APPLET_RESP_CAP bytes; a 61xx answer
 * announces what GET RESPONSE then delivers; the retry counters never go
 * up except through a right PIN/PUK, RESET RETRY COUNTER, SET PIN RETRIES
 * or RESET (they are checked not to exceed their maximum); nothing
 * crashes, leaks or reads out of bounds (ASan/UBSan builds).
 *
 * Input: 1 flags byte (bit 0: authenticate with the default management
 * key first, bit 1: VERIFY the default PIN first), then records of
 * { length (2 bytes, big-endian, at most 4096), APDU }.  A length of
 * 0xF000 or more is a repeat mark: the next record is sent 2 + 4 * (its
 * low 6 bits) times, so a short input can chain far more command data
 * than one input holds (the chain and object size limits).  RSA key
 * generation (GENERATE with algorithm 06 or 07) is skipped: at a tenth of
 * a second each it would only slow the fuzzer down.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "ccid_piv_applet.h"
#include "fuzz_harness.h"

#define PF_MAX_RECORDS 64u
#define PF_MAX_APDU    4096u
#define PF_REPEAT_MARK 0xF000u

static uint8_t *pf_resp;

static size_t pf_xfer(piv_applet *a, const uint8_t *apdu, size_t len)
{
	size_t n = piv_applet_process(a, apdu, len, pf_resp);
	const struct piv_data *d = piv_applet_get_data(a);

	if (n < 2 || n > PIV_APPLET_RESP_CAP)
		abort();
	if (d->pin_left > d->pin_max || d->puk_left > d->puk_max)
		abort();
	return n;
}

/* Host side of mutual authentication with the default 3DES key. */
static void pf_mgmt_auth(piv_applet *a)
{
	static const uint8_t ask[] = { 0x00, 0x87, 0x03, 0x9B, 0x04, 0x7C, 0x02,
				       0x80, 0x00 };
	uint8_t step2[5 + 22] = { 0x00, 0x87, 0x03, 0x9B, 22, 0x7C, 20, 0x80, 8 };
	EVP_CIPHER_CTX *ctx;
	size_t n = pf_xfer(a, ask, sizeof(ask));
	int out = 0;

	if (n != 14)
		abort();
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL ||
	    EVP_DecryptInit_ex2(ctx, EVP_des_ede3_ecb(), piv_default_mgmt_key,
				NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(ctx, 0) != 1 ||
	    EVP_DecryptUpdate(ctx, step2 + 9, &out, pf_resp + 4, 8) != 1)
		abort();
	EVP_CIPHER_CTX_free(ctx);
	step2[17] = 0x81;
	step2[18] = 8;
	memset(step2 + 19, 0x33, 8);
	n = pf_xfer(a, step2, sizeof(step2));
	if (n != 14 || pf_resp[n - 2] != 0x90)
		abort();
}

static bool pf_is_rsa_keygen(const uint8_t *apdu, size_t len)
{
	if (len < 5 || apdu[1] != 0x47)
		return false;
	for (size_t i = 5; i + 2 < len; i++)
		if (apdu[i] == 0x80 && apdu[i + 1] == 0x01 &&
		    (apdu[i + 2] == 0x06 || apdu[i + 2] == 0x07))
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t verify[] = { 0x00, 0x20, 0x00, 0x80, 0x08, '1',
					  '2', '3', '4', '5', '6', 0xFF, 0xFF };
	static const uint8_t get_response[] = { 0x00, 0xC0, 0x00, 0x00, 0x00 };
	piv_applet *a;
	size_t off = 1;

	if (size < 1)
		return 0;
	if (pf_resp == NULL)
		pf_resp = malloc(PIV_APPLET_RESP_CAP);
	a = piv_applet_new(piv_data_new_default(), NULL, NULL);
	if (data[0] & 1)
		pf_mgmt_auth(a);
	if (data[0] & 2)
		pf_xfer(a, verify, sizeof(verify));
	for (unsigned r = 0; r < PF_MAX_RECORDS && off + 2 <= size; r++) {
		size_t len = (size_t)data[off] << 8 | data[off + 1];
		unsigned repeat = 1;
		size_t n;

		off += 2;
		if (len >= PF_REPEAT_MARK) {
			repeat = 2 + 4 * (unsigned)(len & 0x3f);
			if (off + 2 > size)
				break;
			len = (size_t)data[off] << 8 | data[off + 1];
			off += 2;
		}
		if (len > PF_MAX_APDU || len > size - off)
			len = size - off < PF_MAX_APDU ? size - off : PF_MAX_APDU;
		for (unsigned k = 0; k < repeat && !pf_is_rsa_keygen(data + off, len);
		     k++) {
			n = pf_xfer(a, data + off, len);
			/* 61 xx: GET RESPONSE must have something to give. */
			if (pf_resp[n - 2] == 0x61) {
				n = pf_xfer(a, get_response, sizeof(get_response));
				if (pf_resp[n - 2] == 0x69 && pf_resp[n - 1] == 0x85)
					abort();
			}
		}
		off += len;
	}
	piv_applet_free(a);
	return 0;
}
