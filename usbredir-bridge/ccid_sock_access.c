/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who may reach a listening socket (see ccid_sock_access.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib-unix.h>

#include "ccid_sock_access.h"

G_DEFINE_QUARK(ccid-sock-error-quark, ccid_sock_error)

gboolean ccid_sock_access_parse_group(const char *name,
				      struct ccid_sock_access *access,
				      GError **error)
{
	struct group *gr;
	char *end = NULL;
	unsigned long num;

	memset(access, 0, sizeof(*access));
	if (name == NULL || *name == '\0') {
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_ADDRESS,
			    "--allow-group needs a group name, e.g. "
			    "--allow-group libvirt-qemu");
		return FALSE;
	}
	gr = getgrnam(name);
	if (gr != NULL) {
		access->gid = gr->gr_gid;
	} else {
		errno = 0;
		num = strtoul(name, &end, 10);
		if (*end != '\0' || errno != 0 || num > G_MAXINT32 ||
		    !g_ascii_isdigit(*name)) {
			g_set_error(error, CCID_SOCK_ERROR,
				    CCID_SOCK_ERROR_ADDRESS,
				    "--allow-group '%s': no such group (see "
				    "getent group; QEMU under libvirt runs as "
				    "group libvirt-qemu or kvm)", name);
			return FALSE;
		}
		access->gid = (gid_t)num;
	}
	access->allow_group = true;
	return TRUE;
}

/* The directory the socket goes into: created if missing, and for a group
 * socket it must carry that group down to new files (setgid).  A symlink
 * to a directory (/var/run) is fine: the socket file itself is what must
 * not be a link. */
static gboolean prepare_dir(const char *dir, const struct ccid_sock_access *access,
			    GError **error)
{
	g_autofree char *parent = g_path_get_dirname(dir);
	struct stat st;
	int dfd;

	if (stat(dir, &st) < 0) {
		if (errno != ENOENT) {
			g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_SOCKET,
				    "cannot use directory %s: %s", dir,
				    g_strerror(errno));
			return FALSE;
		}
		if (g_mkdir_with_parents(parent, 0700) < 0 ||
		    (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
			g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_SOCKET,
				    "cannot create directory %s: %s", dir,
				    g_strerror(errno));
			return FALSE;
		}
		/* Ours (or someone's who just made it: then fchown/fchmod
		 * fail) and still empty.  Its exact mode, whatever the umask
		 * or a setgid parent made of the mkdir(): 0700, or 2750 of
		 * the group so that new files inherit the group. */
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0 ||
		    (access->allow_group &&
		     fchown(dfd, (uid_t)-1, access->gid) < 0) ||
		    fchmod(dfd, access->allow_group ? 02750 : 0700) < 0) {
			int e = errno;

			if (dfd >= 0)
				close(dfd);
			g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_SOCKET,
				    "cannot set up directory %s: %s%s", dir,
				    g_strerror(e), access->allow_group ?
				    " (are you a member of the group?)" : "");
			return FALSE;
		}
		close(dfd);
		if (stat(dir, &st) < 0) {
			g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_SOCKET,
				    "cannot stat directory %s: %s", dir,
				    g_strerror(errno));
			return FALSE;
		}
	}
	if (!S_ISDIR(st.st_mode)) {
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_ADDRESS,
			    "%s is not a directory", dir);
		return FALSE;
	}
	if (access->allow_group &&
	    (st.st_gid != access->gid || !(st.st_mode & S_ISGID))) {
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_ADDRESS,
			    "directory %s is not a setgid directory of group %u, "
			    "so group members could not reach a socket in it; "
			    "use a new directory (ccid-agent creates it) or "
			    "run: chgrp %u %s && chmod 2750 %s", dir,
			    (unsigned)access->gid, (unsigned)access->gid, dir, dir);
		return FALSE;
	}
	return TRUE;
}

/* Clears the way for a new socket: only a socket file that refuses
 * connections is someone's leftover. */
static gboolean take_path(const struct sockaddr_un *sun, const char *what,
			  GError **error)
{
	const char *path = sun->sun_path;
	struct stat st;
	int probe, e;

	if (lstat(path, &st) < 0)
		return TRUE;
	if (!S_ISSOCK(st.st_mode)) {
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_ADDRESS,
			    "%s exists and is not a socket; not replacing it",
			    path);
		return FALSE;
	}
	/* Non-blocking: a listener with a full backlog answers EAGAIN at
	 * once rather than holding us up; it is alive all the same. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0) {
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_SOCKET,
			    "socket: %s", g_strerror(errno));
		return FALSE;
	}
	e = connect(probe, (const struct sockaddr *)sun, sizeof(*sun)) == 0 ?
	    0 : errno;
	close(probe);
	if (e == 0 || e == EAGAIN) {
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_BUSY,
			    "%s %s is in use by another process "
			    "(another ccid-agent?)", what, path);
		return FALSE;
	}
	if (e != ECONNREFUSED) {
		/* EACCES: maybe another user's live socket.  Not ours to take. */
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_BUSY,
			    "%s %s exists and cannot be probed (%s); leaving it "
			    "alone: remove it yourself if no agent uses it, or "
			    "choose another path", what, path, g_strerror(e));
		return FALSE;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_SOCKET,
			    "cannot remove stale %s %s: %s", what, path,
			    g_strerror(errno));
		return FALSE;
	}
	return TRUE;
}

int ccid_sock_listen_unix(const char *path, const struct ccid_sock_access *access,
			  const char *what, int backlog, dev_t *dev, ino_t *ino,
			  GError **error)
{
	static const struct ccid_sock_access owner_only;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	g_autofree char *dir = NULL;
	struct stat st;
	mode_t old_mask;
	int fd, rc, e;

	if (access == NULL)
		access = &owner_only;
	if (path == NULL || *path == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_ADDRESS,
			    "%s path '%s' is empty or longer than %zu bytes", what,
			    path ? path : "", sizeof(sun.sun_path) - 1);
		return -1;
	}
	g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	dir = g_path_get_dirname(path);
	if (!prepare_dir(dir, access, error) || !take_path(&sun, what, error))
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		g_set_error(error, CCID_SOCK_ERROR, CCID_SOCK_ERROR_SOCKET,
			    "socket: %s", g_strerror(errno));
		return -1;
	}
	/* The file is born with its final mode: no window in which another
	 * user could connect, and no chmod that could follow a symlink. */
	old_mask = umask(access->allow_group ? 0117 : 0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	umask(old_mask);
	if (rc < 0 || listen(fd, backlog) < 0) {
		if (rc == 0)
			e = errno;
		close(fd);
		g_set_error(error, CCID_SOCK_ERROR,
			    e == EADDRINUSE ? CCID_SOCK_ERROR_BUSY :
			    CCID_SOCK_ERROR_SOCKET,
			    "cannot listen on %s %s: %s", what, path, g_strerror(e));
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (dev)
			*dev = st.st_dev;
		if (ino)
			*ino = st.st_ino;
	}
	return fd;
}

gboolean ccid_sock_peer_allowed(int fd, const struct ccid_sock_access *access,
				char **why)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[256];
	socklen_t glen = sizeof(groups);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		*why = g_strdup_printf("cannot read the peer's credentials: %s",
				       g_strerror(errno));
		return FALSE;
	}
	if (cred.uid == geteuid())
		return TRUE;
	if (access != NULL && access->allow_group) {
		if (cred.gid == access->gid)
			return TRUE;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
			for (size_t i = 0; i < glen / sizeof(gid_t); i++)
				if (groups[i] == access->gid)
					return TRUE;
		*why = g_strdup_printf("peer pid %d runs as uid %u gid %u, "
				       "neither our uid %u nor in the allowed "
				       "group %u", (int)cred.pid,
				       (unsigned)cred.uid, (unsigned)cred.gid,
				       (unsigned)geteuid(),
				       (unsigned)access->gid);
		return FALSE;
	}
	*why = g_strdup_printf("peer pid %d runs as uid %u, not our uid %u "
			       "(to let another user's QEMU in, use "
			       "--allow-group with its group)", (int)cred.pid,
			       (unsigned)cred.uid, (unsigned)geteuid());
	return FALSE;
}

/* ---- accept with back-off ----------------------------------------------- */

#define BACKOFF_FIRST_MS 100u
#define BACKOFF_MAX_MS 2000u

struct ccid_acceptor {
	int fd;
	bool nonblock;
	char *what;
	ccid_acceptor_fn fn;
	gpointer user;
	GMainContext *ctx;
	GSource *watch;
	GSource *pause;
	guint backoff_ms;
	guint backoffs;
};

static void acceptor_watch(ccid_acceptor *acc);

static gboolean acceptor_resume_cb(gpointer data)
{
	ccid_acceptor *acc = data;

	g_source_unref(acc->pause);
	acc->pause = NULL;
	acceptor_watch(acc);
	return G_SOURCE_REMOVE;
}

static gboolean acceptor_cb(gint fd, GIOCondition cond, gpointer data)
{
	ccid_acceptor *acc = data;
	int flags = SOCK_CLOEXEC | (acc->nonblock ? SOCK_NONBLOCK : 0);
	int cfd = accept4(fd, NULL, NULL, flags);

	if (cfd >= 0) {
		acc->backoff_ms = 0;
		acc->fn(acc->user, cfd);
		return G_SOURCE_CONTINUE;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
	    errno == ECONNABORTED || errno == EPROTO)
		return G_SOURCE_CONTINUE;    /* that peer is gone; next */
	/* The socket stays readable while the connection waits in the
	 * backlog: stop watching it for a while, or this is a busy loop. */
	if (acc->backoff_ms == 0)
		g_message("%s: accept failed: %s; pausing new connections",
			  acc->what, g_strerror(errno));
	acc->backoff_ms = acc->backoff_ms == 0 ? BACKOFF_FIRST_MS :
			  MIN(acc->backoff_ms * 2, BACKOFF_MAX_MS);
	acc->backoffs++;
	acc->pause = g_timeout_source_new(acc->backoff_ms);
	g_source_set_callback(acc->pause, acceptor_resume_cb, acc, NULL);
	g_source_attach(acc->pause, acc->ctx);
	g_source_unref(acc->watch);
	acc->watch = NULL;
	return G_SOURCE_REMOVE;
}

static void acceptor_watch(ccid_acceptor *acc)
{
	acc->watch = g_unix_fd_source_new(acc->fd, G_IO_IN);
	g_source_set_callback(acc->watch, G_SOURCE_FUNC(acceptor_cb), acc, NULL);
	g_source_attach(acc->watch, acc->ctx);
}

ccid_acceptor *ccid_acceptor_new(int listen_fd, bool nonblock, const char *what,
				 ccid_acceptor_fn fn, gpointer user)
{
	ccid_acceptor *acc = g_new0(ccid_acceptor, 1);

	acc->fd = listen_fd;
	acc->nonblock = nonblock;
	acc->what = g_strdup(what);
	acc->fn = fn;
	acc->user = user;
	acc->ctx = g_main_context_ref_thread_default();
	acceptor_watch(acc);
	return acc;
}

guint ccid_acceptor_backoffs(const ccid_acceptor *acc)
{
	return acc->backoffs;
}

static void drop_source(GSource **src)
{
	if (*src != NULL) {
		g_source_destroy(*src);
		g_source_unref(*src);
		*src = NULL;
	}
}

void ccid_acceptor_free(ccid_acceptor *acc)
{
	if (acc == NULL)
		return;
	drop_source(&acc->watch);
	drop_source(&acc->pause);
	g_main_context_unref(acc->ctx);
	g_free(acc->what);
	g_free(acc);
}
