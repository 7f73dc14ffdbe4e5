/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What `ccid-agent serve` prints for QEMU and libvirt, and the JSON
 * strings of its control replies, for inputs that need escaping: commas
 * (QEMU's option separator), shell metacharacters, XML specials, IPv6
 * hosts, control characters and invalid UTF-8.
 */
#include <check.h>
#include <stdlib.h>

#include <glib.h>

#include "agent_json.h"
#include "agent_launch.h"

START_TEST(test_qemu_unix_listen)
{
	const struct agent_launch_addr a = {
		.is_unix = TRUE, .path = "/run/user/1000/ccid-emu/ccid0.sock",
		.agent_listens = TRUE,
	};
	g_auto(GStrv) argv = agent_launch_qemu_argv(&a);
	g_autofree char *line = agent_launch_qemu_line(&a);

	ck_assert_uint_eq(g_strv_length(argv), 4);
	ck_assert_str_eq(argv[0], "-chardev");
	ck_assert_str_eq(argv[1], "socket,id=ccid0,path=/run/user/1000/"
			 "ccid-emu/ccid0.sock,reconnect=1");
	ck_assert_str_eq(argv[2], "-device");
	ck_assert_str_eq(argv[3], "usb-redir,chardev=ccid0,id=ccidredir0");
	ck_assert_str_eq(line, "-chardev socket,id=ccid0,path=/run/user/1000/"
			 "ccid-emu/ccid0.sock,reconnect=1 -device "
			 "usb-redir,chardev=ccid0,id=ccidredir0");
}
END_TEST

START_TEST(test_qemu_path_with_comma_and_space)
{
	const struct agent_launch_addr a = {
		.is_unix = TRUE, .path = "/tmp/a,b c/it's.sock",
		.agent_listens = FALSE,
	};
	g_auto(GStrv) argv = agent_launch_qemu_argv(&a);
	g_autofree char *line = agent_launch_qemu_line(&a);
	g_auto(GStrv) back = NULL;

	/* QEMU wants the comma doubled... */
	ck_assert_str_eq(argv[1], "socket,id=ccid0,path=/tmp/a,,b c/it's.sock,"
			 "server=on,wait=off");
	/* ...and the shell line must give QEMU exactly that back. */
	ck_assert(g_shell_parse_argv(line, NULL, &back, NULL));
	ck_assert_uint_eq(g_strv_length(back), 4);
	for (guint i = 0; i < 4; i++)
		ck_assert_str_eq(back[i], argv[i]);
	ck_assert_str_eq(line, "-chardev 'socket,id=ccid0,path=/tmp/a,,b "
			 "c/it'\\''s.sock,server=on,wait=off' -device "
			 "usb-redir,chardev=ccid0,id=ccidredir0");
}
END_TEST

START_TEST(test_qemu_tcp)
{
	const struct agent_launch_addr l = {
		.is_unix = FALSE, .host = "::1", .port = 4000,
		.agent_listens = TRUE,
	};
	const struct agent_launch_addr c = {
		.is_unix = FALSE, .host = "192.0.2.7", .port = 65535,
		.agent_listens = FALSE,
	};
	g_autofree char *ll = agent_launch_qemu_line(&l);
	g_autofree char *cl = agent_launch_qemu_line(&c);

	ck_assert_str_eq(ll, "-chardev socket,id=ccid0,host=::1,port=4000,"
			 "reconnect=1 -device usb-redir,chardev=ccid0,"
			 "id=ccidredir0");
	ck_assert_str_eq(cl, "-chardev socket,id=ccid0,host=192.0.2.7,"
			 "port=65535,server=on,wait=off -device usb-redir,"
			 "chardev=ccid0,id=ccidredir0");
}
END_TEST

START_TEST(test_libvirt_xml)
{
	const struct agent_launch_addr ul = {
		.is_unix = TRUE, .path = "/tmp/<a&'b\">.sock",
		.agent_listens = TRUE,
	};
	const struct agent_launch_addr uc = {
		.is_unix = TRUE, .path = "/var/lib/qemu/ccid.sock",
		.agent_listens = FALSE,
	};
	const struct agent_launch_addr tl = {
		.is_unix = FALSE, .host = "localhost", .port = 4000,
		.agent_listens = TRUE,
	};
	const struct agent_launch_addr tc = {
		.is_unix = FALSE, .host = "::1", .port = 4001,
		.agent_listens = FALSE,
	};
	g_autofree char *x1 = agent_launch_libvirt_xml(&ul);
	g_autofree char *x2 = agent_launch_libvirt_xml(&uc);
	g_autofree char *x3 = agent_launch_libvirt_xml(&tl);
	g_autofree char *x4 = agent_launch_libvirt_xml(&tc);

	ck_assert_str_eq(x1, "<redirdev bus='usb' type='unix'><source "
			 "mode='connect' path='/tmp/&lt;a&amp;&apos;b&quot;&gt;"
			 ".sock'><reconnect enabled='yes' timeout='1'/>"
			 "</source></redirdev>");
	ck_assert_str_eq(x2, "<redirdev bus='usb' type='unix'><source "
			 "mode='bind' path='/var/lib/qemu/ccid.sock'/>"
			 "</redirdev>");
	ck_assert_str_eq(x3, "<redirdev bus='usb' type='tcp'><source "
			 "mode='connect' host='localhost' service='4000'>"
			 "<reconnect enabled='yes' timeout='1'/></source>"
			 "<protocol type='raw'/></redirdev>");
	ck_assert_str_eq(x4, "<redirdev bus='usb' type='tcp'><source "
			 "mode='bind' host='::1' service='4001'/>"
			 "<protocol type='raw'/></redirdev>");
}
END_TEST

START_TEST(test_json_strings)
{
	g_autoptr(GString) s = g_string_new(NULL);
	g_autofree char *e = NULL;

	agent_json_append_string(s, "a\"b\\c\n\t\x01\x7f/é");
	ck_assert_str_eq(s->str, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f/é\"");
	g_string_truncate(s, 0);
	/* Invalid UTF-8 becomes U+FFFD, so the line stays valid JSON. */
	agent_json_append_string(s, "x\xff" "y");
	ck_assert_str_eq(s->str, "\"x\xef\xbf\xbdy\"");
	g_string_truncate(s, 0);
	agent_json_append_string(s, NULL);
	ck_assert_str_eq(s->str, "null");
	e = agent_json_error("no slot '9'");
	ck_assert_str_eq(e, "{\"error\": \"no slot '9'\"}");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("launch");
	TCase *tc = tcase_create("lines");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_qemu_unix_listen);
	tcase_add_test(tc, test_qemu_path_with_comma_and_space);
	tcase_add_test(tc, test_qemu_tcp);
	tcase_add_test(tc, test_libvirt_xml);
	tcase_add_test(tc, test_json_strings);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
