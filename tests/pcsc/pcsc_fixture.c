/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private pcscd + vicc for the pcsc tests (see pcsc_fixture.h).
 *
 * PCSC_TEST_DIR (set by meson) names tests/pcsc in the source tree, where
 * private-pcscd.sh and vicc_card.py live.
 */
#include "pcsc_fixture.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const guint16 vicc_small_fids[4] = { 0x1001, 0x1002, 0x1003, 0x1004 };

static char *work_dir;      /* private pcscd's directory */
static char *script_dir;
static char *vpcd_port;
static GPid vicc_pid;

guint8 vicc_small_byte(guint16 fid, guint i)
{
	return (guint8)(((fid & 0xFFu) * 37u + i * 11u) & 0xFFu);
}

guint8 vicc_pattern_byte(guint i)
{
	return (guint8)((i * 31u + 7u) & 0xFFu);
}

const char *pcsc_fixture_dir(void)
{
	return work_dir;
}

static char *script(const char *name)
{
	return g_build_filename(script_dir, name, NULL);
}

/* Reads KEY=VALUE lines of the env file private-pcscd.sh wrote. */
static char *env_value(const char *text, const char *key)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	gsize klen = strlen(key);

	for (guint i = 0; lines[i] != NULL; i++)
		if (strncmp(lines[i], key, klen) == 0 && lines[i][klen] == '=')
			return g_strdup(lines[i] + klen + 1);
	return NULL;
}

/* private-pcscd.sh CMD work_dir [ARG]; its stdout in *@out, its exit
 * status in *@code (may be NULL). */
static gboolean run_script_code(const char *cmd, const char *arg, char **out,
				int *code)
{
	g_autofree char *sh = script("private-pcscd.sh");
	g_autofree char *o = NULL;
	g_autofree char *e = NULL;
	g_autoptr(GError) error = NULL;
	const char *argv[] = { "/bin/sh", sh, cmd, work_dir, arg, NULL };
	int status = 0;

	if (!g_spawn_sync(NULL, (char **)argv, NULL, 0, NULL, NULL, &o, &e,
			  &status, &error)) {
		fprintf(stderr, "private-pcscd.sh: %s\n", error->message);
		return FALSE;
	}
	if (code != NULL)
		*code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "private-pcscd.sh %s failed (%d):\n%s%s", cmd,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1, o, e);
		return FALSE;
	}
	if (out != NULL)
		*out = g_steal_pointer(&o);
	return TRUE;
}

static gboolean run_script(const char *cmd, const char *arg, char **out)
{
	return run_script_code(cmd, arg, out, NULL);
}

int pcsc_fixture_start(void)
{
	g_autofree char *out = NULL;
	g_autofree char *sock = NULL;
	g_autoptr(GError) error = NULL;
	int code = 1;

	script_dir = g_strdup(g_getenv("PCSC_TEST_DIR"));
	if (script_dir == NULL) {
		fprintf(stderr, "PCSC_TEST_DIR is not set (run through meson "
			"test)\n");
		return 1;
	}
	/* vicc_card.py's needs (Debian: python3-virtualsmartcard,
	 * python3-pycryptodome). */
	if (!g_file_test("/usr/bin/python3", G_FILE_TEST_IS_EXECUTABLE) ||
	    !g_file_test("/usr/lib/python3/site-packages/virtualsmartcard/"
			 "virtualsmartcard", G_FILE_TEST_IS_DIR) ||
	    !g_file_test("/usr/lib/python3/dist-packages/Cryptodome",
			 G_FILE_TEST_IS_DIR)) {
		fprintf(stderr, "/usr/bin/python3 with python3-virtualsmartcard "
			"and python3-pycryptodome is needed\n");
		return 77;
	}
	/* Short: the socket path must fit sockaddr_un. */
	work_dir = g_dir_make_tmp("ccid-pcsc-XXXXXX", &error);
	if (work_dir == NULL) {
		fprintf(stderr, "tmp dir: %s\n", error->message);
		return 1;
	}
	/* The script exits 77 when pcscd, vpcd or unshare is missing. */
	if (!run_script_code("start", NULL, &out, &code))
		return code == 77 ? 77 : 1;
	sock = env_value(out, "PCSCLITE_CSOCK_NAME");
	vpcd_port = env_value(out, "VPCD_PORT");
	if (sock == NULL || vpcd_port == NULL) {
		fprintf(stderr, "private-pcscd.sh printed no environment:\n%s",
			out);
		return 1;
	}
	/* Before the first SCardEstablishContext of this process. */
	g_setenv("PCSCLITE_CSOCK_NAME", sock, TRUE);
	return pcsc_vicc_start() ? 0 : 1;
}

gboolean pcsc_pcscd_stop(void)
{
	return run_script("stop", NULL, NULL);
}

gboolean pcsc_pcscd_start(void)
{
	return run_script("start", vpcd_port, NULL);
}

void pcsc_fixture_stop(void)
{
	if (work_dir == NULL)
		return;
	pcsc_vicc_kill();
	(void)pcsc_pcscd_stop();
	{
		const char *argv[] = { "rm", "-rf", work_dir, NULL };

		(void)g_spawn_sync(NULL, (char **)argv, NULL,
				   G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
				   NULL, NULL, NULL);
	}
	g_clear_pointer(&work_dir, g_free);
	g_clear_pointer(&script_dir, g_free);
	g_clear_pointer(&vpcd_port, g_free);
}

gboolean pcsc_vicc_start(void)
{
	g_autofree char *py = script("vicc_card.py");
	g_autofree char *log = g_build_filename(work_dir, "vicc.log", NULL);
	g_autoptr(GError) error = NULL;
	const char *argv[] = { "/usr/bin/python3", py, "--port", vpcd_port,
			       NULL };
	gboolean ok;
	int fd;

	if (vicc_pid != 0)
		return TRUE;
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		return FALSE;
	ok = g_spawn_async_with_fds(NULL, (char **)argv, NULL,
				    G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
				    &vicc_pid, -1, fd, fd, &error);
	close(fd);
	if (!ok)
		fprintf(stderr, "vicc: %s\n", error->message);
	return ok;
}

gboolean pcsc_vicc_running(void)
{
	return vicc_pid != 0;
}

void pcsc_vicc_kill(void)
{
	if (vicc_pid == 0)
		return;
	kill(vicc_pid, SIGKILL);
	(void)waitpid(vicc_pid, NULL, 0);
	g_spawn_close_pid(vicc_pid);
	vicc_pid = 0;
}

/* --- the host application --------------------------------------------------- */

void pcsc_host_init(pcsc_host *h)
{
	LONG rv;

	memset(h, 0, sizeof(*h));
	rv = ccid_pcsc_context_establish(&h->ctx);
	ck_assert_msg(rv == SCARD_S_SUCCESS, "SCardEstablishContext: 0x%lx",
		      (unsigned long)rv);
}

void pcsc_host_clear(pcsc_host *h)
{
	pcsc_host_disconnect(h, SCARD_LEAVE_CARD);
	if (h->ctx != 0)
		(void)ccid_pcsc_context_release(h->ctx);
	memset(h, 0, sizeof(*h));
}

LONG pcsc_host_connect(pcsc_host *h, DWORD share)
{
	LONG rv;

	ck_assert(!h->connected);
	rv = SCardConnect(h->ctx, VICC_READER, share,
			  SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &h->card,
			  &h->protocol);
	h->connected = rv == SCARD_S_SUCCESS;
	return rv;
}

void pcsc_host_disconnect(pcsc_host *h, DWORD disposition)
{
	if (h->connected)
		(void)ccid_pcsc_card_disconnect(h->card, disposition);
	h->connected = FALSE;
}

LONG pcsc_host_xfr(pcsc_host *h, const guint8 *apdu, gsize len,
		   GByteArray *resp)
{
	DWORD n = 65538;
	LONG rv;

	g_byte_array_set_size(resp, n);
	rv = SCardTransmit(h->card, h->protocol == SCARD_PROTOCOL_T0 ?
			   SCARD_PCI_T0 : SCARD_PCI_T1, apdu, (DWORD)len, NULL,
			   resp->data, &n);
	g_byte_array_set_size(resp, rv == SCARD_S_SUCCESS ? n : 0);
	return rv;
}

GByteArray *pcsc_host_atr(pcsc_host *h)
{
	SCARD_READERSTATE rs = { 0 };
	GByteArray *atr = g_byte_array_new();
	LONG rv;

	rs.szReader = VICC_READER;
	rs.dwCurrentState = SCARD_STATE_UNAWARE;
	rv = SCardGetStatusChange(h->ctx, 0, &rs, 1);
	ck_assert_msg(rv == SCARD_S_SUCCESS, "SCardGetStatusChange: 0x%lx",
		      (unsigned long)rv);
	ck_assert(rs.dwEventState & SCARD_STATE_PRESENT);
	g_byte_array_append(atr, rs.rgbAtr, rs.cbAtr);
	return atr;
}

gboolean pcsc_host_wait_card(pcsc_host *h, gboolean present, guint ms)
{
	gint64 end = g_get_monotonic_time() + (gint64)ms * 1000;
	SCARD_READERSTATE rs = { 0 };

	rs.szReader = VICC_READER;
	rs.dwCurrentState = SCARD_STATE_UNAWARE;
	for (;;) {
		gint64 left = (end - g_get_monotonic_time()) / 1000;
		LONG rv = SCardGetStatusChange(h->ctx, left > 0 ? (DWORD)left : 0,
					       &rs, 1);

		if (rv != SCARD_S_SUCCESS)
			return FALSE;
		if (!!(rs.dwEventState & SCARD_STATE_PRESENT) == !!present &&
		    !(rs.dwEventState & SCARD_STATE_MUTE))
			return TRUE;
		rs.dwCurrentState = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
		if (left <= 0)
			return FALSE;
	}
}

guint32 pcsc_host_count(pcsc_host *h)
{
	static const guint8 count[] = { 0x80, 0x16, 0x00, 0x00, 0x04 };
	g_autoptr(GByteArray) r = g_byte_array_new();
	LONG rv = pcsc_host_xfr(h, count, sizeof(count), r);

	ck_assert_msg(rv == SCARD_S_SUCCESS, "COUNT: 0x%lx", (unsigned long)rv);
	ck_assert_uint_eq(r->len, 6);
	ck_assert_uint_eq(r->data[4], 0x90);
	return (guint32)r->data[0] << 24 | (guint32)r->data[1] << 16 |
	       (guint32)r->data[2] << 8 | r->data[3];
}

gsize apdu_select(guint8 *buf, guint16 fid)
{
	/* SELECT by file ID, no response data (P2 = 0C). */
	const guint8 a[] = { 0x00, 0xA4, 0x00, 0x0C, 0x02,
			     (guint8)(fid >> 8), (guint8)fid };

	memcpy(buf, a, sizeof(a));
	return sizeof(a);
}

gsize apdu_read(guint8 *buf, guint16 offset, guint32 ne)
{
	buf[0] = 0x00;
	buf[1] = 0xB0;
	buf[2] = (guint8)(offset >> 8);
	buf[3] = (guint8)offset;
	if (ne <= 256) {
		buf[4] = (guint8)ne;          /* 256 encodes as 00 */
		return 5;
	}
	buf[4] = 0x00;                        /* extended Le */
	buf[5] = (guint8)(ne >> 8);
	buf[6] = (guint8)ne;
	return 7;
}

gsize apdu_delay(guint8 *buf, guint32 ms)
{
	const guint8 a[] = { 0x80, 0x10, 0x00, 0x00, 0x04,
			     (guint8)(ms >> 24), (guint8)(ms >> 16),
			     (guint8)(ms >> 8), (guint8)ms };

	memcpy(buf, a, sizeof(a));
	return sizeof(a);
}
