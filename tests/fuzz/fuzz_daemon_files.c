/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_daemon_files: the files the daemon reads at start, agent.conf
 * (daemon_config.c, which parses each entry's card= with the card-spec
 * parser of agent_card_kinds.c) and vms.conf (daemon_state.c), from any
 * bytes.
 *
 * Input: byte 0 & 1 picks the file (0 agent.conf, 1 vms.conf); the rest is
 * its text.
 *
 * Checks: agent.conf: entry [0] is always the built-in "virtual" one, ids
 * are 1..64 of [A-Za-z0-9._-] and unique, every entry has a label, and
 * every problem is an error message naming the file.  vms.conf: every VM
 * has a non-empty name, a qmp=unix:PATH or libvirt:URI (a libvirt
 * domain, remembered since the daemon found domains) and an entry list; saving what was
 * loaded and loading it again gives the same VMs (a round trip the daemon
 * does at each change).
 */
#include <string.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "daemon_config.h"
#include "daemon_state.h"
#include "fuzz_harness.h"

static char *dir, *path, *path2;

static void check_config(const char *file)
{
	struct daemon_config cfg = { 0 };

	daemon_config_load(&cfg, file);
	FZ_CHECK(cfg.entries->len >= 1, "no built-in entry");
	FZ_CHECK(strcmp(g_array_index(cfg.entries, struct daemon_entry_config, 0).id,
			"virtual") == 0, "entry [0] is not the built-in one");
	for (guint i = 0; i < cfg.entries->len; i++) {
		struct daemon_entry_config *e =
			&g_array_index(cfg.entries, struct daemon_entry_config, i);
		size_t n = strlen(e->id);

		FZ_CHECK(n >= 1 && n <= 64, "id of %zu bytes", n);
		FZ_CHECK(strspn(e->id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"0123456789._-") == n, "id '%s'", e->id);
		FZ_CHECK(e->label != NULL, "entry %s without a label", e->id);
		for (guint k = 0; k < i; k++)
			FZ_CHECK(strcmp(g_array_index(cfg.entries,
				struct daemon_entry_config, k).id, e->id) != 0,
				"id %s twice", e->id);
	}
	for (guint i = 0; i < cfg.errors->len; i++)
		FZ_CHECK(g_str_has_prefix(g_ptr_array_index(cfg.errors, i), file),
			 "error without the file name: %s",
			 (const char *)g_ptr_array_index(cfg.errors, i));
	daemon_config_clear(&cfg);
}

static void check_state(void)
{
	g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GArray) vms = daemon_state_load(path, errors);
	g_autoptr(GArray) again = NULL;
	g_autoptr(GError) error = NULL;

	for (guint i = 0; i < vms->len; i++) {
		struct daemon_state_vm *v = &g_array_index(vms, struct daemon_state_vm, i);

		FZ_CHECK(v->name != NULL && v->name[0] != '\0', "VM without a name");
		FZ_CHECK(v->qmp != NULL && (g_str_has_prefix(v->qmp, "unix:") ||
					    g_str_has_prefix(v->qmp, "libvirt:")),
			 "VM %s: qmp %s", v->name, v->qmp);
		FZ_CHECK(v->entries != NULL, "VM %s: no entry list", v->name);
	}
	FZ_CHECK(daemon_state_save(path2, vms, &error), "save: %s", error->message);
	again = daemon_state_load(path2, errors);
	FZ_CHECK(again->len == vms->len, "%u VMs saved, %u loaded back", vms->len,
		 again->len);
	for (guint i = 0; i < vms->len; i++) {
		struct daemon_state_vm *a = &g_array_index(vms, struct daemon_state_vm, i);
		struct daemon_state_vm *b = &g_array_index(again, struct daemon_state_vm, i);

		FZ_CHECK(strcmp(a->name, b->name) == 0, "name %s came back as %s",
			 a->name, b->name);
		FZ_CHECK(strcmp(a->qmp, b->qmp) == 0, "qmp %s came back as %s",
			 a->qmp, b->qmp);
		FZ_CHECK(g_strv_equal((const char *const *)a->entries,
				      (const char *const *)b->entries),
			 "VM %s: entries changed in the round trip", a->name);
	}
}

static void quiet_log(const gchar *domain, GLogLevelFlags level,
		      const gchar *msg, gpointer user)
{
	fz_trace("  glib: %s", msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GError) error = NULL;

	g_log_set_default_handler(quiet_log, NULL);
	if (dir == NULL) {
		/* On tmpfs when there is one: the daemon saves with fsync. */
		dir = g_strdup(fz_scratch_dir("fuzz-files"));
		path = g_build_filename(dir, "in.conf", NULL);
		path2 = g_build_filename(dir, "out.conf", NULL);
	}
	if (size < 1)
		return 0;
	FZ_CHECK(g_file_set_contents(path, (const char *)data + 1,
				     (gssize)size - 1, &error),
		 "write: %s", error->message);
	if (data[0] & 1)
		check_state();
	else
		check_config(path);
	return 0;
}
