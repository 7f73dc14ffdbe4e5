/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Choosing the reader of a pcsc card, and naming PC/SC errors.
 *
 * A pattern names a reader exactly or is a substring of exactly one
 * reader name.  An exact name wins even when it is also a substring of
 * others ("Reader 1" among "Reader 1" and "Reader 10"), so every reader
 * can be named.
 */
#include "ccid_pcsc_private.h"

#include <string.h>

enum ccid_pcsc_match ccid_pcsc_reader_match(const char *list, gsize len,
					    const char *pattern,
					    char **match)
{
	char *found = NULL;
	guint n_sub = 0;

	*match = NULL;
	if (pattern == NULL)
		pattern = "";
	if (list == NULL)
		return CCID_PCSC_MATCH_NONE;
	/* Each name is copied with its bound: a list whose last name has no
	 * NUL within @len is read no further. */
	for (gsize off = 0; off < len && list[off] != '\0';) {
		gsize n = strnlen(list + off, len - off);
		g_autofree char *name = g_strndup(list + off, n);

		if (strcmp(name, pattern) == 0) {
			g_free(found);
			*match = g_steal_pointer(&name);
			return CCID_PCSC_MATCH_ONE;
		}
		if (strstr(name, pattern) != NULL) {
			if (n_sub++ == 0)
				found = g_steal_pointer(&name);
		}
		off += n + 1;
	}
	if (n_sub != 1) {
		g_free(found);
		return n_sub == 0 ? CCID_PCSC_MATCH_NONE : CCID_PCSC_MATCH_MANY;
	}
	*match = found;
	return CCID_PCSC_MATCH_ONE;
}

char *ccid_pcsc_reader_list_text(const char *list, gsize len,
				 const char *only_matching)
{
	GString *s = g_string_new(NULL);

	for (gsize off = 0; list != NULL && off < len && list[off] != '\0';) {
		gsize n = strnlen(list + off, len - off);
		g_autofree char *name = g_strndup(list + off, n);

		off += n + 1;
		if (only_matching != NULL && strstr(name, only_matching) == NULL)
			continue;
		g_string_append_printf(s, "%s'%s'", s->len ? ", " : "", name);
	}
	if (s->len == 0)
		g_string_append(s, "none");
	return g_string_free(s, FALSE);
}

char *ccid_pcsc_list_readers(SCARDCONTEXT ctx, gsize *len, LONG *rv)
{
	DWORD n = 0;
	char *buf;

	/* Size, then names; a reader may come or go in between, so retry
	 * a few times on a buffer that turned out too small. */
	for (guint tries = 0; tries < 4; tries++) {
		*rv = SCardListReaders(ctx, NULL, NULL, &n);
		if (*rv != SCARD_S_SUCCESS)
			return NULL;
		buf = g_malloc0((gsize)n + 1);
		*rv = SCardListReaders(ctx, NULL, buf, &n);
		if (*rv == SCARD_S_SUCCESS) {
			*len = n;
			return buf;
		}
		g_free(buf);
		if (*rv != SCARD_E_INSUFFICIENT_BUFFER)
			return NULL;
	}
	return NULL;
}

const char *ccid_pcsc_strerror(LONG rv)
{
	switch (rv) {
	case SCARD_S_SUCCESS:
		return "success";
	case SCARD_E_CANCELLED:
		return "cancelled (SCARD_E_CANCELLED)";
	case SCARD_E_INVALID_HANDLE:
		return "invalid handle (SCARD_E_INVALID_HANDLE)";
	case SCARD_E_NO_MEMORY:
		return "out of memory (SCARD_E_NO_MEMORY)";
	case SCARD_E_INSUFFICIENT_BUFFER:
		return "response larger than the buffer "
		       "(SCARD_E_INSUFFICIENT_BUFFER)";
	case SCARD_E_UNKNOWN_READER:
		return "unknown reader (SCARD_E_UNKNOWN_READER)";
	case SCARD_E_TIMEOUT:
		return "timeout (SCARD_E_TIMEOUT)";
	case SCARD_E_SHARING_VIOLATION:
		return "card in use by another application "
		       "(SCARD_E_SHARING_VIOLATION)";
	case SCARD_E_NO_SMARTCARD:
		return "no card in the reader (SCARD_E_NO_SMARTCARD)";
	case SCARD_E_PROTO_MISMATCH:
		return "protocol mismatch (SCARD_E_PROTO_MISMATCH)";
	case SCARD_E_NOT_TRANSACTED:
		return "the reader failed the exchange "
		       "(SCARD_E_NOT_TRANSACTED)";
	case SCARD_E_READER_UNAVAILABLE:
		return "reader unavailable (SCARD_E_READER_UNAVAILABLE)";
	case SCARD_E_NO_SERVICE:
		return "pcscd is not running (SCARD_E_NO_SERVICE)";
	case SCARD_E_SERVICE_STOPPED:
		return "pcscd stopped (SCARD_E_SERVICE_STOPPED)";
	case SCARD_E_NO_READERS_AVAILABLE:
		return "no readers (SCARD_E_NO_READERS_AVAILABLE)";
	case SCARD_F_COMM_ERROR:
		return "lost the connection to pcscd (SCARD_F_COMM_ERROR)";
	case SCARD_F_INTERNAL_ERROR:
		return "pcscd internal error (SCARD_F_INTERNAL_ERROR)";
	case SCARD_W_UNRESPONSIVE_CARD:
		return "card does not answer (SCARD_W_UNRESPONSIVE_CARD)";
	case SCARD_W_UNPOWERED_CARD:
		return "card not powered (SCARD_W_UNPOWERED_CARD)";
	case SCARD_W_RESET_CARD:
		return "card reset by another application "
		       "(SCARD_W_RESET_CARD)";
	case SCARD_W_REMOVED_CARD:
		return "card removed (SCARD_W_REMOVED_CARD)";
	default:
		return "PC/SC error";
	}
}
