/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's remembered VMs and attachments (see daemon_state.h).
 */
#include "daemon_state.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#define STATE_GROUP_PREFIX "vm "

char *daemon_state_default_path(void)
{
	return g_build_filename(g_get_user_config_dir(), "ccid-emu",
				"vms.conf", NULL);
}

static void state_vm_clear(gpointer p)
{
	struct daemon_state_vm *v = p;

	g_free(v->name);
	g_free(v->qmp);
	g_strfreev(v->entries);
}

GArray *daemon_state_load(const char *path, GPtrArray *errors)
{
	GArray *vms = g_array_new(FALSE, TRUE, sizeof(struct daemon_state_vm));
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) groups = NULL;

	g_array_set_clear_func(vms, state_vm_clear);
	if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &error)) {
		if (!g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			g_ptr_array_add(errors, g_strdup_printf(
				"%s: %s; no VM remembered (the file is "
				"rewritten at the next change)", path,
				error->message));
		return vms;
	}
	groups = g_key_file_get_groups(kf, NULL);
	for (guint i = 0; groups[i] != NULL; i++) {
		struct daemon_state_vm v = { 0 };

		if (!g_str_has_prefix(groups[i], STATE_GROUP_PREFIX) ||
		    groups[i][strlen(STATE_GROUP_PREFIX)] == '\0') {
			g_ptr_array_add(errors, g_strdup_printf(
				"%s: unknown group [%s] (expected [vm NAME]); "
				"ignored", path, groups[i]));
			continue;
		}
		v.qmp = g_key_file_get_string(kf, groups[i], "qmp", NULL);
		/* unix:PATH, or libvirt:URI for a libvirt domain. */
		if (v.qmp == NULL || (!g_str_has_prefix(v.qmp, "unix:") &&
				      !g_str_has_prefix(v.qmp, "libvirt:"))) {
			g_ptr_array_add(errors, g_strdup_printf(
				"%s: [%s] has no qmp=unix:PATH (or libvirt:URI); VM not "
				"remembered", path, groups[i]));
			g_free(v.qmp);
			continue;
		}
		v.name = g_strdup(groups[i] + strlen(STATE_GROUP_PREFIX));
		v.entries = g_key_file_get_string_list(kf, groups[i], "entries",
						       NULL, NULL);
		if (v.entries == NULL)
			v.entries = g_new0(char *, 1);
		g_array_append_val(vms, v);
	}
	return vms;
}

gboolean daemon_state_save(const char *path, const GArray *vms,
			   GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *data = NULL;
	gsize len;

	for (guint i = 0; i < vms->len; i++) {
		const struct daemon_state_vm *v = &g_array_index(vms,
			struct daemon_state_vm, i);
		g_autofree char *group = g_strconcat(STATE_GROUP_PREFIX,
						     v->name, NULL);

		g_key_file_set_string(kf, group, "qmp", v->qmp);
		g_key_file_set_string_list(kf, group, "entries",
			(const char *const *)v->entries,
			g_strv_length(v->entries));
	}
	data = g_key_file_to_data(kf, &len, NULL);
	if (g_mkdir_with_parents(dir, 0700) != 0) {
		g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
			    "cannot create %s: %s", dir, g_strerror(errno));
		return FALSE;
	}
	/* A new file renamed over the old one: a crash leaves either. */
	if (!g_file_set_contents_full(path, data, (gssize)len,
				      G_FILE_SET_CONTENTS_CONSISTENT, 0600,
				      error)) {
		g_prefix_error(error, "cannot remember the VMs: ");
		return FALSE;
	}
	return TRUE;
}
