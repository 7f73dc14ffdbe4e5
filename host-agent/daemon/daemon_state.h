/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the daemon remembers across restarts: the VMs it was given and the
 * entries attached to each, in a GKeyFile, by default
 * $XDG_CONFIG_HOME/ccid-emu/vms.conf:
 *
 *   [vm NAME]
 *   qmp=unix:PATH
 *   entries=virtual;lab;
 *
 * Written whole and atomically (g_file_set_contents: a new file renamed
 * over the old) after every change.  A file that cannot be read gives an
 * error message and an empty state, never a crash.
 */
#ifndef CCID_DAEMON_STATE_H
#define CCID_DAEMON_STATE_H

#include <glib.h>

G_BEGIN_DECLS

struct daemon_state_vm {
	char *name;
	char *qmp;          /* "unix:PATH" */
	char **entries;     /* ids, NULL-terminated */
};

char *daemon_state_default_path(void);
/* Fills @vms (struct daemon_state_vm, with their clear function) from
 * @path; a missing file is an empty state.  Problems are appended to
 * @errors (char *), each naming the file and what was done. */
GArray *daemon_state_load(const char *path, GPtrArray *errors);
gboolean daemon_state_save(const char *path, const GArray *vms,
			   GError **error);

G_END_DECLS

#endif /* CCID_DAEMON_STATE_H */
