/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's configuration file (see daemon_config.h).
 */
#include "daemon_config.h"

#include <ccid_card_pcsc.h>

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

static void reader_config_clear(gpointer p)
{
	struct daemon_reader_config *r = p;

	g_free(r->name);
}

/* One [reader NAME] group: idle= and lock_timeout= are checked by the
 * pcsc card's own spec parser (as in card=pcsc:READER,idle=,...). */
static void load_reader(struct daemon_config *cfg, GKeyFile *kf,
			const char *path, const char *group, const char *name)
{
	struct daemon_reader_config r = { 0 };
	struct ccid_card_pcsc_config pc;
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) spec = g_string_new("reader");
	g_autofree char *idle = g_key_file_get_string(kf, group, "idle", NULL);
	g_autofree char *lock = g_key_file_get_string(kf, group,
						      "lock_timeout", NULL);
	g_autofree char *parsed_reader = NULL;
	g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);

	if (name[0] == '\0') {
		add_error(cfg, "%s: [%s]: no reader name (write [reader NAME], "
			  "NAME as 'ccid-agent list' shows it after 'Shared "
			  "', or a part of it); group skipped", path, group);
		return;
	}
	for (guint i = 0; keys != NULL && keys[i] != NULL; i++)
		if (strcmp(keys[i], "idle") != 0 &&
		    strcmp(keys[i], "lock_timeout") != 0 &&
		    strcmp(keys[i], "single-session") != 0)
			add_error(cfg, "%s: [%s]: unknown key '%s' (expected "
				  "idle, lock_timeout or single-session); "
				  "ignored", path, group, keys[i]);
	if (idle != NULL)
		g_string_append_printf(spec, ",idle=%s", idle);
	if (lock != NULL)
		g_string_append_printf(spec, ",lock_timeout=%s", lock);
	if (!ccid_card_pcsc_spec_parse(spec->str, &parsed_reader, &pc,
				       &error)) {
		add_error(cfg, "%s: [%s]: %s; group skipped", path, group,
			  error->message);
		return;
	}
	if (g_key_file_has_key(kf, group, "single-session", NULL)) {
		r.single_session = g_key_file_get_boolean(kf, group,
							  "single-session",
							  &error);
		if (error != NULL) {
			add_error(cfg, "%s: [%s] single-session: %s (write "
				  "true or false); group skipped", path, group,
				  error->message);
			return;
		}
	}
	r.name = g_strdup(name);
	r.idle_ms = pc.idle_ms;
	r.lock_timeout_ms = pc.lock_timeout_ms;
	g_array_append_val(cfg->readers, r);
}

const struct daemon_reader_config *daemon_config_find_reader(
	const struct daemon_config *cfg, const char *name)
{
	const struct daemon_reader_config *part = NULL;

	for (guint i = 0; cfg->readers != NULL && i < cfg->readers->len; i++) {
		const struct daemon_reader_config *r = &g_array_index(
			cfg->readers, struct daemon_reader_config, i);

		if (strcmp(r->name, name) == 0)
			return r;
		if (part == NULL && strstr(name, r->name) != NULL)
			part = r;
	}
	return part;
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
	cfg->readers = g_array_new(FALSE, TRUE,
				   sizeof(struct daemon_reader_config));
	g_array_set_clear_func(cfg->readers, reader_config_clear);
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
		if (g_str_has_prefix(groups[i], "reader ")) {
			load_reader(cfg, kf, path, groups[i],
				    groups[i] + strlen("reader "));
			continue;
		}
		add_error(cfg, "%s: unknown group [%s] (expected [entry ID]); "
			  "ignored", path, groups[i]);
	}
}

void daemon_config_clear(struct daemon_config *cfg)
{
	g_clear_pointer(&cfg->entries, g_array_unref);
	g_clear_pointer(&cfg->readers, g_array_unref);
	g_clear_pointer(&cfg->errors, g_ptr_array_unref);
}
