/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_daemon_dbus: the daemon's D-Bus methods with any arguments.  The
 * real daemon_service (host-agent/daemon/daemon_service.c), exported on
 * no bus, is called through daemon_service_call()
 * (daemon_service_private.h), which runs the same code as the D-Bus
 * methods: Attach, Detach, InsertCard, RemoveCard, AddVm, PlanVm and
 * RemoveVm with strings from the input (valid UTF-8, as the bus demands:
 * names, ids, label fragments, QMP addresses).  The D-Bus glue itself
 * (the generated skeleton, the "handle-*" signals) is left to the
 * daemon tests on a real dbus-daemon: a GDBus round trip per call,
 * through its worker thread, made this target run at 160-190 inputs/s.
 * A fresh service per input, with a config of loopback entries and an
 * empty state file in a private directory; QMP addresses point at a socket
 * nobody listens on, or at any path the input names.
 *
 * Input: ops, each a method byte (% 7) and its strings; a string is a
 * selector byte (< 0xa0: one of `words`, else 0..63 raw bytes made valid
 * UTF-8, NULs replaced).  A method byte of 0xe0 or more waits for the
 * replies to every earlier call before sending its own; the others are
 * made at once, so calls also overlap (as any D-Bus client may pipeline
 * them).  All replies are waited for at the end.
 *
 * Checks: every call gets exactly one reply within the deadline, either
 * an error naming what was wrong or the method's out arguments (none, or
 * an object path for AddVm and PlanVm); no sanitizer report; the service
 * frees everything (LeakSanitizer).
 */
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "daemon_config.h"
#include "daemon_service.h"
#include "daemon_service_private.h"
#include "fuzz_harness.h"

static struct {
	char *dir, *conf, *state, *qmp_absent;
} S;

static const char *const words[] = {
	"virtual", "loop1", "loop2", "Loop", "loopback card", "", "vm1", "vm2",
	"a.b-c_d", "unix:", "unix:/nonexistent/qmp", "tcp:1.2.3.4:5", "x",
	"0123456789012345678901234567890123456789012345678901234567890123",
	"01234567890123456789012345678901234567890123456789012345678901234",
	"vm/1", "é", "card", "ccidemu-0", "..",
};

static void setup_once(void)
{
	if (S.dir != NULL)
		return;
	/* On tmpfs when there is one: the daemon saves vms.conf with fsync. */
	S.dir = g_strdup(fz_scratch_dir("fuzz-dbus"));
	S.conf = g_build_filename(S.dir, "agent.conf", NULL);
	S.state = g_build_filename(S.dir, "vms.conf", NULL);
	S.qmp_absent = g_strdup_printf("unix:%s/absent.qmp", S.dir);
	FZ_CHECK(g_file_set_contents(S.conf,
		"[entry loop1]\ncard=loopback\nlabel=Loopback card one\n"
		"[entry loop2]\ncard=loopback\nlabel=Loopback two\n"
		"single-session=true\n", -1, NULL), "write agent.conf");
}

/* Valid UTF-8 without NULs, from the input. */
static char *read_string(struct fz_in *in)
{
	uint8_t sel = fz_u8(in);
	char raw[64];
	unsigned n;

	if (sel < 0xa0)
		return g_strdup(words[sel % G_N_ELEMENTS(words)]);
	n = fz_u8(in) % sizeof(raw);
	fz_bytes(in, (uint8_t *)raw, n);
	for (unsigned i = 0; i < n; i++)
		if (raw[i] == '\0')
			raw[i] = 'x';
	return g_utf8_make_valid(raw, n);
}

static char *read_qmp(struct fz_in *in)
{
	uint8_t sel = fz_u8(in);

	if (sel < 0x80)
		return g_strdup(S.qmp_absent);
	return read_string(in);
}

#define MAX_OPS 16

struct call {
	const char *method;
	bool done;
	bool ok;
};

static struct call calls[MAX_OPS];
static unsigned n_calls, n_done;

static void call_done(void *user, GVariant *ret, const GError *error)
{
	struct call *c = user;
	bool has_path = strcmp(c->method, "AddVm") == 0 ||
			strcmp(c->method, "PlanVm") == 0;

	FZ_CHECK(!c->done, "two replies to one call of %s", c->method);
	c->done = true;
	n_done++;
	c->ok = error == NULL;
	if (error != NULL) {
		fz_trace("  %s -> error %s", c->method, error->message);
		FZ_CHECK(ret == NULL, "%s: an error and a value", c->method);
		FZ_CHECK(error->message[0] != '\0', "an error without a message");
		return;
	}
	/* What the XML declares, which GDBus would check on the bus. */
	if (has_path)
		FZ_CHECK(ret != NULL && g_variant_is_of_type(ret,
			 G_VARIANT_TYPE("(o)")), "%s answered %s, not (o)",
			 c->method, ret ? g_variant_get_type_string(ret) : "nothing");
	else
		FZ_CHECK(ret == NULL || g_variant_is_of_type(ret,
			 G_VARIANT_TYPE_UNIT), "%s answered %s, not ()",
			 c->method, g_variant_get_type_string(ret));
}

/* Every call made so far has its reply, within 5 s of the last call: a
 * daemon that never answers fails here. */
static void wait_replies(gint64 deadline)
{
	while (n_done < n_calls && g_get_monotonic_time() < deadline)
		g_main_context_iteration(NULL, TRUE);
	for (unsigned i = 0; i < n_calls; i++)
		FZ_CHECK(calls[i].done, "no reply to %s (call %u)",
			 calls[i].method, i);
}

static void call(daemon_service *svc, const char *method, GVariant *args)
{
	struct call *c = &calls[n_calls++];

	g_variant_ref_sink(args);
	if (fz_trace_enabled()) {
		g_autofree char *text = g_variant_print(args, FALSE);

		fz_trace("%s %s", method, text);
	}
	*c = (struct call){ .method = method };
	daemon_service_call(svc, method, args, call_done, c);
	g_variant_unref(args);
}

static void quiet_log(const gchar *domain, GLogLevelFlags level,
		      const gchar *msg, gpointer user)
{
	fz_trace("  glib: %s", msg);
}

static void quiet_say(const char *msg)
{
	FZ_CHECK(msg[0] != '\0', "an empty daemon message");
	fz_trace("  daemon: %s", msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct daemon_config cfg = { 0 };
	g_autoptr(GError) error = NULL;
	daemon_service *svc;
	gint64 deadline = 0;

	g_log_set_default_handler(quiet_log, NULL);
	daemon_service_set_say(quiet_say);
	setup_once();
	g_unlink(S.state);
	daemon_config_load(&cfg, S.conf);
	svc = daemon_service_new(&cfg, S.state, FALSE);
	FZ_CHECK(daemon_service_export(svc, NULL, &error), "export: %s",
		 error->message);
	n_calls = n_done = 0;
	while (fz_more(&in) && n_calls < MAX_OPS) {
		g_autofree char *a = NULL, *b = NULL;
		uint8_t op = fz_u8(&in);

		if (op >= 0xe0) {
			fz_trace("(wait for the replies)");
			wait_replies(deadline);
		}
		deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
		switch (op % 7) {
		case 0:
			a = read_string(&in);
			b = read_string(&in);
			call(svc, "Attach", g_variant_new("(ss)", a, b));
			break;
		case 1:
			a = read_string(&in);
			b = read_string(&in);
			call(svc, "Detach", g_variant_new("(ss)", a, b));
			break;
		case 2:
			a = read_string(&in);
			call(svc, "InsertCard", g_variant_new("(s)", a));
			break;
		case 3:
			a = read_string(&in);
			call(svc, "RemoveCard", g_variant_new("(s)", a));
			break;
		case 4:
			a = read_string(&in);
			b = read_qmp(&in);
			call(svc, "AddVm", g_variant_new("(ss)", a, b));
			break;
		case 5: {
			GVariantBuilder vb;
			unsigned n = fz_u8(&in) % 4;

			a = read_string(&in);
			b = read_qmp(&in);
			g_variant_builder_init(&vb, G_VARIANT_TYPE("as"));
			for (unsigned i = 0; i < n; i++) {
				g_autofree char *e = read_string(&in);

				g_variant_builder_add(&vb, "s", e);
			}
			call(svc, "PlanVm", g_variant_new("(ssas)", a, b, &vb));
			break;
		}
		case 6:
			a = read_string(&in);
			call(svc, "RemoveVm", g_variant_new("(s)", a));
			break;
		}
	}
	wait_replies(deadline);
	daemon_service_free(svc);
	daemon_config_clear(&cfg);
	while (g_main_context_iteration(NULL, FALSE))
		;
	return 0;
}
