/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The usbredir peer of the fault soak (soak.py): a fake QEMU usb-redir
 * device (tests/common/fake_qemu.c, the real usbredirparser in the
 * usb-guest role) in its own process, so the soak can kill it.  It
 * attaches to `ccid-agent serve`'s socket, enumerates the reader, powers
 * the loopback card on, checks an ECHO, then starts a DELAY APDU the card
 * answers only after a minute, so an APDU is in flight, and prints
 * "inflight" once the agent has taken the command and a bulk-IN transfer
 * waits for its answer.  Then, by mode:
 *
 *   hang     waits to be killed (the peer killed mid-APDU);
 *   drop     closes its socket, prints "dropped" and exits 0 (the socket
 *            dropped under the agent);
 *   remove   waits for the answer the card's removal brings (XfrBlock
 *            failed; the soak runs `remove` on the control socket, or
 *            kills the vicc card or pcscd), prints "answered", waits for
 *            a NotifySlotChange saying the card is back (the soak puts it
 *            back), powers it on, checks an ECHO, prints "echo-ok" and
 *            exits 0;
 *   gone     waits for the agent to go away (the soak restarts it):
 *            prints "gone" when the socket closes.
 *   stream   for a card with no long operation (the virtual CAC card
 *            answers every APDU at once, on the agent's thread): instead
 *            of the DELAY, sends its ECHO again and again, prints
 *            "streaming" after the first answer, and goes on until one
 *            fails (the soak pulls the card meanwhile); then as "remove".
 *
 *   soak-peer SOCKET MODE [vicc|virtual]
 *
 * With "vicc" the card is tests/pcsc/vicc_card.py behind pcscd (the pcsc
 * backend), whose ECHO and DELAY are 80 14 and 80 10 instead of the
 * loopback card's 80 01 and 80 03.  With "virtual" it is the embedded
 * virtual CAC card (libcacard), whose ECHO is a SELECT of its first PKI
 * applet (any 2-byte answer 90 00 or 61 xx); it has no DELAY.
 *
 * A failed check ends the run with Check's message and exit status 1.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib.h>

#include <ccid-emu/ccid_emu.h>

#include "fake_qemu.h"

static const char *sock_path, *mode;
static uint8_t ins_echo = 0x01, ins_delay = 0x03;
static bool virtual_card;

static void say(const char *what)
{
	printf("%s\n", what);
	fflush(stdout);
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	ck_assert_msg(fd >= 0 && connect(fd, (struct sockaddr *)&sun,
					 sizeof(sun)) == 0,
		      "connect %s: %s", path, g_strerror(errno));
	return fd;
}

/* The steps of fake_qemu.c with a patient deadline: an agent under
 * memcheck on a machine shared with other jobs can take more than the
 * 2 s those allow; the soak's own 1 s bounds apply to releases only. */
#define PEER_STEP_MS 30000u

static void peer_set_configuration(struct fake_qemu *g)
{
	struct usb_redir_set_configuration_header h = { .configuration = 1 };

	g->have_cfg_status = false;
	usbredirparser_send_set_configuration(g->parser, g->next_id++, &h);
	ck_assert_msg(fake_qemu_spin(g, fake_qemu_cfg_done, NULL, PEER_STEP_MS),
		      "no configuration_status");
	ck_assert_int_eq(g->cfg_status.status, usb_redir_success);
}

static bool intr_status_done(struct fake_qemu *g, void *arg)
{
	return g->have_intr_status;
}

static void peer_start_interrupt(struct fake_qemu *g)
{
	struct usb_redir_start_interrupt_receiving_header start = {
		.endpoint = CCID_EP_INTR_IN,
	};

	g->have_intr_status = false;
	usbredirparser_send_start_interrupt_receiving(g->parser, g->next_id++,
						      &start);
	ck_assert_msg(fake_qemu_spin(g, intr_status_done, NULL, PEER_STEP_MS),
		      "no interrupt_receiving_status");
	ck_assert_int_eq(g->intr_status.status, usb_redir_success);
}

static void peer_bulk_out(struct fake_qemu *g, const uint8_t *msg, uint32_t len)
{
	struct usb_redir_bulk_packet_header h = {
		.endpoint = CCID_EP_BULK_OUT, .length = (uint16_t)len,
		.length_high = (uint16_t)(len >> 16),
	};
	uint64_t id = g->next_id++;

	g->bulk[id % FAKE_QEMU_BULK_SLOTS].done = false;
	usbredirparser_send_bulk_packet(g->parser, id, &h, (uint8_t *)msg, (int)len);
	ck_assert_msg(fake_qemu_spin(g, fake_qemu_bulk_done, GUINT_TO_POINTER(id),
				     PEER_STEP_MS),
		      "bulk-OUT not acknowledged");
	ck_assert_int_eq(g->bulk[id % FAKE_QEMU_BULK_SLOTS].status,
			 usb_redir_success);
}

/* The answer to the last command, past any time extensions. */
static struct fake_qemu_reply *peer_answer(struct fake_qemu *g)
{
	struct fake_qemu_reply *r;

	do
		r = fake_qemu_bulk_in(g, 65536 + 100, PEER_STEP_MS);
	while (r->status == usb_redir_success && r->len >= 10 &&
	       (r->data[7] >> 6) == 2);
	return r;
}

static void peer_power_on(struct fake_qemu *g, uint8_t seq)
{
	const uint8_t msg[10] = { CCID_PC_TO_RDR_ICC_POWER_ON, 0, 0, 0, 0, 0, seq,
				  0, 0, 0 };
	struct fake_qemu_reply *r;

	peer_bulk_out(g, msg, sizeof(msg));
	r = peer_answer(g);
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_ge(r->len, 12);
	ck_assert_int_eq(r->data[0], CCID_RDR_TO_PC_DATA_BLOCK);
	ck_assert_int_eq(r->data[6], seq);
	ck_assert_int_eq(r->data[7], 0x00);
	ck_assert_int_eq(r->data[10], 0x3B);
}

/* The card's ECHO; its answer, past any time extensions. */
static struct fake_qemu_reply *echo_xfr(struct fake_qemu *g, uint8_t seq)
{
	static const uint8_t select_pki[] = { 0x00, 0xa4, 0x04, 0x00, 0x07, 0xa0,
					      0x00, 0x00, 0x00, 0x79, 0x01, 0x00 };
	uint8_t apdu[] = { 0x80, ins_echo, 0x00, 0x00, 0x03, 'a', 'b', 'c' };
	uint8_t msg[10 + sizeof(select_pki)];

	if (virtual_card)
		peer_bulk_out(g, msg, fake_qemu_xfr_block(msg, seq, select_pki,
							  sizeof(select_pki)));
	else
		peer_bulk_out(g, msg, fake_qemu_xfr_block(msg, seq, apdu,
							  sizeof(apdu)));
	/* A slow card (vicc, pcscd, a busy machine) gets time extensions. */
	return peer_answer(g);
}

static void echo_check(const struct fake_qemu_reply *r, uint8_t seq)
{
	ck_assert_int_eq(r->status, usb_redir_success);
	ck_assert_int_ge(r->len, 10);
	ck_assert_int_eq(r->data[0], CCID_RDR_TO_PC_DATA_BLOCK);
	ck_assert_int_eq(r->data[6], seq);
	ck_assert_msg(r->data[7] == 0x00, "ECHO failed: bStatus %02x bError %02x",
		      r->data[7], r->data[8]);
	if (virtual_card) {
		ck_assert_int_ge(r->len, 10 + 2);
		ck_assert_msg((r->data[r->len - 2] == 0x90 && r->data[r->len - 1] == 0) ||
			      r->data[r->len - 2] == 0x61,
			      "SELECT answered %02x %02x", r->data[r->len - 2],
			      r->data[r->len - 1]);
	} else {
		ck_assert_int_eq(r->len, 10 + 5);
		ck_assert_mem_eq(r->data + 10, "abc\x90\x00", 5);
	}
}

static void echo(struct fake_qemu *g, uint8_t seq)
{
	echo_check(echo_xfr(g, seq), seq);
}

/* "stream": ECHOs until one fails, the card pulled between two of them
 * (or during one).  The failure is XfrBlock failed with the ICC absent or
 * inactive; anything else fails the peer. */
static void stream_until_failed(struct fake_qemu *g, uint8_t *seq)
{
	gint64 until = g_get_monotonic_time() + 60 * G_TIME_SPAN_SECOND;
	bool said = false;

	for (;;) {
		struct fake_qemu_reply *r;

		ck_assert_msg(g_get_monotonic_time() < until,
			      "the card was not pulled within 60 s");
		r = echo_xfr(g, *seq);
		if (r->status == usb_redir_success && r->len >= 10 &&
		    (r->data[7] >> 6) == 1) {
			ck_assert_int_eq(r->data[6], *seq);
			ck_assert_msg((r->data[7] & 0x03) != 0,
				      "XfrBlock failed with the card present: "
				      "bStatus %02x bError %02x", r->data[7],
				      r->data[8]);
			(*seq)++;
			return;
		}
		echo_check(r, *seq);
		(*seq)++;
		if (!said) {
			say("streaming");
			said = true;
		}
	}
}

/* The bulk-IN request of the DELAY's answer, and the time extensions
 * that come before it. */
static bool answered(struct fake_qemu *g, void *arg)
{
	struct fake_qemu_reply *r = &g->bulk[GPOINTER_TO_UINT(arg) % FAKE_QEMU_BULK_SLOTS];

	return r->done && !(r->len >= 10 && (r->data[7] >> 6) == 2);
}

/* A NotifySlotChange since the fault (@arg: the number of interrupt
 * messages before it) saying the card is present: it was put back
 * (removal and insertion may come as one message, "changed"). */
static bool card_back(struct fake_qemu *g, void *arg)
{
	unsigned n = g->n_intr;

	return n > GPOINTER_TO_UINT(arg) && g->intr_len[n - 1] == 2 &&
	       (g->intr[n - 1][1] & 0x01);
}

START_TEST(test_peer)
{
	static struct fake_qemu g;
	uint8_t delay[] = { 0x80, ins_delay, 0x00, 0x00, 0x04,
			    0x00, 0x00, 0xea, 0x60 };   /* 60 s */
	uint8_t msg[10 + sizeof(delay)];
	uint64_t in_id;
	unsigned n_intr_before;

	fake_qemu_init(&g, unix_connect(sock_path));
	ck_assert_msg(fake_qemu_spin(&g, fake_qemu_is_connected, NULL, PEER_STEP_MS),
		      "no device_connect from the agent");
	peer_set_configuration(&g);
	peer_start_interrupt(&g);
	peer_power_on(&g, 1);
	echo(&g, 2);
	if (strcmp(mode, "stream") == 0) {
		uint8_t seq = 3;
		unsigned n_intr;

		stream_until_failed(&g, &seq);
		n_intr = g.n_intr;
		say("answered");
		/* The removal's NotifySlotChange may come before or after the
		 * failed answer; the card is back once the last one says so. */
		ck_assert_msg(fake_qemu_spin(&g, card_back, GUINT_TO_POINTER(n_intr),
					     60000),
			      "no NotifySlotChange saying the card is back");
		peer_power_on(&g, seq++);
		echo(&g, seq);
		say("echo-ok");
		fake_qemu_fini(&g);
		return;
	}
	peer_bulk_out(&g, msg, fake_qemu_xfr_block(msg, 3, delay, sizeof(delay)));
	in_id = fake_qemu_bulk_in_request(&g, 65536 + 100);
	fake_qemu_spin(&g, NULL, NULL, 20);
	n_intr_before = g.n_intr;
	say("inflight");

	if (strcmp(mode, "hang") == 0) {
		for (;;)
			fake_qemu_spin(&g, NULL, NULL, 1000);
	} else if (strcmp(mode, "drop") == 0) {
		shutdown(g.fd, SHUT_RDWR);
		fake_qemu_fini(&g);
		say("dropped");
	} else if (strcmp(mode, "remove") == 0) {
		struct fake_qemu_reply *r;
		unsigned n_intr = n_intr_before;

		/* Time extensions complete the request; ask again until the
		 * real answer comes. */
		for (;;) {
			ck_assert_msg(fake_qemu_spin(&g, fake_qemu_bulk_done,
						     GUINT_TO_POINTER(in_id), 30000),
				      "no answer to the DELAY after the card was removed");
			if (answered(&g, GUINT_TO_POINTER(in_id)))
				break;
			in_id = fake_qemu_bulk_in_request(&g, 65536 + 100);
		}
		r = &g.bulk[in_id % FAKE_QEMU_BULK_SLOTS];
		ck_assert_int_ge(r->len, 10);
		ck_assert_int_eq(r->data[6], 3);
		ck_assert_msg((r->data[7] >> 6) == 1, "the DELAY did not fail: bStatus %02x",
			      r->data[7]);
		say("answered");
		/* As a guest's driver does after a failed APDU: power the
		 * card on until it answers with an ATR (the soak puts it back
		 * meanwhile; a pcsc card may come back without pcscd ever
		 * reporting it gone, so no NotifySlotChange is awaited). */
		ck_assert_msg(fake_qemu_spin(&g, card_back, GUINT_TO_POINTER(n_intr),
					     60000),
			      "no NotifySlotChange saying the card is back");
		peer_power_on(&g, 4);
		echo(&g, 5);
		say("echo-ok");
		fake_qemu_fini(&g);
	} else if (strcmp(mode, "gone") == 0) {
		ck_assert_msg(fake_qemu_spin(&g, fake_qemu_is_disconnected, NULL, 30000) ||
			      g.eof, "the agent did not go away");
		while (!g.eof)
			fake_qemu_spin(&g, NULL, NULL, 100);
		say("gone");
		fake_qemu_fini(&g);
	} else {
		ck_abort_msg("unknown mode %s", mode);
	}
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s = suite_create("soak-peer");
	TCase *tc = tcase_create("peer");
	SRunner *sr;
	int failed;

	if (argc < 3 || argc > 4 ||
	    (argc == 4 && strcmp(argv[3], "vicc") != 0 &&
	     strcmp(argv[3], "virtual") != 0)) {
		fprintf(stderr, "usage: %s SOCKET hang|drop|remove|gone|stream "
			"[vicc|virtual]\n", argv[0]);
		return 2;
	}
	sock_path = argv[1];
	mode = argv[2];
	if (argc == 4 && strcmp(argv[3], "vicc") == 0) {
		ins_echo = 0x14;
		ins_delay = 0x10;
	} else if (argc == 4) {
		virtual_card = true;
	}
	tcase_set_timeout(tc, 0);
	tcase_add_test(tc, test_peer);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_set_log(sr, NULL);
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	if (failed) {
		TestResult **tr = srunner_failures(sr);

		fprintf(stderr, "soak-peer (%s): %s\n", mode, tr_msg(tr[0]));
		free(tr);
	}
	srunner_free(sr);
	return failed ? 1 : 0;
}
