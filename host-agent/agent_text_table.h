/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tables `ccid-agent list`, `vms` and `list-usb` print: each column as
 * wide as its widest cell, so a long id, product name or serial pushes its
 * column out instead of the columns after it.
 */
#pragma once

#include <glib.h>

typedef struct AgentTextTable AgentTextTable;

/* @ncols cells per row (at most AGENT_TEXT_TABLE_MAX_COLS), @gap spaces
 * between columns. */
#define AGENT_TEXT_TABLE_MAX_COLS 8
AgentTextTable *agent_text_table_new(guint ncols, guint gap);
void agent_text_table_free(AgentTextTable *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AgentTextTable, agent_text_table_free)

/* Adds a row of ncols cells (const char *; NULL or "" shows as "-"), and
 * @note, if not NULL or "", on a line of its own under it, indented by
 * two spaces.  Cells that are not valid UTF-8 (text from D-Bus or a file)
 * are repaired. */
void agent_text_table_add(AgentTextTable *t, const char *note, ...);

/* The table as text, one line per row and note; the last column is not
 * padded. */
char *agent_text_table_render(const AgentTextTable *t);
