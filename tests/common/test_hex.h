/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Hex strings in test-vector tables, both ways.
 */
#ifndef CCID_TEST_HEX_H
#define CCID_TEST_HEX_H

#include <glib.h>

/* The bytes of hex string @s; characters that are not hex digits (spaces,
 * '|') are skipped.  An odd number of digits is a broken table: abort. */
GByteArray *test_unhex(const char *s);

/* @n bytes as upper-case hex, @sep between two bytes. */
char *test_tohex(const guint8 *p, gsize n, const char *sep);

#endif /* CCID_TEST_HEX_H */
