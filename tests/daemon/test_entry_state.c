/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The State and Reason of a passthrough entry (daemon_entry.c) as the
 * facts about its reader arrive: USB (plugged, holders) and pcscd's view
 * of the card.  A reader pcscd never reported has no known card: it must
 * not claim one (issue 9: State is card-present, no-card or unavailable;
 * the nuance is in Reason).  Each row is a sequence of facts and what the
 * entry shows after the last one.
 */
#include "daemon_entry.h"
#include "daemon_usb.h"

#include <check.h>
#include <string.h>

enum fact {
	END,
	USB_UNPLUGGED,       /* daemon_entry_set_usb(NULL) */
	USB_PLUGGED,         /* daemon_entry_set_usb("1-2"), no holder */
	USB_HELD,            /* held by a host process other than pcscd */
	USB_HELD_BY_PCSCD,   /* pcscd alone: no obstacle */
	PCSC_CARD,           /* pcscd: connected, a card in */
	PCSC_EMPTY,          /* pcscd: connected, no card */
	PCSC_GONE,           /* pcscd: not connected */
};

struct state_vector {
	const char *name;
	enum fact facts[6];
	const char *state;
	const char *reason;      /* a substring; "" = empty */
};

static const struct state_vector vectors[] = {
	{ "plugged, pcscd never reported it", { USB_PLUGGED, END },
	  "no-card", "card state unknown: pcscd has not reported" },
	{ "held by pcscd only, not reported yet",
	  { USB_HELD_BY_PCSCD, END },
	  "no-card", "card state unknown" },
	{ "pcscd reports a card", { USB_PLUGGED, PCSC_CARD, END },
	  "card-present", "" },
	{ "pcscd reports no card", { USB_PLUGGED, PCSC_EMPTY, END },
	  "no-card", "" },
	{ "card pulled out", { USB_PLUGGED, PCSC_CARD, PCSC_EMPTY, END },
	  "no-card", "" },
	{ "unplugged", { USB_PLUGGED, USB_UNPLUGGED, END },
	  "unavailable", "the reader is unplugged" },
	{ "held by another process", { USB_HELD, END },
	  "unavailable", "held by host process gpg-agent (pid 4242)" },
	{ "pcscd gone after a report: the last card seen",
	  { USB_PLUGGED, PCSC_CARD, PCSC_GONE, END },
	  "no-card", "" },
};

static void apply(daemon_entry *e, enum fact f)
{
	g_autoptr(GArray) holders = g_array_new(FALSE, FALSE,
		sizeof(struct daemon_usb_holder));
	struct daemon_usb_holder h = { 0 };

	switch (f) {
	case USB_UNPLUGGED:
		daemon_entry_set_usb(e, NULL, NULL);
		break;
	case USB_PLUGGED:
		daemon_entry_set_usb(e, "1-2", NULL);
		break;
	case USB_HELD:
	case USB_HELD_BY_PCSCD:
		h.name = (char *)(f == USB_HELD ? "gpg-agent" : "pcscd");
		h.pid = f == USB_HELD ? 4242 : 812;
		g_array_append_val(holders, h);
		daemon_entry_set_usb(e, "1-2", holders);
		break;
	case PCSC_CARD:
		daemon_entry_set_reader(e, TRUE, TRUE, "3B8801");
		break;
	case PCSC_EMPTY:
		daemon_entry_set_reader(e, TRUE, FALSE, NULL);
		break;
	case PCSC_GONE:
		daemon_entry_set_reader(e, FALSE, FALSE, NULL);
		break;
	case END:
		break;
	}
}

START_TEST(test_passthrough_state)
{
	const struct state_vector *v = &vectors[_i];
	static const struct daemon_entry_callbacks cbs = { 0 };
	daemon_entry *e = daemon_entry_new_passthrough("usb-1234-5678-S1",
						       "Test Reader", &cbs,
						       NULL);
	const char *reason;

	for (guint i = 0; v->facts[i] != END; i++)
		apply(e, v->facts[i]);
	reason = daemon_entry_get_reason(e);
	ck_assert_msg(strcmp(daemon_entry_get_state(e), v->state) == 0,
		      "%s: state %s, want %s", v->name,
		      daemon_entry_get_state(e), v->state);
	if (v->reason[0] == '\0')
		ck_assert_msg(reason[0] == '\0', "%s: reason '%s', want none",
			      v->name, reason);
	else
		ck_assert_msg(strstr(reason, v->reason) != NULL,
			      "%s: reason '%s', want '%s'", v->name, reason,
			      v->reason);
	daemon_entry_free(e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon entry state");
	TCase *tc = tcase_create("passthrough");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_passthrough_state, 0,
			    G_N_ELEMENTS(vectors));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
