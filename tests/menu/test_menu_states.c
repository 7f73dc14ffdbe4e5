/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What ccid-menu shows for an entry in one VM's submenu
 * (host-agent/menu/menu_states.c), from the daemon's Entry properties:
 * state, check mark, greyed, holder text, accessible name, label on
 * screen.  One table of cases.
 */
#include "menu_states.h"

#include <check.h>
#include <stdlib.h>

static const char *const none[] = { NULL };
static const char *const vm1[] = { "vm1", NULL };
static const char *const win11[] = { "win11", NULL };
static const char *const both[] = { "win11", "vm1", NULL };

static const struct {
	const char *what;
	MenuEntryFacts entry;
	const char *vm;
	gboolean vm_usable, pending;
	/* expected */
	MenuCardState state;
	gboolean connected, sensitive;
	const char *accessible;
	const char *shown;
} cases[] = {
	{ "free, card present",
	  { "virtual", "Virtual CAC card (ccid-emu)", "card-present", "", none, FALSE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_PRESENT, FALSE, TRUE,
	  "Virtual CAC card (ccid-emu), card present",
	  "Virtual CAC card (ccid-emu)" },
	{ "connected here, card pulled out",
	  { "virtual", "Virtual CAC card (ccid-emu)", "no-card", "", vm1, FALSE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_NONE, TRUE, TRUE,
	  "Virtual CAC card (ccid-emu), no card, connected",
	  "Virtual CAC card (ccid-emu)" },
	{ "single-session, held by another VM",
	  { "lab", "Lab test card", "card-present", "", win11, TRUE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_UNAVAILABLE, FALSE, FALSE,
	  "Lab test card, unavailable, in use by VM win11",
	  "Lab test card (in use by VM win11)" },
	{ "shared (not single-session), held by another VM",
	  { "lab", "Lab test card", "card-present", "", win11, FALSE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_PRESENT, FALSE, TRUE,
	  "Lab test card, card present", "Lab test card" },
	{ "held by two VMs, seen from one of them",
	  { "lab", "Lab test card", "card-present", "", both, FALSE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_PRESENT, TRUE, TRUE,
	  "Lab test card, card present, connected", "Lab test card" },
	{ "unavailable with the daemon's reason",
	  { "host", "Shared reader", "unavailable", "pcscd is not running", none, FALSE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_UNAVAILABLE, FALSE, FALSE,
	  "Shared reader, unavailable, pcscd is not running",
	  "Shared reader (pcscd is not running)" },
	{ "unavailable but connected: can still be disconnected",
	  { "host", "Shared reader", "unavailable", "reader gone", vm1, FALSE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_UNAVAILABLE, TRUE, TRUE,
	  "Shared reader, unavailable, reader gone, connected",
	  "Shared reader (reader gone)" },
	{ "a VM that is gone takes nothing",
	  { "virtual", "Virtual", "card-present", "", none, FALSE },
	  "vm1", FALSE, FALSE,
	  MENU_CARD_PRESENT, FALSE, FALSE,
	  "Virtual, card present", "Virtual" },
	{ "our own attach under way",
	  { "virtual", "Virtual", "card-present", "", vm1, FALSE },
	  "vm1", TRUE, TRUE,
	  MENU_CARD_PRESENT, TRUE, FALSE,
	  "Virtual, card present, connected, working", "Virtual" },
	{ "no label: the id",
	  { "solo", "", "no-card", "", none, FALSE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_NONE, FALSE, TRUE, "solo, no card", "solo" },
	{ "a state this menu does not know is unavailable",
	  { "x", "X", "exploded", "", NULL, FALSE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_UNAVAILABLE, FALSE, FALSE, "X, unavailable", "X" },
	{ "a long reason is cut on screen, whole in the accessible name",
	  { "h", "R", "unavailable",
	    "the pcsc card: pcscd is not running (no PC/SC service at /run/pcscd/pcscd.comm)",
	    none, FALSE },
	  "vm1", TRUE, FALSE,
	  MENU_CARD_UNAVAILABLE, FALSE, FALSE,
	  "R, unavailable, the pcsc card: pcscd is not running (no PC/SC service at /run/pcscd/pcscd.comm)",
	  "R (the pcsc card: pcscd is not running (no PC/SC s\u2026)" },
};

START_TEST(test_item_from_entry)
{
	MenuItemInfo *it = menu_item_from_entry(&cases[_i].entry, cases[_i].vm,
						cases[_i].vm_usable,
						cases[_i].pending);
	char *name = menu_item_accessible_name(it);
	char *shown = menu_item_display_label(it);

	ck_assert_msg(it->state == cases[_i].state, "%s: state %d",
		      cases[_i].what, it->state);
	ck_assert_msg(it->connected == cases[_i].connected, "%s: connected",
		      cases[_i].what);
	ck_assert_msg(it->sensitive == cases[_i].sensitive, "%s: sensitive",
		      cases[_i].what);
	ck_assert_str_eq(name, cases[_i].accessible);
	ck_assert_str_eq(shown, cases[_i].shown);
	g_free(name);
	g_free(shown);
	menu_item_info_free(it);
}
END_TEST

/* Every state has its own icon and symbolic icon, and the daemon's words
 * map back to it. */
START_TEST(test_state_table)
{
	const MenuCardState all[] = { MENU_CARD_PRESENT, MENU_CARD_NONE,
				      MENU_CARD_UNAVAILABLE };

	for (guint i = 0; i < G_N_ELEMENTS(all); i++) {
		const MenuCardStateInfo *a = menu_card_state_info(all[i]);

		ck_assert(menu_card_state_from_daemon(a->daemon_state) == all[i]);
		ck_assert(g_str_has_suffix(a->symbolic, "-symbolic"));
		ck_assert(g_str_has_prefix(a->symbolic, a->icon));
		for (guint j = 0; j < i; j++)
			ck_assert_str_ne(a->icon, menu_card_state_info(all[j])->icon);
	}
	ck_assert(menu_card_state_info((MenuCardState)99) ==
		  menu_card_state_info(MENU_CARD_UNAVAILABLE));
	menu_item_info_free(NULL);
	menu_section_info_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("menu_states");
	TCase *tc = tcase_create("items");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_item_from_entry, 0, G_N_ELEMENTS(cases));
	tcase_add_test(tc, test_state_table);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
