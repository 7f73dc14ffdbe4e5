/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's configuration file (see daemon_config.h).
 */
#include "daemon_config.h"

#include "agent_cards.h"

#include <string.h>

#define DEFAULT_ENTRY_ID "virtual"
#define DEFAULT_ENTRY_LABEL "Virtual CAC card (ccid-emu)"

char *daemon_config_default_path(void)
{
	return g_build_filename(g_get_user_config_dir(), "ccid-emu",
				"agent.conf", NULL);
}

static void add_error(struct daemon_config *cfg, const char *fmt, ...)
	G_GNUC_PRINTF(2, 3);

static void add_error(struct daemon_config *cfg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_ptr_array_add(cfg->errors, g_strdup_vprintf(fmt, ap));
	va_end(ap);
}

static void entry_config_clear(gpointer p)
{
	struct daemon_entry_config *e = p;

	g_free(e->id);
	g_free(e->label);
	agent_card_spec_clear(&e->spec);
}

static gboolean valid_id(const char *id)
{
	if (id[0] == '\0' || strlen(id) > 64)
		return FALSE;
	for (const char *p = id; *p != '\0'; p++)
		if (!g_ascii_isalnum(*p) && *p != '-' && *p != '_' && *p != '.')
			return FALSE;
	return TRUE;
}

static struct daemon_entry_config *find_entry(struct daemon_config *cfg,
					      const char *id)
{
	for (guint i = 0; i < cfg->entries->len; i++) {
		struct daemon_entry_config *e = &g_array_index(cfg->entries,
			struct daemon_entry_config, i);

		if (strcmp(e->id, id) == 0)
			return e;
	}
	return NULL;
}

/* One [entry ID] group. */
static void load_entry(struct daemon_config *cfg, GKeyFile *kf,
		       const char *path, const char *group, const char *id)
{
	struct daemon_entry_config *e = find_entry(cfg, id);
	struct daemon_entry_config fresh = { 0 };
	g_autoptr(GError) error = NULL;
	g_autofree char *card = NULL;
	g_autofree char *label = NULL;
	gboolean single = FALSE;

	if (!valid_id(id)) {
		add_error(cfg, "%s: [%s]: the id '%s' may only use letters, "
			  "digits, '-', '_' and '.' (1 to 64); entry skipped",
			  path, group, id);
		return;
	}
	if (g_key_file_has_key(kf, group, "single-session", NULL)) {
		single = g_key_file_get_boolean(kf, group, "single-session",
						&error);
		if (error != NULL) {
			add_error(cfg, "%s: [%s] single-session: %s (write "
				  "true or false); entry skipped", path, group,
				  error->message);
			return;
		}
	}
	label = g_key_file_get_string(kf, group, "label", NULL);
	card = g_key_file_get_string(kf, group, "card", NULL);
	if (e != NULL) {
		/* The built-in entry: only its policy and label change. */
		if (card != NULL)
			add_error(cfg, "%s: [%s]: the built-in entry '%s' "
				  "keeps its card; 'card=' ignored (add an "
				  "entry with another id instead)", path,
				  group, id);
		e->single_session = single;
		if (label != NULL) {
			g_free(e->label);
			e->label = g_steal_pointer(&label);
		}
		return;
	}
	if (card == NULL) {
		add_error(cfg, "%s: [%s]: no 'card=' key (e.g. card=loopback "
			  "or card=virtual:/path/to/nssdb); entry skipped",
			  path, group);
		return;
	}
	if (!agent_card_spec_parse(card, &fresh.spec, &error)) {
		add_error(cfg, "%s: [%s] card: %s; entry skipped", path, group,
			  error->message);
		return;
	}
	fresh.id = g_strdup(id);
	fresh.label = label != NULL ? g_steal_pointer(&label) :
		      g_strdup_printf("%s card '%s'",
				      agent_card_kind_name(fresh.spec.kind),
				      id);
	fresh.single_session = single;
	g_array_append_val(cfg->entries, fresh);
}

void daemon_config_load(struct daemon_config *cfg, const char *path)
{
	struct daemon_entry_config def = { 0 };
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) groups = NULL;

	cfg->entries = g_array_new(FALSE, TRUE,
				   sizeof(struct daemon_entry_config));
	g_array_set_clear_func(cfg->entries, entry_config_clear);
	cfg->errors = g_ptr_array_new_with_free_func(g_free);
	def.id = g_strdup(DEFAULT_ENTRY_ID);
	def.label = g_strdup(DEFAULT_ENTRY_LABEL);
	def.spec.kind = AGENT_CARD_VIRTUAL;
	g_array_append_val(cfg->entries, def);

	if (path == NULL)
		return;
	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &error)) {
		if (g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			return;
		add_error(cfg, "%s: %s; using the defaults (only the built-in "
			  "virtual card): fix or remove the file", path,
			  error->message);
		return;
	}
	groups = g_key_file_get_groups(kf, NULL);
	for (guint i = 0; groups[i] != NULL; i++) {
		if (g_str_has_prefix(groups[i], "entry ")) {
			load_entry(cfg, kf, path, groups[i],
				   groups[i] + strlen("entry "));
			continue;
		}
		add_error(cfg, "%s: unknown group [%s] (expected [entry ID]); "
			  "ignored", path, groups[i]);
	}
}

void daemon_config_clear(struct daemon_config *cfg)
{
	g_clear_pointer(&cfg->entries, g_array_unref);
	g_clear_pointer(&cfg->errors, g_ptr_array_unref);
}
