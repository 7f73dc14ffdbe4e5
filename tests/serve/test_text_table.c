/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tables `ccid-agent list`, `vms` and `list-usb` print
 * (host-agent/agent_text_table.c): columns as wide as their widest cell,
 * whatever the cells hold.
 */
#include <check.h>
#include <stdlib.h>

#include <glib.h>

#include "agent_text_table.h"

/* A USB reader's id is longer than any heading: its column widens and the
 * columns after it stay aligned; an empty cell shows as "-"; the last
 * column is not padded; a note goes under its row. */
START_TEST(test_long_cell_widens_its_column)
{
	g_autoptr(AgentTextTable) t = agent_text_table_new(3, 1);
	g_autofree char *text = NULL;

	agent_text_table_add(t, NULL, "ID", "STATE", "LABEL");
	agent_text_table_add(t, NULL, "virtual", "card-present", "Virtual");
	agent_text_table_add(t, "reason: not connected",
			     "usb-1050-0407-0123456789ab", "unavailable", "");
	text = agent_text_table_render(t);
	ck_assert_str_eq(text,
		"ID                         STATE        LABEL\n"
		"virtual                    card-present Virtual\n"
		"usb-1050-0407-0123456789ab unavailable  -\n"
		"  reason: not connected\n");
}
END_TEST

/* Widths count characters, not bytes: "Lecteur à puce" is 14 characters
 * in 15 bytes.  A cell that is not UTF-8 is repaired, not
 * printed raw to the terminal. */
START_TEST(test_utf8_widths_and_invalid_bytes)
{
	g_autoptr(AgentTextTable) t = agent_text_table_new(3, 2);
	g_autofree char *text = NULL;

	agent_text_table_add(t, NULL, "PRODUCT", "SERIAL", "HELD BY");
	agent_text_table_add(t, NULL, "Lecteur \xc3\xa0 puce", "1", NULL);
	agent_text_table_add(t, NULL, "bad \xff", "22", "pcscd");
	text = agent_text_table_render(t);
	ck_assert(g_utf8_validate(text, -1, NULL));
	ck_assert_str_eq(text,
		"PRODUCT         SERIAL  HELD BY\n"
		"Lecteur \xc3\xa0 puce  1       -\n"
		"bad \xef\xbf\xbd           22      pcscd\n");
}
END_TEST

START_TEST(test_empty_table_and_free_null)
{
	g_autoptr(AgentTextTable) t = agent_text_table_new(2, 1);
	g_autofree char *text = agent_text_table_render(t);

	ck_assert_str_eq(text, "");
	agent_text_table_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("text table");
	TCase *tc = tcase_create("render");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_long_cell_widens_its_column);
	tcase_add_test(tc, test_utf8_widths_and_invalid_bytes);
	tcase_add_test(tc, test_empty_table_and_free_null);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
