/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TLS for the usbredir endpoints (see ccid_tls.h).  All cryptography and
 * record framing are GnuTLS's, through GLib's GTlsConnection.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ccid_bridge.h"
#include "ccid_tls.h"

struct ccid_tls_creds {
	char *dir;
	char *ca_path;
	gboolean server;
	GTlsCertificate *cert;      /* ours; NULL for a client without one */
	GTlsDatabase *ca;
};

const char *ccid_tls_creds_dir(const ccid_tls_creds *creds)
{
	return creds->dir;
}

void ccid_tls_creds_free(ccid_tls_creds *creds)
{
	if (creds == NULL)
		return;
	g_clear_object(&creds->cert);
	g_clear_object(&creds->ca);
	g_free(creds->ca_path);
	g_free(creds->dir);
	g_free(creds);
}

ccid_tls_creds *ccid_tls_creds_load(const char *dir, gboolean server,
				    GError **error)
{
	g_autoptr(ccid_tls_creds) creds = g_new0(ccid_tls_creds, 1);
	const char *role = server ? "server" : "client";
	g_autofree char *cert_name = g_strdup_printf("%s-cert.pem", role);
	g_autofree char *key_name = g_strdup_printf("%s-key.pem", role);
	g_autofree char *cert_path = g_build_filename(dir, cert_name, NULL);
	g_autofree char *key_path = g_build_filename(dir, key_name, NULL);
	gboolean have_cert, have_key;

	if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_CONFIG,
			    "GLib has no TLS backend; install glib-networking");
		return NULL;
	}
	if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_CONFIG,
			    "--tls-creds %s: not a directory (it holds ca-cert.pem "
			    "and %s, as for QEMU's tls-creds-x509; see "
			    "docs/remote-reader.md)", dir, cert_name);
		return NULL;
	}
	creds->dir = g_strdup(dir);
	creds->server = server;
	creds->ca_path = g_build_filename(dir, "ca-cert.pem", NULL);
	creds->ca = g_tls_file_database_new(creds->ca_path, error);
	if (creds->ca == NULL) {
		g_prefix_error(error, "--tls-creds: the CA certificate %s "
			       "(the CA that signed the peer's certificate): ",
			       creds->ca_path);
		return NULL;
	}
	have_cert = g_file_test(cert_path, G_FILE_TEST_EXISTS);
	have_key = g_file_test(key_path, G_FILE_TEST_EXISTS);
	if (!have_cert && !have_key && !server)
		return g_steal_pointer(&creds);   /* a client may go without */
	if (!have_cert || !have_key) {
		g_set_error(error, CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_CONFIG,
			    "--tls-creds %s: %s is missing (a %s needs %s and %s; "
			    "see docs/remote-reader.md)", dir,
			    have_cert ? key_name : cert_name, role, cert_name,
			    key_name);
		return NULL;
	}
	creds->cert = g_tls_certificate_new_from_files(cert_path, key_path, error);
	if (creds->cert == NULL) {
		g_prefix_error(error, "--tls-creds: %s with %s: ", cert_path,
			       key_path);
		return NULL;
	}
	return g_steal_pointer(&creds);
}

/* ---- one handshake, then the pipe ----------------------------------------- */

struct tls_link {
	ccid_tls_creds *creds;      /* borrowed: the endpoint outlives us */
	GIOStream *tls;
	GCancellable *cancel;       /* ours: the timeout cancels it */
	GCancellable *outer;        /* the caller's */
	gulong outer_id;
	guint timeout_id;
	gboolean timed_out;
	GTlsCertificateFlags peer_errors;
	char *peer;                 /* address */
	char *who;                  /* address and certificate subject */
	char *server_host;
	guint8 first[4096];         /* the peer's first bytes */
	ccid_tls_done_fn done;
	gpointer user;
};

static void link_free(struct tls_link *l)
{
	if (l->timeout_id)
		g_source_remove(l->timeout_id);
	if (l->outer != NULL) {
		g_cancellable_disconnect(l->outer, l->outer_id);
		g_object_unref(l->outer);
	}
	if (l->tls != NULL)
		g_signal_handlers_disconnect_by_data(l->tls, l);
	g_clear_object(&l->tls);
	g_clear_object(&l->cancel);
	g_free(l->peer);
	g_free(l->who);
	g_free(l->server_host);
	g_free(l);
}

/* What is wrong with the peer's certificate, in the user's words. */
static char *describe_cert_errors(const struct tls_link *l)
{
	static const struct {
		GTlsCertificateFlags flag;
		const char *text;
	} flags[] = {
		{ G_TLS_CERTIFICATE_UNKNOWN_CA, "is not signed by the CA in " },
		{ G_TLS_CERTIFICATE_BAD_IDENTITY, "does not name the host " },
		{ G_TLS_CERTIFICATE_NOT_ACTIVATED, "is not valid yet" },
		{ G_TLS_CERTIFICATE_EXPIRED, "has expired" },
		{ G_TLS_CERTIFICATE_REVOKED, "is revoked" },
		{ G_TLS_CERTIFICATE_INSECURE, "uses an insecure algorithm" },
		{ G_TLS_CERTIFICATE_GENERIC_ERROR, "is invalid" },
	};
	GString *s = g_string_new(NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
		const char *arg = "";

		if (!(l->peer_errors & flags[i].flag))
			continue;
		if (flags[i].flag == G_TLS_CERTIFICATE_UNKNOWN_CA)
			arg = l->creds->ca_path;
		else if (flags[i].flag == G_TLS_CERTIFICATE_BAD_IDENTITY)
			arg = l->server_host ? l->server_host : "";
		if (s->len > 0)
			g_string_append(s, ", and ");
		g_string_append(s, flags[i].text);
		g_string_append(s, arg);
	}
	return g_string_free(s, FALSE);
}

static gboolean on_accept_certificate(GTlsConnection *conn, GTlsCertificate *cert,
				      GTlsCertificateFlags errors, gpointer data)
{
	struct tls_link *l = data;

	/* A server connection asks even for a certificate that verified;
	 * any validation error refuses the peer. */
	l->peer_errors = errors;
	return errors == 0;
}

static gboolean on_timeout(gpointer data)
{
	struct tls_link *l = data;

	l->timeout_id = 0;
	l->timed_out = TRUE;
	g_cancellable_cancel(l->cancel);
	return G_SOURCE_REMOVE;
}

static void on_outer_cancelled(GCancellable *outer, gpointer data)
{
	struct tls_link *l = data;

	g_cancellable_cancel(l->cancel);
}

/* ---- the cleartext pipe between the session and the TLS stream ------------ */

/* TLS records we send carry at most this much: QEMU 7.2's TLS chardev
 * reads 4 KiB at a time and waits for the socket to become readable
 * again, so plaintext GnuTLS decrypted beyond that from a bigger record
 * would sit unread until our next message (a stalled extended APDU). */
#define TLS_RECORD_PLAINTEXT 4096u

struct tls_pipe {
	gint refs;                  /* one per direction */
	GIOStream *tls;
	GIOStream *local;           /* our end of the session's socket pair */
	GCancellable *cancel;
	gboolean ended;
	char *who;
	guint8 buf[TLS_RECORD_PLAINTEXT];
};

static void pipe_unref(struct tls_pipe *p)
{
	if (!g_atomic_int_dec_and_test(&p->refs))
		return;
	/* Both directions are done, nothing is pending on either stream:
	 * closing sends the peer a close_notify and the session an EOF.  The
	 * close holds its own reference to each stream. */
	g_io_stream_close_async(p->tls, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
	g_io_stream_close_async(p->local, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
	g_object_unref(p->tls);
	g_object_unref(p->local);
	g_object_unref(p->cancel);
	g_free(p->who);
	g_free(p);
}

/* Either direction ending ends both: the session sees EOF when the peer
 * goes, and the peer gets a close_notify when the session lets go. */
static void pipe_end(struct tls_pipe *p, const GError *error)
{
	if (p->ended)
		return;
	p->ended = TRUE;
	/* The peer spoke before the pipe started, so it had accepted our
	 * certificate: a peer that goes without a close_notify (QEMU killed)
	 * is an ordinary disconnect, which the session reports; anything
	 * else on the TLS layer is worth a line. */
	if (error != NULL && error->domain == G_TLS_ERROR &&
	    error->code != G_TLS_ERROR_EOF)
		g_message("TLS link with %s ended: %s", p->who, error->message);
	else if (error != NULL)
		g_debug("TLS link with %s ended: %s", p->who, error->message);
	g_cancellable_cancel(p->cancel);
}

static void pipe_read_local(struct tls_pipe *p);

static void on_tls_written(GObject *src, GAsyncResult *res, gpointer data)
{
	struct tls_pipe *p = data;
	g_autoptr(GError) error = NULL;

	if (!g_output_stream_write_all_finish(G_OUTPUT_STREAM(src), res, NULL,
					      &error)) {
		pipe_end(p, error);
		pipe_unref(p);
		return;
	}
	pipe_read_local(p);
}

static void on_local_read(GObject *src, GAsyncResult *res, gpointer data)
{
	struct tls_pipe *p = data;
	g_autoptr(GError) error = NULL;
	gssize n = g_input_stream_read_finish(G_INPUT_STREAM(src), res, &error);

	if (n <= 0) {
		pipe_end(p, error);
		pipe_unref(p);
		return;
	}
	g_output_stream_write_all_async(g_io_stream_get_output_stream(p->tls),
					p->buf, (gsize)n, G_PRIORITY_DEFAULT,
					p->cancel, on_tls_written, p);
}

static void pipe_read_local(struct tls_pipe *p)
{
	g_input_stream_read_async(g_io_stream_get_input_stream(p->local), p->buf,
				  sizeof(p->buf), G_PRIORITY_DEFAULT, p->cancel,
				  on_local_read, p);
}

static void on_tls_spliced(GObject *src, GAsyncResult *res, gpointer data)
{
	struct tls_pipe *p = data;
	g_autoptr(GError) error = NULL;

	g_output_stream_splice_finish(G_OUTPUT_STREAM(src), res, &error);
	pipe_end(p, error);
	pipe_unref(p);
}

static void pipe_start(GIOStream *tls, GIOStream *local, const char *who)
{
	struct tls_pipe *p = g_new0(struct tls_pipe, 1);

	p->refs = 2;
	p->tls = g_object_ref(tls);
	p->local = g_object_ref(local);
	p->cancel = g_cancellable_new();
	p->who = g_strdup(who);
	/* Peer to session: any size will do. */
	g_output_stream_splice_async(g_io_stream_get_output_stream(local),
				     g_io_stream_get_input_stream(tls),
				     G_OUTPUT_STREAM_SPLICE_NONE,
				     G_PRIORITY_DEFAULT, p->cancel,
				     on_tls_spliced, p);
	/* Session to peer: records small enough for QEMU. */
	pipe_read_local(p);
}

static void fail(struct tls_link *l, const GError *cause)
{
	g_autoptr(GError) error = NULL;
	const char *side = G_IS_TLS_SERVER_CONNECTION(l->tls) ? "client" : "server";

	if (l->peer_errors != 0) {
		g_autofree char *why = describe_cert_errors(l);

		error = g_error_new(CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_SOCKET,
				    "TLS with %s refused: its %s certificate %s",
				    l->peer, side, why);
	} else if (l->timed_out) {
		error = g_error_new(CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_SOCKET,
				    "TLS with %s: no handshake within the time "
				    "allowed (is it a TLS peer?)", l->peer);
	} else if (g_error_matches(cause, G_TLS_ERROR, G_TLS_ERROR_CERTIFICATE_REQUIRED)) {
		error = g_error_new(CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_SOCKET,
				    "TLS with %s refused: it sent no client "
				    "certificate (QEMU needs client-cert.pem and "
				    "client-key.pem in its tls-creds-x509 dir)",
				    l->peer);
	} else if (g_error_matches(cause, G_TLS_ERROR, G_TLS_ERROR_NOT_TLS) ||
		   g_error_matches(cause, G_TLS_ERROR, G_TLS_ERROR_MISC) ||
		   g_error_matches(cause, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED) ||
		   g_error_matches(cause, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE)) {
		error = g_error_new(CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_SOCKET,
				    "TLS handshake with %s failed: %s (is the "
				    "peer using plain TCP, or refusing our "
				    "certificate? QEMU's chardev needs "
				    "tls-creds=; see docs/remote-reader.md)",
				    l->peer, cause->message);
	} else {
		error = g_error_new(CCID_BRIDGE_ERROR, CCID_BRIDGE_ERROR_SOCKET,
				    "TLS handshake with %s failed: %s", l->peer,
				    cause ? cause->message : "unknown error");
	}
	l->done(l->user, -1, NULL, error);
}

/* The peer has spoken: it accepted our certificate (with TLS 1.3 a peer
 * refuses it only after our side of the handshake is over).  Hand the
 * cleartext, these first bytes included, to the session. */
static void on_first_data(GObject *src, GAsyncResult *res, gpointer data)
{
	struct tls_link *l = data;
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) mine = NULL;
	g_autoptr(GSocketConnection) mine_conn = NULL;
	gssize n = g_input_stream_read_finish(G_INPUT_STREAM(src), res, &error);
	int sv[2];

	if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED) &&
	    !l->timed_out) {
		link_free(l);
		return;
	}
	if (n <= 0) {
		g_autoptr(GError) e = g_error_new(CCID_BRIDGE_ERROR,
			CCID_BRIDGE_ERROR_SOCKET,
			"TLS with %s: the peer %s right after the handshake "
			"(%s): it probably refused our certificate, which must "
			"be signed by the CA in the peer's ca-cert.pem, be valid "
			"now%s (QEMU: -trace qio_channel_tls_credentials_deny "
			"shows a refusal)", l->who,
			l->timed_out ? "sent nothing" : "hung up",
			n < 0 ? error->message : "end of stream",
			G_IS_TLS_SERVER_CONNECTION(l->tls) ? "" :
			", and name the host connected to");

		l->done(l->user, -1, NULL, e);
		link_free(l);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		sv[0] = sv[1] = -1;
	} else if (send(sv[1], l->first, (size_t)n, MSG_NOSIGNAL) != n) {
		/* A fresh socket pair takes 4 KiB at once, or nothing does. */
		close(sv[0]);
		close(sv[1]);
		sv[0] = sv[1] = -1;
	}
	if (sv[0] < 0) {
		g_autoptr(GError) e = g_error_new(CCID_BRIDGE_ERROR,
						  CCID_BRIDGE_ERROR_SOCKET,
						  "socket pair for %s: %s", l->who,
						  g_strerror(errno));

		l->done(l->user, -1, NULL, e);
		link_free(l);
		return;
	}
	mine = g_socket_new_from_fd(sv[1], &error);
	if (mine == NULL) {
		close(sv[0]);
		close(sv[1]);
		l->done(l->user, -1, NULL, error);
		link_free(l);
		return;
	}
	mine_conn = g_socket_connection_factory_create_connection(mine);
	pipe_start(l->tls, G_IO_STREAM(mine_conn), l->who);
	l->done(l->user, sv[0], l->who, NULL);
	link_free(l);
}

static void on_handshake(GObject *src, GAsyncResult *res, gpointer data)
{
	struct tls_link *l = data;
	g_autoptr(GError) error = NULL;
	GTlsCertificate *cert;

	if (!g_tls_connection_handshake_finish(G_TLS_CONNECTION(src), res, &error)) {
		if (!(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED) &&
		      !l->timed_out))
			fail(l, error);
		link_free(l);
		return;
	}
	cert = g_tls_connection_get_peer_certificate(G_TLS_CONNECTION(l->tls));
	if (cert != NULL) {
		g_autofree char *subject = g_tls_certificate_get_subject_name(cert);

		l->who = g_strdup_printf("%s (TLS, %s)", l->peer,
					 subject ? subject : "no subject");
	} else {
		l->who = g_strdup_printf("%s (TLS)", l->peer);
	}
	/* A usbredir peer speaks first (its hello), within the same
	 * deadline as the handshake. */
	g_input_stream_read_async(g_io_stream_get_input_stream(l->tls), l->first,
				  sizeof(l->first), G_PRIORITY_DEFAULT, l->cancel,
				  on_first_data, l);
}

void ccid_tls_start(ccid_tls_creds *creds, GSocketConnection *conn,
		    const char *server_host, guint16 server_port,
		    const char *peer, guint timeout_ms, GCancellable *cancel,
		    ccid_tls_done_fn done, gpointer user)
{
	struct tls_link *l = g_new0(struct tls_link, 1);
	g_autoptr(GError) error = NULL;

	l->creds = creds;
	l->peer = g_strdup(peer);
	l->server_host = g_strdup(server_host);
	l->done = done;
	l->user = user;
	l->cancel = g_cancellable_new();
	if (creds->server) {
		l->tls = g_tls_server_connection_new(G_IO_STREAM(conn), creds->cert,
						     &error);
		if (l->tls != NULL)
			g_object_set(l->tls, "authentication-mode",
				     G_TLS_AUTHENTICATION_REQUIRED, NULL);
	} else {
		g_autoptr(GSocketConnectable) id =
			g_network_address_new(server_host, server_port);

		l->tls = g_tls_client_connection_new(G_IO_STREAM(conn), id, &error);
		if (l->tls != NULL && creds->cert != NULL)
			g_tls_connection_set_certificate(G_TLS_CONNECTION(l->tls),
							 creds->cert);
	}
	if (l->tls == NULL) {
		g_prefix_error(&error, "TLS with %s: ", peer);
		done(user, -1, NULL, error);
		link_free(l);
		return;
	}
	g_tls_connection_set_database(G_TLS_CONNECTION(l->tls), creds->ca);
	g_signal_connect(l->tls, "accept-certificate",
			 G_CALLBACK(on_accept_certificate), l);
	if (cancel != NULL) {
		l->outer = g_object_ref(cancel);
		l->outer_id = g_cancellable_connect(cancel,
						    G_CALLBACK(on_outer_cancelled),
						    l, NULL);
	}
	l->timeout_id = g_timeout_add(timeout_ms, on_timeout, l);
	g_tls_connection_handshake_async(G_TLS_CONNECTION(l->tls),
					 G_PRIORITY_DEFAULT, l->cancel,
					 on_handshake, l);
}
