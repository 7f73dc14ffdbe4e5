/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "agent_text_table.h"

#include <stdarg.h>

struct AgentTextTable {
	guint ncols;
	guint gap;
	/* Of char **: ncols cells, then the note or NULL, then NULL. */
	GPtrArray *rows;
};

AgentTextTable *agent_text_table_new(guint ncols, guint gap)
{
	AgentTextTable *t = g_new0(AgentTextTable, 1);

	g_return_val_if_fail(ncols >= 1 && ncols <= AGENT_TEXT_TABLE_MAX_COLS,
			     NULL);
	t->ncols = ncols;
	t->gap = gap;
	t->rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
	return t;
}

void agent_text_table_free(AgentTextTable *t)
{
	if (t == NULL)
		return;
	g_ptr_array_unref(t->rows);
	g_free(t);
}

static char *cell_text(const char *s)
{
	return g_utf8_make_valid(s != NULL && *s != '\0' ? s : "-", -1);
}

void agent_text_table_add(AgentTextTable *t, const char *note, ...)
{
	/* Two more slots: the note and the NULL g_strfreev() stops at, so a
	 * row without a note frees its cells only. */
	char **row = g_new0(char *, t->ncols + 2);
	va_list ap;

	va_start(ap, note);
	for (guint c = 0; c < t->ncols; c++)
		row[c] = cell_text(va_arg(ap, const char *));
	va_end(ap);
	if (note != NULL && *note != '\0')
		row[t->ncols] = g_utf8_make_valid(note, -1);
	g_ptr_array_add(t->rows, row);
}

char *agent_text_table_render(const AgentTextTable *t)
{
	glong width[AGENT_TEXT_TABLE_MAX_COLS] = { 0 };
	GString *out = g_string_new(NULL);

	for (guint r = 0; r < t->rows->len; r++) {
		char **row = t->rows->pdata[r];

		for (guint c = 0; c + 1 < t->ncols; c++)
			width[c] = MAX(width[c], g_utf8_strlen(row[c], -1));
	}
	for (guint r = 0; r < t->rows->len; r++) {
		char **row = t->rows->pdata[r];

		for (guint c = 0; c + 1 < t->ncols; c++) {
			g_string_append(out, row[c]);
			g_string_append_printf(out, "%*s", (int)(width[c] -
				g_utf8_strlen(row[c], -1) + t->gap), "");
		}
		g_string_append_printf(out, "%s\n", row[t->ncols - 1]);
		if (row[t->ncols] != NULL)
			g_string_append_printf(out, "  %s\n", row[t->ncols]);
	}
	return g_string_free(out, FALSE);
}
