/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "menu_states.h"

/* Indexed by MenuCardState.  The icons differ in shape, not only colour
 * (icons/README in docs/menu.md): a card with a chip, an empty slot, a
 * card struck through. */
static const MenuCardStateInfo card_states[] = {
	[MENU_CARD_PRESENT] = { "card-present", "ccid-emu-card-present",
				"ccid-emu-card-present-symbolic",
				"card present" },
	[MENU_CARD_NONE] = { "no-card", "ccid-emu-no-card",
			     "ccid-emu-no-card-symbolic", "no card" },
	[MENU_CARD_UNAVAILABLE] = { "unavailable", "ccid-emu-unavailable",
				    "ccid-emu-unavailable-symbolic",
				    "unavailable" },
};

const MenuCardStateInfo *menu_card_state_info(MenuCardState state)
{
	if ((unsigned)state >= G_N_ELEMENTS(card_states))
		state = MENU_CARD_UNAVAILABLE;
	return &card_states[state];
}

MenuCardState menu_card_state_from_daemon(const char *state)
{
	for (guint i = 0; i < G_N_ELEMENTS(card_states); i++)
		if (g_strcmp0(card_states[i].daemon_state, state) == 0)
			return (MenuCardState)i;
	return MENU_CARD_UNAVAILABLE;
}

MenuItemInfo *menu_item_from_entry(const MenuEntryFacts *e, const char *vm,
				   gboolean vm_usable, gboolean pending)
{
	MenuItemInfo *it = g_new0(MenuItemInfo, 1);
	gboolean held_elsewhere;

	it->entry_id = g_strdup(e->id);
	it->label = g_strdup(e->label != NULL && e->label[0] != '\0' ?
			     e->label : e->id);
	it->state = menu_card_state_from_daemon(e->state);
	it->connected = e->holders != NULL && g_strv_contains(e->holders, vm);
	it->pending = pending;
	held_elsewhere = !it->connected && e->single_session &&
			 e->holders != NULL && e->holders[0] != NULL;

	if (it->state == MENU_CARD_UNAVAILABLE) {
		if (e->reason != NULL && e->reason[0] != '\0')
			it->detail = g_strdup(e->reason);
	} else if (held_elsewhere) {
		it->state = MENU_CARD_UNAVAILABLE;
		it->detail = g_strdup_printf("in use by VM %s", e->holders[0]);
	}
	it->sensitive = !pending &&
		(it->connected ||
		 (it->state != MENU_CARD_UNAVAILABLE && vm_usable));
	return it;
}

void menu_item_info_free(MenuItemInfo *item)
{
	if (item == NULL)
		return;
	g_free(item->entry_id);
	g_free(item->label);
	g_free(item->detail);
	g_free(item);
}

void menu_section_info_free(MenuSectionInfo *section)
{
	if (section == NULL)
		return;
	g_free(section->vm);
	g_free(section->vm_state);
	g_clear_pointer(&section->items, g_ptr_array_unref);
	g_free(section);
}

char *menu_item_accessible_name(const MenuItemInfo *item)
{
	GString *s = g_string_new(item->label);

	g_string_append_printf(s, ", %s",
			       menu_card_state_info(item->state)->words);
	if (item->detail != NULL && item->detail[0] != '\0')
		g_string_append_printf(s, ", %s", item->detail);
	if (item->connected)
		g_string_append(s, ", connected");
	if (item->pending)
		g_string_append(s, ", working");
	return g_string_free(s, FALSE);
}

/* Longer holder or reason texts are cut on screen (the accessible name
 * and the tooltip keep them whole). */
#define DETAIL_SHOWN_CHARS 48

char *menu_item_display_label(const MenuItemInfo *item)
{
	g_autofree char *cut = NULL;

	if (item->detail == NULL || item->detail[0] == '\0')
		return g_strdup(item->label);
	if (g_utf8_strlen(item->detail, -1) > DETAIL_SHOWN_CHARS) {
		g_autofree char *head = g_utf8_substring(item->detail, 0,
							  DETAIL_SHOWN_CHARS - 1);
		cut = g_strconcat(head, "\u2026", NULL);
	}
	return g_strdup_printf("%s (%s)", item->label,
			       cut != NULL ? cut : item->detail);
}

char *menu_section_title(const MenuSectionInfo *section)
{
	if (g_strcmp0(section->vm_state, "running") == 0)
		return g_strdup(section->vm);
	return g_strdup_printf("%s (%s)", section->vm, section->vm_state);
}
