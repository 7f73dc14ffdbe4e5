/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "test_hex.h"

GByteArray *test_unhex(const char *s)
{
	GByteArray *b = g_byte_array_new();
	const char *start = s;
	int hi = -1;

	for (; *s; s++) {
		int v = g_ascii_xdigit_value(*s);

		if (v < 0)
			continue;
		if (hi < 0) {
			hi = v;
		} else {
			guint8 byte = (guint8)(hi << 4 | v);

			g_byte_array_append(b, &byte, 1);
			hi = -1;
		}
	}
	if (hi >= 0)
		g_error("odd hex string in a test table: %s", start);
	return b;
}

char *test_tohex(const guint8 *p, gsize n, const char *sep)
{
	GString *s = g_string_new(NULL);

	for (gsize i = 0; i < n; i++)
		g_string_append_printf(s, "%s%02X", i ? sep : "", p[i]);
	return g_string_free(s, FALSE);
}
