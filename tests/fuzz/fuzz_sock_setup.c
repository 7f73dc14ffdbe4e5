/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the socket and TLS setup paths a peer or a command line
 * reaches before any usbredir byte (usbredir-bridge/ccid_sock_access.c,
 * ccid_tls.c, ccid_bridge_socket.c).
 *
 * Input: 1 flags byte, then three NUL-terminated strings (an address spec,
 * a group name, a socket name), a state byte and a umask (2 bytes), then
 * the bytes a TLS peer sends.
 *
 * 1. ccid_bridge_addr_parse() on the spec: success gives a usable address
 *    (a unix path of 1..107 bytes, or a host and a port 1..65535) whose
 *    description parses back to the same address; failure says why.
 * 2. ccid_sock_access_parse_group() on the name: success sets the group,
 *    failure says why.
 * 3. ccid_sock_listen_unix() where the name's file is missing, a regular
 *    file, a directory, a symlink to a canary, a stale socket or a live
 *    one, under the fuzzed umask, in the base directory or a new one:
 *    only "missing" and "stale" succeed, and the socket is 0600 (0660 for
 *    a group) whatever the umask, a new directory 0700 (2750); nothing
 *    that is not a stale socket is removed, the canary is untouched, a
 *    live socket still answers; we pass our own SO_PEERCRED check.
 * 4. ccid_tls_start() as server (flags bit 0) or client against the peer
 *    bytes over a socket pair, then EOF: the callback runs exactly once;
 *    a failure has a message; nothing leaks or crashes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>
#include <gnutls/gnutls.h>

#include "ccid_bridge.h"
#include "ccid_endpoint.h"
#include "ccid_sock_access.h"
#include "ccid_tls.h"
#include "fuzz_harness.h"

#define SF_MAX_STR  300u
#define SF_MAX_PEER 16384u

/* A throwaway self-signed ECDSA certificate, for this fuzz target only:
 * it is its own CA, with both TLS purposes and no expiry. */
static const char sf_key[] =
	"-----BEGIN EC PRIVATE KEY-----\n"
	"MHgCAQEEIQD4bxE1aA03Hd9P0eofb4g8QQOQa3dijocB2jPgkXwBsKAKBggqhkjO\n"
	"PQMBB6FEA0IABN6oYc2GJgpX3NZ8VUadORFLwnp6N7GF+QM4WyVI4Biuxue0xbbx\n"
	"7G0Cc83zRrbjxS+LLiyr+7aZ5U7TZPBeoGA=\n"
	"-----END EC PRIVATE KEY-----\n";
static const char sf_cert[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBwjCCAWmgAwIBAgIUGx3QfNS9uZAlmNkfZvFCRYdmuXowCgYIKoZIzj0EAwIw\n"
	"JDEiMCAGA1UEAxMZY2NpZC1lbXUgZnV6eiAodGVzdCBvbmx5KTAgFw0yNjEyMDYy\n"
	"MDE2MzRaGA85OTk5MTIzMTIzNTk1OVowJDEiMCAGA1UEAxMZY2NpZC1lbXUgZnV6\n"
	"eiAodGVzdCBvbmx5KTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN6oYc2GJgpX\n"
	"3NZ8VUadORFLwnp6N7GF+QM4WyVI4Biuxue0xbbx7G0Cc83zRrbjxS+LLiyr+7aZ\n"
	"5U7TZPBeoGCjdzB1MA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0lBBYwFAYIKwYBBQUH\n"
	"AwIGCCsGAQUFBwMBMBQGA1UdEQQNMAuCCWxvY2FsaG9zdDAOBgNVHQ8BAf8EBAMC\n"
	"AoQwHQYDVR0OBBYEFI2noPo1M+trZUn0CCnt8Qn3PDB0MAoGCCqGSM49BAMCA0cA\n"
	"MEQCIDEdUqJ5xOJ5AX2QtLq7Zt5baBaplKGFbtyK9+/qM+UGAiAOxyc4imr4PHH8\n"
	"cXR/pQC1RVIsuvZnzAX4dmkLxgLNOA==\n"
	"-----END CERTIFICATE-----\n";

static char *sf_base;                     /* our scratch directory */
static ccid_tls_creds *sf_server, *sf_client;

static void sf_write(const char *dir, const char *name, const char *text)
{
	char *path = g_build_filename(dir, name, NULL);

	if (!g_file_set_contents(path, text, -1, NULL))
		abort();
	g_free(path);
}

static void sf_init(void)
{
	char *creds;

	if (sf_base != NULL)
		return;
	/* GnuTLS (and p11-kit) are linked into this binary rather than only
	 * loaded with GIO's TLS module, so their thread-local data is static
	 * TLS: gcc 12's LeakSanitizer crashes at exit scanning the dynamic TLS
	 * of a dlopen()ed library in GLib's worker threads (glibc 2.36). */
	if (gnutls_check_version(NULL) == NULL)
		abort();
	/* On tmpfs when there is one: every input binds, makes and removes
	 * sockets and directories. */
	sf_base = g_strdup(fz_scratch_dir("ccid-fuzz-sock"));
	/* A group socket needs a setgid directory of that group. */
	if (chown(sf_base, (uid_t)-1, getegid()) < 0 || chmod(sf_base, 02700) < 0)
		abort();
	creds = g_build_filename(sf_base, "creds", NULL);
	if (mkdir(creds, 0700) < 0)
		abort();
	sf_write(creds, "ca-cert.pem", sf_cert);
	sf_write(creds, "server-cert.pem", sf_cert);
	sf_write(creds, "server-key.pem", sf_key);
	sf_write(creds, "client-cert.pem", sf_cert);
	sf_write(creds, "client-key.pem", sf_key);
	sf_write(sf_base, "canary", "canary");
	{
		/* GLib's TLS connections start from the backend's default
		 * database, the system's CA bundle, parsed anew for every
		 * connection (8 ms); the endpoints set their own before the
		 * handshake.  Here the default is the small test CA, so an
		 * execution costs a handshake, not a bundle. */
		char *ca = g_build_filename(creds, "ca-cert.pem", NULL);
		GTlsDatabase *db = g_tls_file_database_new(ca, NULL);

		if (db == NULL)
			abort();
		g_tls_backend_set_default_database(g_tls_backend_get_default(), db);
		g_object_unref(db);
		g_free(ca);
	}
	sf_server = ccid_tls_creds_load(creds, TRUE, NULL);
	sf_client = ccid_tls_creds_load(creds, FALSE, NULL);
	FZ_CHECK(sf_server != NULL && sf_client != NULL,
		 "the fuzz credentials do not load (glib-networking missing?)");
	g_free(creds);
}

/* A NUL-terminated string of at most SF_MAX_STR bytes from the input. */
static char *sf_str(struct fz_in *in)
{
	GString *s = g_string_new(NULL);

	while (fz_more(in) && s->len < SF_MAX_STR) {
		uint8_t c = fz_u8(in);

		if (c == 0)
			break;
		g_string_append_c(s, (char)c);
	}
	return g_string_free(s, FALSE);
}

static void sf_addr(const char *spec)
{
	struct ccid_bridge_addr a, b;
	GError *error = NULL;
	char *again;

	if (!ccid_bridge_addr_parse(spec, &a, &error)) {
		FZ_CHECK(error != NULL && error->message[0] != '\0',
			 "address '%s' refused without a message", spec);
		FZ_CHECK(a.path == NULL && a.host == NULL,
			 "a refused address keeps fields");
		g_error_free(error);
		return;
	}
	if (a.kind == CCID_ADDR_UNIX)
		FZ_CHECK(a.path != NULL && a.path[0] != '\0' &&
			 strlen(a.path) < sizeof(((struct sockaddr_un *)0)->sun_path),
			 "unix address '%s' with an unusable path", spec);
	else
		FZ_CHECK(a.kind == CCID_ADDR_TCP && a.host != NULL &&
			 a.host[0] != '\0' && a.port >= 1,
			 "tcp address '%s' without host or port", spec);
	again = ccid_endpoint_addr_describe(&a);
	FZ_CHECK(ccid_bridge_addr_parse(again, &b, NULL),
		 "'%s' described as '%s', which does not parse", spec, again);
	FZ_CHECK(a.kind == b.kind && a.port == b.port &&
		 g_strcmp0(a.path, b.path) == 0 && g_strcmp0(a.host, b.host) == 0,
		 "'%s' and its description '%s' differ", spec, again);
	g_free(again);
	ccid_bridge_addr_clear(&a);
	ccid_bridge_addr_clear(&b);
}

static void sf_group(const char *name)
{
	struct ccid_sock_access acc;
	GError *error = NULL;

	if (ccid_sock_access_parse_group(name, &acc, &error))
		FZ_CHECK(acc.allow_group, "group '%s' parsed but not set", name);
	else
		FZ_CHECK(error != NULL && error->message[0] != '\0',
			 "group '%s' refused without a message", name);
	g_clear_error(&error);
}

enum sf_state { SF_NONE, SF_FILE, SF_DIR, SF_SYMLINK, SF_STALE, SF_LIVE, SF_N };

static int sf_unix_socket(const char *path, bool listening)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    (listening && listen(fd, 1) < 0))
		abort();
	if (!listening) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool sf_connects(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void sf_listen(const char *raw, uint8_t state_byte, uint16_t mask)
{
	enum sf_state state = (enum sf_state)(state_byte % SF_N);
	bool group = state_byte & 0x40, subdir = state_byte & 0x80;
	struct ccid_sock_access acc = { .allow_group = group, .gid = getegid() };
	char name[17], *dir, *path, *canary;
	GError *error = NULL;
	struct stat st;
	mode_t old;
	dev_t dev = 0;
	ino_t ino = 0;
	size_t n = 0;
	int live = -1, fd;

	/* A name of 1..16 letters, so the path always fits. */
	for (const char *p = raw; *p != '\0' && n < 16; p++)
		name[n++] = (char)('a' + (uint8_t)*p % 26);
	if (n == 0)
		name[n++] = 's';
	name[n] = '\0';
	dir = subdir ? g_strdup_printf("%s/d-%s", sf_base, name) : g_strdup(sf_base);
	path = g_strdup_printf("%s/%s", dir, name);
	canary = g_build_filename(sf_base, "canary", NULL);
	if (subdir && state != SF_NONE && mkdir(dir, group ? 02750 : 0700) < 0)
		abort();
	switch (state) {
	case SF_NONE: break;
	case SF_FILE: sf_write(dir, name, "file"); break;
	case SF_DIR: if (mkdir(path, 0700) < 0) abort(); break;
	case SF_SYMLINK: if (symlink(canary, path) < 0) abort(); break;
	case SF_STALE: sf_unix_socket(path, false); break;
	case SF_LIVE: live = sf_unix_socket(path, true); break;
	case SF_N: abort();
	}
	old = umask(mask & 0777);
	fd = ccid_sock_listen_unix(path, &acc, "fuzz socket", 1, &dev, &ino, &error);
	umask(old);
	if (state == SF_NONE || state == SF_STALE) {
		FZ_CHECK(fd >= 0, "listen on a %s path failed: %s",
			 state == SF_NONE ? "missing" : "stale", error->message);
		FZ_CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
			 st.st_ino == ino, "the socket file is not the one made");
		FZ_CHECK((st.st_mode & 07777) == (group ? 0660u : 0600u),
			 "socket mode %o under umask %o", st.st_mode & 07777,
			 mask & 0777);
		if (subdir && state == SF_NONE) {
			FZ_CHECK(lstat(dir, &st) == 0 &&
				 (st.st_mode & 07777) == (group ? 02750u : 0700u),
				 "new directory mode %o", st.st_mode & 07777);
		}
		{
			struct sockaddr_un sun = { .sun_family = AF_UNIX };
			int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			int a;
			char *why = NULL;

			g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
			FZ_CHECK(c >= 0 && connect(c, (struct sockaddr *)&sun,
						   sizeof(sun)) == 0,
				 "cannot connect to the new socket");
			a = accept(fd, NULL, NULL);
			FZ_CHECK(a >= 0 && ccid_sock_peer_allowed(a, &acc, &why),
				 "our own connection refused: %s", why ? why : "");
			close(a);
			close(c);
		}
		close(fd);
		unlink(path);
	} else {
		FZ_CHECK(fd < 0 && error != NULL && error->message[0] != '\0',
			 "listen over a %s succeeded or said nothing",
			 state == SF_FILE ? "file" : state == SF_DIR ? "directory" :
			 state == SF_SYMLINK ? "symlink" : "live socket");
		FZ_CHECK(lstat(path, &st) == 0, "the %d in the way was removed",
			 (int)state);
		if (state == SF_SYMLINK) {
			char *text = NULL;

			FZ_CHECK(S_ISLNK(st.st_mode), "the symlink was replaced");
			FZ_CHECK(lstat(canary, &st) == 0 && S_ISREG(st.st_mode) &&
				 g_file_get_contents(canary, &text, NULL, NULL) &&
				 strcmp(text, "canary") == 0,
				 "the symlink's target changed");
			g_free(text);
		}
		if (state == SF_LIVE)
			FZ_CHECK(g_error_matches(error, CCID_SOCK_ERROR,
						 CCID_SOCK_ERROR_BUSY) &&
				 sf_connects(path), "a live socket was taken");
		if (state == SF_DIR)
			rmdir(path);
		else
			unlink(path);
	}
	if (live >= 0)
		close(live);
	if (subdir)
		rmdir(dir);
	g_clear_error(&error);
	g_free(canary);
	g_free(path);
	g_free(dir);
}

struct sf_done {
	unsigned calls;
	bool ok;
};

static void sf_tls_done(gpointer user, int fd, const char *peer,
			const GError *error)
{
	struct sf_done *d = user;

	d->calls++;
	if (fd >= 0) {
		d->ok = true;
		FZ_CHECK(peer != NULL, "a TLS success without a peer name");
		close(fd);
	} else {
		FZ_CHECK(error != NULL && error->message[0] != '\0',
			 "a TLS failure without a message");
	}
}

/* Only wake the main loop: sf_tls() looks at the socket itself. */
static gboolean sf_peer_ready(gint fd, GIOCondition cond, gpointer user)
{
	return G_SOURCE_CONTINUE;
}

static gboolean sf_deadline(gpointer user)
{
	return G_SOURCE_CONTINUE;
}

static void sf_tls(bool server, const uint8_t *peer, size_t len)
{
	struct sf_done d = { 0 };
	GSocket *sock;
	GSocketConnection *conn;
	GCancellable *cancel = g_cancellable_new();
	gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
	uint8_t sink[4096];
	size_t off = 0;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	sock = g_socket_new_from_fd(sv[0], NULL);
	if (sock == NULL)
		abort();
	conn = g_socket_connection_factory_create_connection(sock);
	ccid_tls_start(server ? sf_server : sf_client, conn, "localhost", 1,
		       "fuzz peer", 5000, cancel, sf_tls_done, &d);
	g_unix_set_fd_nonblocking(sv[1], TRUE, NULL);
	/* Feed the peer's bytes as the other side takes them, then EOF; drain
	 * what it says back so it never blocks.  Between rounds the main
	 * loop waits for the real events (the handshake's callback, the
	 * other side writing, or taking our bytes), not a fixed sleep. */
	while (d.calls == 0 && g_get_monotonic_time() < end) {
		GIOCondition want = 0;
		GSource *peer_src, *deadline;
		ssize_t r;

		if (off < len) {
			ssize_t w = send(sv[1], peer + off, len - off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w > 0)
				off += (size_t)w;
			if (off == len)
				shutdown(sv[1], SHUT_WR);
		} else if (len == 0) {
			shutdown(sv[1], SHUT_WR);
		}
		while ((r = recv(sv[1], sink, sizeof(sink), MSG_DONTWAIT)) > 0)
			;
		if (r < 0 && errno == EAGAIN)
			want |= G_IO_IN;       /* the other side may say more */
		if (off < len)
			want |= G_IO_OUT;      /* room for the rest of ours */
		g_main_context_iteration(NULL, FALSE);
		if (d.calls != 0)
			break;
		peer_src = g_unix_fd_source_new(sv[1], want);
		g_source_set_callback(peer_src, G_SOURCE_FUNC(sf_peer_ready), NULL,
				      NULL);
		g_source_attach(peer_src, NULL);
		deadline = g_timeout_source_new(
			(guint)MAX(1, (end - g_get_monotonic_time()) / 1000));
		g_source_set_callback(deadline, sf_deadline, NULL, NULL);
		g_source_attach(deadline, NULL);
		g_main_context_iteration(NULL, TRUE);
		g_source_destroy(peer_src);
		g_source_unref(peer_src);
		g_source_destroy(deadline);
		g_source_unref(deadline);
	}
	FZ_CHECK(d.calls == 1, "the TLS callback ran %u times", d.calls);
	/* Let the connection's own clean-up run before the next input. */
	g_cancellable_cancel(cancel);
	while (g_main_context_pending(NULL))
		g_main_context_iteration(NULL, FALSE);
	close(sv[1]);
	g_object_unref(conn);
	g_object_unref(sock);
	g_object_unref(cancel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	uint8_t flags, state;
	uint16_t mask;
	char *spec, *group, *name;

	sf_init();
	flags = fz_u8(&in);
	spec = sf_str(&in);
	group = sf_str(&in);
	name = sf_str(&in);
	state = fz_u8(&in);
	mask = fz_u16(&in);
	fz_trace("flags %02x spec '%s' group '%s' name '%s' state %02x umask %03o "
		 "peer %zu bytes", flags, spec, group, name, state, mask & 0777,
		 in.n);
	sf_addr(spec);
	sf_group(group);
	sf_listen(name, state, mask);
	if (flags & 0x02)
		sf_tls(flags & 0x01, in.p, MIN(in.n, SF_MAX_PEER));
	g_free(spec);
	g_free(group);
	g_free(name);
	return 0;
}
