/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's two files, byte for byte: agent.conf (entries and
 * policies, daemon_config.c) and vms.conf (remembered VMs and
 * attachments, daemon_state.c).  Each row of a table is a file's text and
 * what the daemon must make of it: the entries (or VMs) it keeps, in
 * order, and how many problems it reports.  Bad text is never fatal.
 */
#include "daemon_config.h"
#include "daemon_state.h"

#include <check.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct config_vector {
	const char *name;
	const char *text;          /* NULL: no file at all */
	const char *want;          /* "id:kind:single:label|..." */
	guint errors;
};

static const struct config_vector config_vectors[] = {
	{ "no file", NULL,
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 0 },
	{ "empty file", "",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 0 },
	{ "built-in policy and label",
	  "[entry virtual]\nsingle-session=true\nlabel=Office card\n",
	  "virtual:virtual:1:Office card", 0 },
	{ "built-in keeps its card",
	  "[entry virtual]\ncard=loopback\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 1 },
	{ "one more entry, default label",
	  "[entry lab]\ncard=loopback\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)|lab:loopback:0:loopback card 'lab'", 0 },
	{ "pcsc with policies",
	  "[entry host]\ncard=pcsc:Some Reader,idle=100,lock_timeout=2000\nlabel=Host\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)|host:pcsc:0:Host", 0 },
	{ "PIN guard off for one entry",
	  "[entry lab]\ncard=loopback,pin_guard=off\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)|lab:loopback:0:loopback card 'lab':guard-off", 0 },
	{ "PIN guard keep-last, after pcsc options",
	  "[entry host]\ncard=pcsc:R,idle=100,pin_guard=keep-last\nlabel=Host\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)|host:pcsc:0:Host", 0 },
	{ "bad PIN guard policy",
	  "[entry lab]\ncard=loopback,pin_guard=maybe\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 1 },
	{ "no card key",
	  "[entry lab]\nlabel=x\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 1 },
	{ "unknown card",
	  "[entry lab]\ncard=floppy\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 1 },
	{ "bad boolean",
	  "[entry lab]\ncard=loopback\nsingle-session=maybe\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 1 },
	{ "bad id",
	  "[entry a/b]\ncard=loopback\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 1 },
	{ "id of 65 characters",
	  "[entry aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\ncard=loopback\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 1 },
	{ "unknown group",
	  "[daemon]\nfoo=1\n[entry lab]\ncard=loopback\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)|lab:loopback:0:loopback card 'lab'", 1 },
	{ "not a key file",
	  "\x7f" "ELF\x02\x01\x01\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 1 },
	{ "unterminated group",
	  "[entry lab\ncard=loopback\n",
	  "virtual:virtual:0:Virtual CAC card (ccid-emu)", 1 },
	{ "invalid UTF-8 value",
	  "[entry lab]\ncard=loopback\nlabel=\xff\xfe\n",
	  NULL, 0 },
};

static char *write_temp(const char *text, char **dir)
{
	char *path;

	*dir = g_dir_make_tmp("ccid-conf-XXXXXX", NULL);
	ck_assert(*dir != NULL);
	path = g_build_filename(*dir, "file.conf", NULL);
	if (text != NULL)
		ck_assert(g_file_set_contents(path, text, -1, NULL));
	return path;
}

static void remove_temp(char *path, char *dir)
{
	g_unlink(path);
	g_rmdir(dir);
	g_free(path);
	g_free(dir);
}

START_TEST(test_config)
{
	const struct config_vector *v = &config_vectors[_i];
	struct daemon_config cfg = { 0 };
	g_autoptr(GString) got = g_string_new(NULL);
	char *dir;
	char *path = write_temp(v->text, &dir);

	daemon_config_load(&cfg, path);
	for (guint i = 0; i < cfg.entries->len; i++) {
		const struct daemon_entry_config *e = &g_array_index(
			cfg.entries, struct daemon_entry_config, i);
		static const char *const kinds[] = { "virtual", "loopback",
						     "pcsc", "nss" };

		g_string_append_printf(got, "%s%s:%s:%d:%s%s", i ? "|" : "",
				       e->id, kinds[e->spec.kind],
				       e->single_session ? 1 : 0, e->label,
				       e->spec.pin_guard == CCID_PIN_GUARD_OFF ?
				       ":guard-off" : "");
	}
	for (guint i = 0; i < cfg.errors->len; i++) {
		const char *msg = g_ptr_array_index(cfg.errors, i);

		/* Every message names the file, for the user. */
		ck_assert_msg(strstr(msg, path) != NULL, "%s: %s", v->name,
			      msg);
	}
	if (v->want != NULL) {
		ck_assert_msg(strcmp(got->str, v->want) == 0,
			      "%s: got %s", v->name, got->str);
		ck_assert_msg(cfg.errors->len == v->errors,
			      "%s: %u problems, want %u", v->name,
			      cfg.errors->len, v->errors);
	} else {
		/* Whatever GKeyFile makes of it: the built-in entry stays. */
		ck_assert(g_str_has_prefix(got->str, "virtual:virtual:"));
	}
	daemon_config_clear(&cfg);
	remove_temp(path, dir);
}
END_TEST

struct state_vector {
	const char *name;
	const char *text;
	const char *want;          /* "name=qmp=e1,e2|..." */
	guint errors;
};

static const struct state_vector state_vectors[] = {
	{ "no file", NULL, "", 0 },
	{ "two VMs",
	  "[vm a]\nqmp=unix:/q/a\nentries=virtual;lab;\n[vm b]\nqmp=unix:/q/b\n",
	  "a=unix:/q/a=virtual,lab|b=unix:/q/b=", 0 },
	{ "no qmp", "[vm a]\nentries=virtual;\n", "", 1 },
	{ "qmp not unix", "[vm a]\nqmp=tcp:1.2.3.4:5\n", "", 1 },
	{ "empty name", "[vm ]\nqmp=unix:/q\n", "", 1 },
	{ "other group", "[entry x]\ncard=loopback\n", "", 1 },
	{ "garbage", "\x01\x02\x03", "", 1 },
};

START_TEST(test_state)
{
	const struct state_vector *v = &state_vectors[_i];
	g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) got = g_string_new(NULL);
	g_autoptr(GArray) vms = NULL;
	char *dir;
	char *path = write_temp(v->text, &dir);

	vms = daemon_state_load(path, errors);
	for (guint i = 0; i < vms->len; i++) {
		const struct daemon_state_vm *vm = &g_array_index(vms,
			struct daemon_state_vm, i);
		g_autofree char *ents = g_strjoinv(",", vm->entries);

		g_string_append_printf(got, "%s%s=%s=%s", i ? "|" : "",
				       vm->name, vm->qmp, ents);
	}
	ck_assert_msg(strcmp(got->str, v->want) == 0, "%s: got %s", v->name,
		      got->str);
	ck_assert_msg(errors->len == v->errors, "%s: %u problems, want %u",
		      v->name, errors->len, v->errors);
	remove_temp(path, dir);
}
END_TEST

/* What is saved loads back the same, and the write replaces the file
 * whole (no temporary file left beside it). */
START_TEST(test_state_round_trip)
{
	char *dir;
	char *path = write_temp(NULL, &dir);
	g_autofree char *sub = g_build_filename(dir, "sub", "vms.conf", NULL);
	g_autoptr(GArray) vms = g_array_new(FALSE, TRUE,
					    sizeof(struct daemon_state_vm));
	g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GArray) back = NULL;
	g_autoptr(GError) error = NULL;
	char *e1[] = { "virtual", "pcsc-x-y", NULL };
	char *e2[] = { NULL };
	struct daemon_state_vm a = { "vm-a", "unix:/run/a b;c", e1 };
	struct daemon_state_vm b = { "vm.b", "unix:/q", e2 };
	g_autoptr(GDir) d = NULL;
	g_autofree char *subdir = g_path_get_dirname(sub);
	guint files = 0;

	g_array_append_val(vms, a);
	g_array_append_val(vms, b);
	ck_assert_msg(daemon_state_save(sub, vms, &error), "%s",
		      error != NULL ? error->message : "");
	back = daemon_state_load(sub, errors);
	ck_assert_uint_eq(errors->len, 0);
	ck_assert_uint_eq(back->len, 2);
	ck_assert_str_eq(g_array_index(back, struct daemon_state_vm, 0).qmp,
			 "unix:/run/a b;c");
	ck_assert_str_eq(g_array_index(back, struct daemon_state_vm, 0).entries[1],
			 "pcsc-x-y");
	ck_assert_ptr_null(g_array_index(back, struct daemon_state_vm, 1).entries[0]);
	d = g_dir_open(subdir, 0, NULL);
	while (g_dir_read_name(d) != NULL)
		files++;
	ck_assert_uint_eq(files, 1);
	g_unlink(sub);
	g_rmdir(subdir);
	remove_temp(path, dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon-files");
	TCase *tc = tcase_create("tables");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_config, 0, G_N_ELEMENTS(config_vectors));
	tcase_add_loop_test(tc, test_state, 0, G_N_ELEMENTS(state_vectors));
	tcase_add_test(tc, test_state_round_trip);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
