/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may reach a listening socket: unix sockets created owner-only (or
 * owner and one group) before anyone can connect, peers checked with
 * SO_PEERCRED, stale socket files replaced only when nobody listens
 * (ECONNREFUSED), and an accept loop that backs off when accept() fails
 * (EMFILE and friends) instead of spinning on a readable socket.
 *
 * Used by the usbredir endpoints (ccid_endpoint.c) and the agent's control
 * socket, so every unix socket the agent listens on follows one rule.
 */
#ifndef CCID_EMU_CCID_SOCK_ACCESS_H
#define CCID_EMU_CCID_SOCK_ACCESS_H

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>

G_BEGIN_DECLS

#define CCID_SOCK_ERROR (ccid_sock_error_quark())
GQuark ccid_sock_error_quark(void);
enum ccid_sock_error {
	CCID_SOCK_ERROR_ADDRESS,     /* unusable path or group */
	CCID_SOCK_ERROR_SOCKET,      /* a socket call failed */
	CCID_SOCK_ERROR_BUSY,        /* someone else's socket is there */
};

/* Besides our own uid, peers with this group (primary or supplementary)
 * may connect: e.g. the group QEMU runs as under libvirt. */
struct ccid_sock_access {
	bool allow_group;
	gid_t gid;
};

/* Fills @access from a group name or number; a clear error otherwise. */
gboolean ccid_sock_access_parse_group(const char *name,
				      struct ccid_sock_access *access,
				      GError **error);

/* A listening, non-blocking unix socket at @path.  A missing parent
 * directory is created 0700 (02750 and of the allowed group when @access
 * allows one).  The socket file is created with mode 0600 (0660 in a
 * directory of the allowed group) by the umask around bind(), so it is
 * never reachable with looser permissions.  An existing file is replaced
 * only if it is a socket nobody listens on (ECONNREFUSED); a live socket is
 * CCID_SOCK_ERROR_BUSY; anything else is left alone with an error that
 * says why.  @what names the socket in messages ("control socket").
 * @dev/@ino identify the file made, for a later unlink of our own file
 * only. */
int ccid_sock_listen_unix(const char *path, const struct ccid_sock_access *access,
			  const char *what, int backlog, dev_t *dev, ino_t *ino,
			  GError **error);

/* TRUE if the peer on unix socket @fd is our uid or in the allowed group;
 * otherwise FALSE with a sentence in @why ("uid 1001 (gid 1001) is not
 * ..."). */
gboolean ccid_sock_peer_allowed(int fd, const struct ccid_sock_access *access,
				char **why);

/* Accepts on @listen_fd from the thread-default main context and hands
 * each new connection (close-on-exec, blocking unless @nonblock) to @fn.
 * When accept() fails for want of resources (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) it stops watching the socket for a while (100 ms doubling to
 * 2 s) and says so once, instead of spinning on the still-readable
 * socket. */
typedef void (*ccid_acceptor_fn)(gpointer user, int fd);
typedef struct ccid_acceptor ccid_acceptor;
ccid_acceptor *ccid_acceptor_new(int listen_fd, bool nonblock, const char *what,
				 ccid_acceptor_fn fn, gpointer user);
void ccid_acceptor_free(ccid_acceptor *acc);   /* accepts NULL */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ccid_acceptor, ccid_acceptor_free)

/* How many times accept() failed for want of resources (for tests). */
guint ccid_acceptor_backoffs(const ccid_acceptor *acc);

G_END_DECLS

#endif /* CCID_EMU_CCID_SOCK_ACCESS_H */
