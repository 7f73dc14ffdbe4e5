/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Just enough JSON to write the control socket's replies: string literals
 * with the escaping RFC 8259 §7 requires.
 */
#ifndef CCID_AGENT_JSON_H
#define CCID_AGENT_JSON_H

#include <glib.h>

G_BEGIN_DECLS

/* Appends @s as a quoted, escaped JSON string, or null for NULL.  Bytes
 * that are not valid UTF-8 are replaced by U+FFFD, so the output is always
 * valid JSON whatever a path or a peer name contains. */
void agent_json_append_string(GString *out, const char *s);

/* {"error": "MESSAGE"} */
char *agent_json_error(const char *message);

G_END_DECLS

#endif /* CCID_AGENT_JSON_H */
