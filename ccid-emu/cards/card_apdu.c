/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ISO/IEC 7816-4 §5.1 command APDU decoding.
 *
 * The body after the 4 header bytes decides the case purely from its
 * length and its first byte:
 *
 *   L = 0                      case 1
 *   L = 1                      case 2S   Ne = B1 (0 means 256)
 *   B1 != 0, L = 1 + B1        case 3S
 *   B1 != 0, L = 2 + B1        case 4S   Ne = last (0 means 256)
 *   B1 == 0, L = 3             case 2E   Ne = B2B3 (0 means 65536)
 *   B1 == 0, L = 3 + Nc        case 3E   Nc = B2B3, must be non-zero
 *   B1 == 0, L = 5 + Nc        case 4E   Ne = last two (0 means 65536)
 *
 * Anything else is malformed.
 */
#include "ccid_card_apdu.h"

#include <string.h>

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

enum ccid_apdu_parse_result ccid_apdu_parse(const uint8_t *buf, size_t len,
					    struct ccid_apdu *out)
{
	const uint8_t *body;
	size_t l;

	if (buf == NULL || len < 4)
		return CCID_APDU_ETOOSHORT;

	memset(out, 0, sizeof(*out));
	out->cla = buf[0];
	out->ins = buf[1];
	out->p1 = buf[2];
	out->p2 = buf[3];
	body = buf + 4;
	l = len - 4;

	if (l == 0) {
		out->apdu_case = CCID_APDU_CASE_1;
		return CCID_APDU_OK;
	}
	if (l == 1) {
		out->apdu_case = CCID_APDU_CASE_2S;
		out->has_le = true;
		out->ne = body[0] ? body[0] : 256u;
		return CCID_APDU_OK;
	}
	if (body[0] != 0) {
		uint32_t nc = body[0];

		out->nc = nc;
		out->data = body + 1;
		if (l == 1u + nc) {
			out->apdu_case = CCID_APDU_CASE_3S;
			return CCID_APDU_OK;
		}
		if (l == 2u + nc) {
			uint8_t le = body[l - 1];

			out->apdu_case = CCID_APDU_CASE_4S;
			out->has_le = true;
			out->ne = le ? le : 256u;
			return CCID_APDU_OK;
		}
		return CCID_APDU_EBADLENGTH;
	}

	/* Extended length: B1 is the 00 marker. */
	if (l < 3)
		return CCID_APDU_EBADLENGTH;
	if (l == 3) {
		uint32_t le = be16(body + 1);

		out->apdu_case = CCID_APDU_CASE_2E;
		out->has_le = true;
		out->ne = le ? le : 65536u;
		return CCID_APDU_OK;
	}
	out->nc = be16(body + 1);
	if (out->nc == 0)
		return CCID_APDU_EZEROLC;
	out->data = body + 3;
	if (l == 3u + out->nc) {
		out->apdu_case = CCID_APDU_CASE_3E;
		return CCID_APDU_OK;
	}
	if (l == 5u + out->nc) {
		uint32_t le = be16(body + l - 2);

		out->apdu_case = CCID_APDU_CASE_4E;
		out->has_le = true;
		out->ne = le ? le : 65536u;
		return CCID_APDU_OK;
	}
	return CCID_APDU_EBADLENGTH;
}

const char *ccid_apdu_parse_result_str(enum ccid_apdu_parse_result r)
{
	switch (r) {
	case CCID_APDU_OK:
		return "ok";
	case CCID_APDU_ETOOSHORT:
		return "APDU shorter than its 4-byte header";
	case CCID_APDU_EBADLENGTH:
		return "Lc/Le fields do not match the APDU length";
	case CCID_APDU_EZEROLC:
		return "extended Lc of zero";
	}
	return "unknown APDU parse result";
}
