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
 *   [reader Yubico YubiKey]    # policy of discovered PC/SC readers
 *   idle=200                   # whose name is NAME or contains it
 *   lock_timeout=2s
 *   single-session=true
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

/* [reader NAME]: the policy of the discovered PC/SC readers whose name is
 * NAME, or contains it. */
struct daemon_reader_config {
	char *name;
	guint idle_ms;          /* pcsc defaults unless given */
	guint lock_timeout_ms;
	gboolean single_session;
};

struct daemon_config {
	GArray *entries;     /* struct daemon_entry_config; [0] = "virtual" */
	GArray *readers;     /* struct daemon_reader_config, file order */
	GPtrArray *errors;   /* char *: what was wrong, naming file and fix */
};

/* The default path: $XDG_CONFIG_HOME/ccid-emu/agent.conf. */
char *daemon_config_default_path(void);
/* Loads @path (a missing file is not an error). */
void daemon_config_load(struct daemon_config *cfg, const char *path);
void daemon_config_clear(struct daemon_config *cfg);
/* The [reader NAME] group for reader @name: the one naming it exactly,
 * else the first whose NAME is part of it; NULL when none. */
const struct daemon_reader_config *daemon_config_find_reader(
	const struct daemon_config *cfg, const char *name);

G_END_DECLS

#endif /* CCID_DAEMON_CONFIG_H */
