/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * JSON string literals (see agent_json.h).
 */
#include "agent_json.h"

void agent_json_append_string(GString *out, const char *s)
{
	g_autofree char *valid = NULL;

	if (s == NULL) {
		g_string_append(out, "null");
		return;
	}
	valid = g_utf8_make_valid(s, -1);
	g_string_append_c(out, '"');
	for (const char *p = valid; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		switch (c) {
		case '"':
			g_string_append(out, "\\\"");
			break;
		case '\\':
			g_string_append(out, "\\\\");
			break;
		case '\n':
			g_string_append(out, "\\n");
			break;
		case '\r':
			g_string_append(out, "\\r");
			break;
		case '\t':
			g_string_append(out, "\\t");
			break;
		default:
			if (c < 0x20 || c == 0x7F)
				g_string_append_printf(out, "\\u%04x", c);
			else
				g_string_append_c(out, (char)c);
		}
	}
	g_string_append_c(out, '"');
}

char *agent_json_error(const char *message)
{
	GString *s = g_string_new("{\"error\": ");

	agent_json_append_string(s, message);
	g_string_append_c(s, '}');
	return g_string_free(s, FALSE);
}
