/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ccid-agent piv init|info|reset [DIR]: create, inspect and reset the
 * store of a virtual PIV card (ccid_piv_store.h) for scripts.  DIR
 * defaults to the card `--card piv` uses.
 */
#include "agent_commands.h"

#include <ccid_piv_store.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static gboolean is_default_ref(const uint8_t *v, const char *def)
{
	uint8_t pad[PIV_PIN_LEN];

	(void)piv_pin_pad(def, pad);
	return memcmp(v, pad, PIV_PIN_LEN) == 0;
}

static gboolean print_object(gpointer key, gpointer value, gpointer data)
{
	printf("  object %06X: %zu bytes\n", GPOINTER_TO_UINT(key),
	       g_bytes_get_size(value));
	return FALSE;
}

static int piv_info(const char *dir)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(piv_data) d = ccid_piv_store_load(dir, &error);
	gboolean default_mgmt;

	if (d == NULL) {
		fprintf(stderr, "ccid-agent piv info: %s\n", error->message);
		return AGENT_EXIT_FAILED;
	}
	default_mgmt = d->mgmt_alg == PIV_ALG_3DES &&
		       memcmp(d->mgmt_key, piv_default_mgmt_key,
			      sizeof(piv_default_mgmt_key)) == 0;
	printf("card: %s\n", dir);
	printf("serial: %u\n", d->serial);
	printf("pin: %u of %u tries left%s%s\n", d->pin_left, d->pin_max,
	       d->pin_left == 0 ? ", blocked" : "",
	       is_default_ref(d->pin, PIV_DEFAULT_PIN) ? ", default" : "");
	printf("puk: %u of %u tries left%s%s\n", d->puk_left, d->puk_max,
	       d->puk_left == 0 ? ", blocked" : "",
	       is_default_ref(d->puk, PIV_DEFAULT_PUK) ? ", default" : "");
	printf("management key: %s%s\n", piv_alg_name(d->mgmt_alg),
	       default_mgmt ? ", default" : "");
	for (unsigned i = 0; i < PIV_N_SLOTS; i++) {
		const struct piv_key *k = &d->keys[i];
		static const char *const policy[] = {
			"default", "never", "once", "always"
		};

		if (k->alg == 0)
			continue;
		printf("  slot %s: %s, %s, PIN %s\n",
		       piv_slot_by_index(i)->name, piv_alg_name(k->alg),
		       k->origin == PIV_ORIGIN_GENERATED ? "generated" :
							   "imported",
		       policy[k->pin_policy]);
	}
	g_tree_foreach(d->objects, print_object, NULL);
	return AGENT_EXIT_OK;
}

static int piv_init(const char *dir, gboolean reset)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *file = g_build_filename(dir, CCID_PIV_STORE_FILE, NULL);
	g_autoptr(piv_data) d = NULL;
	gboolean created = FALSE;
	int fd;

	if (!reset && g_file_test(file, G_FILE_TEST_EXISTS)) {
		fprintf(stderr, "ccid-agent piv init: %s already holds a card; "
			"'ccid-agent piv reset %s' replaces it with a new "
			"one\n", dir, dir);
		return AGENT_EXIT_FAILED;
	}
	if (!ccid_piv_store_ensure(dir, &created, &error))
		goto fail;
	if (created) {
		printf("created a PIV card in %s (PIN 123456, PUK 12345678, "
		       "3DES management key 010203040506070801020304050607080102030405060708)\n",
		       dir);
		return AGENT_EXIT_OK;
	}
	/* reset: only a card nobody is using. */
	fd = ccid_piv_store_lock(dir, &error);
	if (fd < 0)
		goto fail;
	d = piv_data_new_default();
	if (!ccid_piv_store_save(dir, d, &error)) {
		close(fd);
		goto fail;
	}
	close(fd);
	printf("reset the PIV card in %s to a new one (serial %u, PIN 123456, "
	       "PUK 12345678, default management key)\n", dir, d->serial);
	return AGENT_EXIT_OK;
fail:
	fprintf(stderr, "ccid-agent piv %s: %s\n", reset ? "reset" : "init",
		error->message);
	return AGENT_EXIT_FAILED;
}

int agent_cmd_piv(int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new(
		"init|info|reset [DIR] - manage a virtual PIV card's store");
	g_autofree char *dir = NULL;
	const char *action;

	g_option_context_set_description(ctx,
		"  init   create a card with the default PIN, PUK and "
		"management key\n"
		"  info   show its serial, retry counters, keys and objects\n"
		"  reset  replace it with a new default card (not while an "
		"agent uses it)\n\n"
		"DIR defaults to the card of '--card piv': "
		"$XDG_DATA_HOME/ccid-emu/piv/default.\n");
	if (!agent_parse_options(ctx, &argc, &argv))
		return AGENT_EXIT_USAGE;
	if (argc < 2 || argc > 3)
		return agent_usage_error(argv[0], "expected init, info or reset "
					 "and at most one directory");
	action = argv[1];
	dir = argc == 3 ? g_strdup(argv[2]) : ccid_piv_store_default_dir();
	if (strcmp(action, "init") == 0)
		return piv_init(dir, FALSE);
	if (strcmp(action, "reset") == 0)
		return piv_init(dir, TRUE);
	if (strcmp(action, "info") == 0)
		return piv_info(dir);
	return agent_usage_error(argv[0], "unknown action '%s' (expected "
				 "init, info or reset)", action);
}
