/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's configuration file (GKeyFile), by default
 * $XDG_CONFIG_HOME/ccid-emu/agent.conf:
 *
 *   [entry virtual]            # the embedded virtual card, always there
 *   single-session=true        # policy: one VM at a time
 *
 *   [entry lab]                # one more entry
 *   card=virtual:/path/to/nssdb   # or loopback (a card spec, as serve -c)
 *   label=Lab CAC card
 *   single-session=false
 *
 * A file that cannot be parsed gives an error message and the defaults;
 * a bad group gives an error message and is skipped.  Never fatal.
 */
#ifndef CCID_DAEMON_CONFIG_H
#define CCID_DAEMON_CONFIG_H

#include "agent_card_kinds.h"

#include <glib.h>

G_BEGIN_DECLS

struct daemon_entry_config {
	char *id;
	char *label;
	struct agent_card_spec spec;
	gboolean single_session;
};

struct daemon_config {
	GArray *entries;     /* struct daemon_entry_config; [0] = "virtual" */
	GPtrArray *errors;   /* char *: what was wrong, naming file and fix */
};

/* The default path: $XDG_CONFIG_HOME/ccid-emu/agent.conf. */
char *daemon_config_default_path(void);
/* Loads @path (a missing file is not an error). */
void daemon_config_load(struct daemon_config *cfg, const char *path);
void daemon_config_clear(struct daemon_config *cfg);

G_END_DECLS

#endif /* CCID_DAEMON_CONFIG_H */
