/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvirt domains as VMs (see daemon_libvirt.h): the loadable module
 * (daemon_libvirt_module.h), so that only a daemon that watches libvirt
 * loads libvirt and its ~40 libraries.
 */
#define _GNU_SOURCE    /* accept4, struct ucred */
#include "daemon_libvirt_module.h"

#include "daemon_service.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A URI that cannot be opened (or closed) is tried again this often. */
#define LV_RETRY_MS 5000u
/* How long QEMU may take to connect once libvirt added the device. */
#define LV_CONNECT_TIMEOUT_MS 10000u
/* libvirt's own (user) aliases start with "ua-". */
#define LV_ALIAS_PREFIX "ua-"

struct lv_conn {
	daemon_libvirt *lv;
	char *uri;
	virConnectPtr conn;
	int cb_lifecycle, cb_removed, cb_removal_failed;
	guint retry_id;
	gboolean said_failure;       /* the open failure was reported */
};

struct daemon_libvirt {
	GPtrArray *conns;            /* struct lv_conn */
	GList *doms;                 /* struct lv_dom with a daemon_vm */
	daemon_libvirt_domain_fn domain;
	void *user;
	gboolean scanned;
	char *private_dir;           /* sockets for QEMUs of other users */
	gboolean private_dir_tmp;    /* made by us: removed at the end */
};

/* The backend impl of one daemon_vm. */
struct lv_dom {
	daemon_libvirt *lv;
	struct lv_conn *c;
	char *name;
	virDomainPtr dom;
	daemon_vm *vm;
	GList *ops;                  /* struct lv_op */
	GHashTable *sockets;         /* dev_id -> socket path of a device */
	guint ready_id;
	gboolean ready_paused;
	GError *ready_error;
	guint stale_left;            /* devices of an earlier daemon */
	/* The domain's QEMU (the peer of its first device): its exit ends
	 * the sessions at once, before libvirt's STOPPED event, which
	 * comes after libvirt's own clean-up (~1 s more). */
	int qemu_pidfd;
	guint qemu_watch;
};

/* One plug or unplug. */
struct lv_op {
	struct lv_dom *ld;           /* NULL: orphaned, freed when the call
				      * in its thread returns */
	gboolean unplug;
	char *dev_id;
	char *alias;
	char *path;                  /* plug: our listening socket */
	int listen_fd, conn_fd;
	guint listen_id, timer_id;
	uid_t want_uid;
	gboolean call_running;       /* the libvirt call is in its thread */
	gboolean call_done;
	gboolean removed;            /* unplug: DEVICE_REMOVED seen */
	daemon_vm_plug_fn plug_done;
	daemon_vm_unplug_fn unplug_done;
	void *user;
};

/* What a worker thread does and what it found. */
struct lv_call {
	virDomainPtr dom;
	gboolean unplug;
	char *arg;                   /* plug: device XML; unplug: alias */
	int rc;
	int code;                    /* virError code */
	char *message;
};

#define say daemon_say

static void quiet_errors(void *user, virErrorPtr err)
{
	/* Errors are read with virGetLastError() where they happen; libvirt
	 * would print every one on stderr otherwise. */
}

static gboolean uri_is_session(const char *uri)
{
	return g_str_has_suffix(uri, "/session");
}

/* --- operations ------------------------------------------------------------ */

static void op_stop_waiting(struct lv_op *op)
{
	if (op->listen_id != 0) {
		g_source_remove(op->listen_id);
		op->listen_id = 0;
	}
	if (op->timer_id != 0) {
		g_source_remove(op->timer_id);
		op->timer_id = 0;
	}
	if (op->listen_fd >= 0) {
		close(op->listen_fd);
		op->listen_fd = -1;
	}
}

static void op_free(struct lv_op *op)
{
	op_stop_waiting(op);
	if (op->conn_fd >= 0)
		close(op->conn_fd);
	g_free(op->dev_id);
	g_free(op->alias);
	g_free(op->path);
	g_free(op);
}

/* Calls @op's callback and takes it off its domain; freed now unless a
 * worker thread still holds it. */
static void op_finish(struct lv_op *op, const GError *error)
{
	struct lv_dom *ld = op->ld;
	int fd = -1;

	op_stop_waiting(op);
	if (ld != NULL)
		ld->ops = g_list_remove(ld->ops, op);
	if (op->unplug) {
		if (ld != NULL && error == NULL && op->dev_id != NULL) {
			const char *path = g_hash_table_lookup(ld->sockets,
							       op->dev_id);

			if (path != NULL)
				g_unlink(path);
			g_hash_table_remove(ld->sockets, op->dev_id);
		}
		op->unplug_done(op->user, error);
	} else {
		if (error == NULL) {
			fd = op->conn_fd;
			op->conn_fd = -1;
		} else if (op->path != NULL) {
			g_unlink(op->path);
			if (ld != NULL)
				g_hash_table_remove(ld->sockets, op->dev_id);
		}
		op->plug_done(op->user, fd, error);
	}
	op->ld = NULL;
	if (!op->call_running)
		op_free(op);
}

static void op_fail(struct lv_op *op, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void op_fail(struct lv_op *op, const char *fmt, ...)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	error = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_FAILED, msg);
	op_finish(op, error);
}

/* The domain is gone (or its VM freed): plugs fail, unplugs are done. */
static void finish_ops(struct lv_dom *ld, const char *why)
{
	while (ld->ops != NULL) {
		struct lv_op *op = ld->ops->data;

		if (op->unplug)
			op_finish(op, NULL);
		else
			op_fail(op, "domain '%s' %s before device %s was "
				"plugged", ld->name, why, op->dev_id);
	}
}

static void lv_call_free(struct lv_call *call)
{
	if (call->dom != NULL)
		virDomainFree(call->dom);
	g_free(call->arg);
	g_free(call->message);
	g_free(call);
}

static void run_call(GTask *task, gpointer source, gpointer data,
		     GCancellable *cancellable)
{
	struct lv_call *call = data;

	if (call->unplug)
		call->rc = virDomainDetachDeviceAlias(call->dom, call->arg,
						      VIR_DOMAIN_AFFECT_LIVE);
	else
		call->rc = virDomainAttachDeviceFlags(call->dom, call->arg,
						      VIR_DOMAIN_AFFECT_LIVE);
	if (call->rc < 0) {
		virErrorPtr err = virGetLastError();

		call->code = err != NULL ? err->code : VIR_ERR_INTERNAL_ERROR;
		call->message = g_strdup(err != NULL && err->message != NULL ?
					 err->message : "unknown error");
	}
	g_task_return_boolean(task, TRUE);
}

static void start_call(struct lv_op *op, char *arg, GAsyncReadyCallback cb)
{
	struct lv_call *call = g_new0(struct lv_call, 1);
	g_autoptr(GTask) task = g_task_new(NULL, NULL, cb, op);

	call->dom = op->ld->dom;
	virDomainRef(call->dom);
	call->unplug = op->unplug;
	call->arg = arg;
	op->call_running = TRUE;
	g_task_set_task_data(task, call, (GDestroyNotify)lv_call_free);
	g_task_run_in_thread(task, run_call);
}

/* --- plug --------------------------------------------------------------- */

static void run_quiet_detach(GTask *task, gpointer source, gpointer data,
			     GCancellable *cancellable)
{
	struct lv_call *call = data;

	(void)virDomainDetachDeviceAlias(call->dom, call->arg,
					 VIR_DOMAIN_AFFECT_LIVE);
	g_task_return_boolean(task, TRUE);
}

/* A device libvirt added but the plug failed after (QEMU never
 * connected): out of the domain again, nobody waiting. */
static void detach_quietly(struct lv_dom *ld, const char *alias)
{
	struct lv_call *call = g_new0(struct lv_call, 1);
	g_autoptr(GTask) task = g_task_new(NULL, NULL, NULL, NULL);

	call->dom = ld->dom;
	virDomainRef(call->dom);
	call->unplug = TRUE;
	call->arg = g_strdup(alias);
	g_task_set_task_data(task, call, (GDestroyNotify)lv_call_free);
	g_task_run_in_thread(task, run_quiet_detach);
}

static void plug_maybe_done(struct lv_op *op)
{
	if (op->call_done && op->conn_fd >= 0)
		op_finish(op, NULL);
}

static gboolean on_connect_timeout(gpointer data)
{
	struct lv_op *op = data;

	op->timer_id = 0;
	if (op->ld->dom != NULL)
		detach_quietly(op->ld, op->alias);
	op_fail(op, "QEMU of domain '%s' did not connect to %s within %u s "
		"(can its user reach that directory? see docs/daemon.md, "
		"\"libvirt domains\")", op->ld->name, op->path,
		LV_CONNECT_TIMEOUT_MS / 1000);
	return G_SOURCE_REMOVE;
}

static void on_attached(GObject *source, GAsyncResult *res, gpointer data)
{
	struct lv_op *op = data;
	struct lv_call *call = g_task_get_task_data(G_TASK(res));

	op->call_running = FALSE;
	op->call_done = TRUE;
	if (op->ld == NULL) {
		op_free(op);
		return;
	}
	if (call->rc < 0) {
		op_fail(op, "libvirt refused the usb-redir device in domain "
			"'%s': %s (%s)", op->ld->name, call->message,
			strstr(call->message, "ermission denied") != NULL ?
			"QEMU's user cannot reach the socket: see "
			"docs/daemon.md, \"What QEMU under libvirt needs\"" :
			"does it have a USB controller?");
		return;
	}
	if (op->conn_fd < 0 && op->timer_id == 0)
		op->timer_id = g_timeout_add(LV_CONNECT_TIMEOUT_MS,
					     on_connect_timeout, op);
	plug_maybe_done(op);
}

static void dom_gone(struct lv_dom *ld, const char *reason,
		     const char *detail);

static void unwatch_qemu(struct lv_dom *ld)
{
	if (ld->qemu_watch != 0) {
		g_source_remove(ld->qemu_watch);
		ld->qemu_watch = 0;
	}
	if (ld->qemu_pidfd >= 0) {
		close(ld->qemu_pidfd);
		ld->qemu_pidfd = -1;
	}
}

static gboolean on_qemu_exit(int fd, GIOCondition cond, gpointer data)
{
	struct lv_dom *ld = data;

	ld->qemu_watch = 0;
	unwatch_qemu(ld);
	if (ld->vm != NULL && !daemon_vm_is_gone(ld->vm))
		dom_gone(ld, "vm-gone", "its QEMU exited");
	return G_SOURCE_REMOVE;
}

/* QEMU (the peer that passed the uid check, so the domain's) is watched
 * through a pidfd, readable when it exits.  Without one (an old kernel),
 * libvirt's lifecycle event does the same a little later. */
static void watch_qemu(struct lv_dom *ld, pid_t pid)
{
	if (ld->qemu_pidfd >= 0 || pid <= 0)
		return;
	ld->qemu_pidfd = pidfd_open(pid, 0);
	if (ld->qemu_pidfd < 0)
		return;
	ld->qemu_watch = g_unix_fd_add(ld->qemu_pidfd, G_IO_IN, on_qemu_exit,
				       ld);
}

static gboolean on_listen_ready(int fd, GIOCondition cond, gpointer data)
{
	struct lv_op *op = data;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

	if (c < 0)
		return G_SOURCE_CONTINUE;    /* EAGAIN, ECONNABORTED, ... */
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
	    len != sizeof(cred)) {
		say("domain '%s': refused a connection to %s: no peer "
		    "credentials (%s)", op->ld->name, op->path,
		    g_strerror(errno));
		close(c);
		return G_SOURCE_CONTINUE;
	}
	if (cred.uid != op->want_uid) {
		say("domain '%s': refused a connection to %s from pid %ld, "
		    "uid %lu: the domain's QEMU runs as uid %lu",
		    op->ld->name, op->path, (long)cred.pid,
		    (unsigned long)cred.uid, (unsigned long)op->want_uid);
		close(c);
		return G_SOURCE_CONTINUE;
	}
	op->conn_fd = c;
	watch_qemu(op->ld, cred.pid);
	/* One peer: nobody else gets in, even with the right uid. */
	op->listen_id = 0;
	op_stop_waiting(op);
	plug_maybe_done(op);
	return G_SOURCE_REMOVE;
}

/* The uid the domain's QEMU runs as: its DAC label ("+UID:+GID") in the
 * live XML, else (a session URI) ours. */
static gboolean domain_qemu_uid(struct lv_dom *ld, uid_t *uid, GError **error)
{
	g_autofree char *xml = virDomainGetXMLDesc(ld->dom, 0);
	g_autoptr(GRegex) re = g_regex_new(
		"<seclabel[^>]*model=['\"]dac['\"][^>]*>\\s*<label>\\+?"
		"([0-9]{1,10}):", 0, 0, NULL);
	g_autoptr(GMatchInfo) m = NULL;

	if (xml != NULL && g_regex_match(re, xml, 0, &m)) {
		g_autofree char *num = g_match_info_fetch(m, 1);
		guint64 v = g_ascii_strtoull(num, NULL, 10);

		if (v <= G_MAXUINT32) {
			*uid = (uid_t)v;
			return TRUE;
		}
	}
	if (uri_is_session(ld->c->uri)) {
		*uid = getuid();
		return TRUE;
	}
	g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
		    "cannot tell which user the QEMU of domain '%s' runs as "
		    "(no DAC seclabel in its live XML%s%s)", ld->name,
		    xml == NULL ? ": " : "", xml == NULL ?
		    virGetLastErrorMessage() : "");
	return FALSE;
}

/* The directory of the sockets: for a session URI, QEMU runs as us and
 * $XDG_RUNTIME_DIR is fine; other QEMUs (qemu:///system: the user of
 * qemu.conf) must be able to reach the socket, so the directory is
 * searchable (0711) but not listable, and each socket name random. */
static const char *socket_dir(struct lv_dom *ld, GError **error)
{
	daemon_libvirt *lv = ld->lv;
	static char *session_dir;

	if (uri_is_session(ld->c->uri)) {
		if (session_dir == NULL)
			session_dir = g_build_filename(g_get_user_runtime_dir(),
						       "ccid-emu", "libvirt",
						       NULL);
		if (g_mkdir_with_parents(session_dir, 0700) != 0) {
			g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
				    "cannot make %s: %s", session_dir,
				    g_strerror(errno));
			return NULL;
		}
		return session_dir;
	}
	if (lv->private_dir == NULL) {
		if (getuid() == 0) {
			lv->private_dir = g_strdup("/run/ccid-emu/libvirt");
			if (g_mkdir_with_parents(lv->private_dir, 0711) != 0) {
				g_set_error(error, G_IO_ERROR,
					    G_IO_ERROR_FAILED,
					    "cannot make %s: %s",
					    lv->private_dir,
					    g_strerror(errno));
				g_clear_pointer(&lv->private_dir, g_free);
				return NULL;
			}
		} else {
			lv->private_dir = g_dir_make_tmp(
				"ccid-emu-libvirt-XXXXXX", error);
			if (lv->private_dir == NULL)
				return NULL;
			lv->private_dir_tmp = TRUE;
		}
		chmod(lv->private_dir, 0711);
	}
	return lv->private_dir;
}

/* A listening socket at @path, born with @mode by the umask around bind():
 * no chmod afterwards, so no moment with other permissions. */
static int listen_on(const char *path, mode_t mode, GError **error)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old_mask;
	int fd, rc = -1;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "socket path %s is longer than %zu bytes (use a "
			    "shorter $XDG_RUNTIME_DIR)", path,
			    sizeof(sa.sun_path) - 1);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) {
		g_unlink(path);
		old_mask = umask(0777 & ~mode);
		rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		umask(old_mask);
	}
	if (fd < 0 || rc != 0 || listen(fd, 4) != 0) {
		g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "cannot listen on %s: %s", path,
			    g_strerror(errno));
		if (fd >= 0)
			close(fd);
		g_unlink(path);
		return -1;
	}
	return fd;
}

static void lv_plug(void *impl, const char *dev_id, daemon_vm_plug_fn done,
		    void *user)
{
	struct lv_dom *ld = impl;
	struct lv_op *op = g_new0(struct lv_op, 1);
	g_autoptr(GError) error = NULL;
	g_autofree char *esc = NULL;
	g_autofree char *name = NULL;
	const char *dir;

	op->ld = ld;
	op->dev_id = g_strdup(dev_id);
	op->alias = g_strconcat(LV_ALIAS_PREFIX, dev_id, NULL);
	op->listen_fd = op->conn_fd = -1;
	op->plug_done = done;
	op->user = user;
	ld->ops = g_list_prepend(ld->ops, op);
	if (!domain_qemu_uid(ld, &op->want_uid, &error) ||
	    (dir = socket_dir(ld, &error)) == NULL) {
		op_fail(op, "%s", error->message);
		return;
	}
	name = g_strdup_printf("%s-%08x.sock", dev_id, g_random_int());
	op->path = g_build_filename(dir, name, NULL);
	/* QEMU of another user must be able to connect: root gives it the
	 * socket; anyone else opens it to all (libvirt 9.0 does not relabel
	 * a hot-plugged redirdev's socket: observed, QEMU got EACCES).  The
	 * directory is not listable, the name random, and only a peer with
	 * QEMU's uid is served (on_listen_ready). */
	op->listen_fd = listen_on(op->path, op->want_uid != getuid() &&
				  getuid() != 0 ? 0666 : 0600, &error);
	if (op->listen_fd < 0) {
		op_fail(op, "%s", error->message);
		return;
	}
	/* Root hands the 0600 socket to QEMU's uid (nobody else could reach
	 * it in between). */
	if (op->want_uid != getuid() && getuid() == 0 &&
	    chown(op->path, op->want_uid, (gid_t)-1) != 0)
		say("domain '%s': cannot give %s to uid %lu: %s", ld->name,
		    op->path, (unsigned long)op->want_uid, g_strerror(errno));
	g_hash_table_replace(ld->sockets, g_strdup(dev_id),
			     g_strdup(op->path));
	op->listen_id = g_unix_fd_add(op->listen_fd, G_IO_IN, on_listen_ready,
				      op);
	esc = g_markup_escape_text(op->path, -1);
	start_call(op, g_strdup_printf(
		"<redirdev bus='usb' type='unix'>"
		"<source mode='connect' path='%s'/>"
		"<alias name='%s'/>"
		"</redirdev>", esc, op->alias), on_attached);
}

/* --- unplug ------------------------------------------------------------- */

static gboolean on_unplug_timeout(gpointer data)
{
	struct lv_op *op = data;

	op->timer_id = 0;
	op_fail(op, "domain '%s' did not release device %s (no "
		"DEVICE_REMOVED event in time; the guest may be ignoring the "
		"unplug)", op->ld->name, op->alias);
	return G_SOURCE_REMOVE;
}

static void unplug_maybe_done(struct lv_op *op)
{
	if (op->call_done && op->removed)
		op_finish(op, NULL);
}

static void on_detached(GObject *source, GAsyncResult *res, gpointer data)
{
	struct lv_op *op = data;
	struct lv_call *call = g_task_get_task_data(G_TASK(res));

	op->call_running = FALSE;
	op->call_done = TRUE;
	if (op->ld == NULL) {
		op_free(op);
		return;
	}
	if (call->rc < 0 && (call->code == VIR_ERR_DEVICE_MISSING ||
			     call->code == VIR_ERR_OPERATION_INVALID ||
			     call->code == VIR_ERR_NO_DOMAIN)) {
		/* Not there (any more), or no domain running: done. */
		op_finish(op, NULL);
		return;
	}
	if (call->rc < 0) {
		op_fail(op, "libvirt refused to unplug device %s from domain "
			"'%s': %s", op->alias, op->ld->name, call->message);
		return;
	}
	unplug_maybe_done(op);
}

static void lv_unplug(void *impl, const char *dev_id, guint timeout_ms,
		      daemon_vm_unplug_fn done, void *user)
{
	struct lv_dom *ld = impl;
	struct lv_op *op = g_new0(struct lv_op, 1);

	op->ld = ld;
	op->unplug = TRUE;
	op->dev_id = g_strdup(dev_id);
	op->alias = g_strconcat(LV_ALIAS_PREFIX, dev_id, NULL);
	op->listen_fd = op->conn_fd = -1;
	op->unplug_done = done;
	op->user = user;
	ld->ops = g_list_prepend(ld->ops, op);
	op->timer_id = g_timeout_add(timeout_ms, on_unplug_timeout, op);
	/* Asynchronous in libvirt: it returns once QEMU was asked, and
	 * DEVICE_REMOVED says when the guest let go. */
	start_call(op, g_strdup(op->alias), on_detached);
}

/* --- the VM --------------------------------------------------------------- */

static void lv_dom_free(void *impl)
{
	struct lv_dom *ld = impl;
	GHashTableIter it;
	gpointer path;

	if (ld->ready_id != 0)
		g_source_remove(ld->ready_id);
	g_clear_error(&ld->ready_error);
	unwatch_qemu(ld);
	ld->vm = NULL;
	finish_ops(ld, "was removed");
	/* Sockets of devices still plugged: QEMU is connected already. */
	g_hash_table_iter_init(&it, ld->sockets);
	while (g_hash_table_iter_next(&it, NULL, &path))
		g_unlink(path);
	g_hash_table_unref(ld->sockets);
	if (ld->lv != NULL)
		ld->lv->doms = g_list_remove(ld->lv->doms, ld);
	if (ld->dom != NULL)
		virDomainFree(ld->dom);
	g_free(ld->name);
	g_free(ld);
}

static const struct daemon_vm_backend lv_backend = {
	.plug = lv_plug,
	.unplug = lv_unplug,
	.free = lv_dom_free,
};

static void on_stale_unplugged(void *user, const GError *error)
{
	struct lv_dom *ld = user;

	if (error != NULL)
		say("%s", error->message);
	/* ld->vm is NULL when the VM is being freed (lv_dom_free). */
	if (--ld->stale_left == 0 && ld->vm != NULL)
		daemon_vm_backend_ready(ld->vm, ld->ready_paused, NULL);
}

/* Devices with our alias prefix that an earlier daemon left in the
 * domain (it was killed, or crashed): their sockets are dead and their
 * aliases would collide with new ones, so they go before the VM is
 * ready. */
static void unplug_stale(struct lv_dom *ld)
{
	g_autofree char *xml = virDomainGetXMLDesc(ld->dom, 0);
	g_autoptr(GRegex) re = g_regex_new("<alias name=['\"]"
		LV_ALIAS_PREFIX "(ccidemu-[A-Za-z0-9_.-]{1,200})['\"]", 0, 0,
		NULL);
	g_autoptr(GMatchInfo) m = NULL;

	ld->stale_left = 1;    /* this function's own */
	for (g_regex_match(re, xml != NULL ? xml : "", 0, &m);
	     g_match_info_matches(m); g_match_info_next(m, NULL)) {
		g_autofree char *dev = g_match_info_fetch(m, 1);

		say("domain '%s': unplugging %s%s, left by an earlier daemon",
		    ld->name, LV_ALIAS_PREFIX, dev);
		ld->stale_left++;
		lv_unplug(ld, dev, 5000, on_stale_unplugged, ld);
	}
	on_stale_unplugged(ld, NULL);
}

static gboolean on_ready_idle(gpointer data)
{
	struct lv_dom *ld = data;
	g_autoptr(GError) error = g_steal_pointer(&ld->ready_error);

	ld->ready_id = 0;
	if (error != NULL)
		daemon_vm_backend_ready(ld->vm, ld->ready_paused, error);
	else
		unplug_stale(ld);
	return G_SOURCE_REMOVE;
}

static struct lv_conn *conn_by_uri(daemon_libvirt *lv, const char *uri)
{
	for (guint i = 0; i < lv->conns->len; i++) {
		struct lv_conn *c = g_ptr_array_index(lv->conns, i);

		if (strcmp(c->uri, uri) == 0)
			return c;
	}
	return NULL;
}

static daemon_vm *lv_vm_new(daemon_libvirt *lv, const char *uri,
			    const char *name,
			    const struct daemon_vm_callbacks *cbs, void *user,
			    daemon_vm_ready_fn ready, void *ready_user)
{
	struct lv_dom *ld = g_new0(struct lv_dom, 1);
	g_autofree char *address = g_strconcat(DAEMON_LIBVIRT_PREFIX, uri,
					       NULL);
	int state = VIR_DOMAIN_NOSTATE, reason = 0;

	ld->lv = lv;
	ld->qemu_pidfd = -1;
	ld->c = lv != NULL ? conn_by_uri(lv, uri) : NULL;
	ld->name = g_strdup(name);
	ld->sockets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					    g_free);
	ld->vm = daemon_vm_new_backend(name, address, &lv_backend, ld, cbs,
				       user, ready, ready_user);
	if (lv != NULL)
		lv->doms = g_list_prepend(lv->doms, ld);
	if (ld->c == NULL || ld->c->conn == NULL) {
		ld->ready_error = g_error_new(G_IO_ERROR, G_IO_ERROR_FAILED,
			"libvirt URI %s is not %s (the daemon's --libvirt "
			"options name the URIs it watches)", uri,
			ld->c == NULL ? "watched" : "connected");
	} else if ((ld->dom = virDomainLookupByName(ld->c->conn,
						    name)) == NULL) {
		ld->ready_error = g_error_new(G_IO_ERROR, G_IO_ERROR_FAILED,
			"no domain '%s' at %s (virsh -c %s list --all)", name,
			uri, uri);
	} else if (virDomainGetState(ld->dom, &state, &reason, 0) < 0 ||
		   (state != VIR_DOMAIN_RUNNING && state != VIR_DOMAIN_PAUSED &&
		    state != VIR_DOMAIN_BLOCKED)) {
		ld->ready_error = g_error_new(G_IO_ERROR, G_IO_ERROR_FAILED,
			"domain '%s' at %s is not running", name, uri);
	}
	ld->ready_paused = state == VIR_DOMAIN_PAUSED;
	ld->ready_id = g_idle_add(on_ready_idle, ld);
	return ld->vm;
}

static struct lv_dom *dom_by_name(daemon_libvirt *lv, struct lv_conn *c,
				  const char *name)
{
	for (GList *l = lv->doms; l != NULL; l = l->next) {
		struct lv_dom *ld = l->data;

		if (ld->c == c && strcmp(ld->name, name) == 0)
			return ld;
	}
	return NULL;
}

/* The domain stopped: its operations end, then its sessions. */
static void dom_gone(struct lv_dom *ld, const char *reason,
		     const char *detail)
{
	if (ld->ready_id != 0) {
		/* Not ready yet: it never will be. */
		g_clear_error(&ld->ready_error);
		ld->ready_error = g_error_new(G_IO_ERROR, G_IO_ERROR_FAILED,
					      "domain '%s' %s", ld->name,
					      detail);
		return;
	}
	unwatch_qemu(ld);
	finish_ops(ld, "stopped");
	daemon_vm_backend_gone(ld->vm, reason, detail);
}

/* --- events --------------------------------------------------------------- */

static const char *stopped_detail(int detail)
{
	switch (detail) {
	case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: return "shut down";
	case VIR_DOMAIN_EVENT_STOPPED_DESTROYED: return "destroyed";
	case VIR_DOMAIN_EVENT_STOPPED_CRASHED: return "crashed";
	case VIR_DOMAIN_EVENT_STOPPED_MIGRATED: return "migrated away";
	case VIR_DOMAIN_EVENT_STOPPED_SAVED: return "saved";
	case VIR_DOMAIN_EVENT_STOPPED_FAILED: return "failed";
	default: return "stopped";
	}
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event,
			int detail, void *opaque)
{
	struct lv_conn *c = opaque;
	const char *name = virDomainGetName(dom);
	struct lv_dom *ld = name != NULL ? dom_by_name(c->lv, c, name) : NULL;
	g_autofree char *why = NULL;

	if (name == NULL)
		return 0;
	switch (event) {
	case VIR_DOMAIN_EVENT_STARTED:
	case VIR_DOMAIN_EVENT_RESUMED:
		if (ld != NULL && !daemon_vm_is_gone(ld->vm)) {
			daemon_vm_backend_set_paused(ld->vm, FALSE);
			break;
		}
		if (c->lv->scanned)
			c->lv->domain(c->lv->user, c->uri, name);
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		if (ld != NULL)
			daemon_vm_backend_set_paused(ld->vm, TRUE);
		break;
	case VIR_DOMAIN_EVENT_STOPPED:
	case VIR_DOMAIN_EVENT_CRASHED:
		if (ld == NULL)
			break;
		why = g_strdup_printf("libvirt: domain %s", event ==
				      VIR_DOMAIN_EVENT_CRASHED ? "crashed" :
				      stopped_detail(detail));
		dom_gone(ld, event == VIR_DOMAIN_EVENT_STOPPED &&
			 detail == VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN ?
			 "vm-shutdown" : "vm-gone", why);
		break;
	default:
		break;
	}
	return 0;
}

static void device_event(struct lv_conn *c, virDomainPtr dom,
			 const char *alias, gboolean failed)
{
	const char *name = virDomainGetName(dom);
	struct lv_dom *ld = name != NULL ? dom_by_name(c->lv, c, name) : NULL;

	if (ld == NULL || alias == NULL)
		return;
	for (GList *l = ld->ops; l != NULL; l = l->next) {
		struct lv_op *op = l->data;

		if (!op->unplug || op->removed || strcmp(op->alias, alias) != 0)
			continue;
		if (failed) {
			op_fail(op, "domain '%s' could not remove device %s "
				"(DEVICE_REMOVAL_FAILED)", ld->name, alias);
			return;
		}
		op->removed = TRUE;
		unplug_maybe_done(op);
		return;
	}
}

static void on_device_removed(virConnectPtr conn, virDomainPtr dom,
			      const char *alias, void *opaque)
{
	device_event(opaque, dom, alias, FALSE);
}

static void on_device_removal_failed(virConnectPtr conn, virDomainPtr dom,
				     const char *alias, void *opaque)
{
	device_event(opaque, dom, alias, TRUE);
}

/* --- connections ----------------------------------------------------------- */

static void conn_open(struct lv_conn *c);
static void lv_scan(daemon_libvirt *lv);

static gboolean on_retry(gpointer data)
{
	struct lv_conn *c = data;

	c->retry_id = 0;
	conn_open(c);
	if (c->conn != NULL && c->lv->scanned)
		lv_scan(c->lv);
	return G_SOURCE_REMOVE;
}

static void schedule_retry(struct lv_conn *c)
{
	if (c->retry_id == 0)
		c->retry_id = g_timeout_add(LV_RETRY_MS, on_retry, c);
}

static void conn_domains_gone(struct lv_conn *c)
{
	/* Every domain of this URI is out of reach: as good as gone. */
	GList *doms = g_list_copy(c->lv->doms);

	for (GList *l = doms; l != NULL; l = l->next) {
		struct lv_dom *ld = l->data;

		if (ld->c == c && g_list_find(c->lv->doms, ld) != NULL &&
		    !daemon_vm_is_gone(ld->vm))
			dom_gone(ld, "vm-gone", "libvirt connection closed");
	}
	g_list_free(doms);
}

static void conn_drop(struct lv_conn *c)
{
	if (c->conn == NULL)
		return;
	if (c->cb_lifecycle >= 0)
		virConnectDomainEventDeregisterAny(c->conn, c->cb_lifecycle);
	if (c->cb_removed >= 0)
		virConnectDomainEventDeregisterAny(c->conn, c->cb_removed);
	if (c->cb_removal_failed >= 0)
		virConnectDomainEventDeregisterAny(c->conn,
						   c->cb_removal_failed);
	c->cb_lifecycle = c->cb_removed = c->cb_removal_failed = -1;
	virConnectClose(c->conn);
	c->conn = NULL;
}

static gboolean on_closed_idle(gpointer data)
{
	struct lv_conn *c = data;

	say("libvirt %s: connection closed (libvirtd stopped?); trying again "
	    "every %u s", c->uri, LV_RETRY_MS / 1000);
	conn_drop(c);
	conn_domains_gone(c);
	for (GList *l = c->lv->doms; l != NULL; l = l->next) {
		struct lv_dom *ld = l->data;

		if (ld->c == c && ld->dom != NULL) {
			virDomainFree(ld->dom);
			ld->dom = NULL;
		}
	}
	c->said_failure = TRUE;
	schedule_retry(c);
	return G_SOURCE_REMOVE;
}

static void on_conn_close(virConnectPtr conn, int reason, void *opaque)
{
	/* Not inside libvirt's own callback: closing the connection there
	 * is not allowed. */
	g_idle_add(on_closed_idle, opaque);
}

static void conn_open(struct lv_conn *c)
{
	c->conn = virConnectOpen(c->uri);
	if (c->conn == NULL) {
		if (!c->said_failure)
			say("libvirt %s: cannot connect: %s (its VMs are left "
			    "out; tried again every %u s; --no-libvirt or "
			    "--libvirt URI choose the URIs)", c->uri,
			    virGetLastErrorMessage(), LV_RETRY_MS / 1000);
		c->said_failure = TRUE;
		schedule_retry(c);
		return;
	}
	c->said_failure = FALSE;
	c->cb_lifecycle = virConnectDomainEventRegisterAny(c->conn, NULL,
		VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), c, NULL);
	c->cb_removed = virConnectDomainEventRegisterAny(c->conn, NULL,
		VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED,
		VIR_DOMAIN_EVENT_CALLBACK(on_device_removed), c, NULL);
	c->cb_removal_failed = virConnectDomainEventRegisterAny(c->conn, NULL,
		VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED,
		VIR_DOMAIN_EVENT_CALLBACK(on_device_removal_failed), c, NULL);
	if (c->cb_lifecycle < 0)
		say("libvirt %s: no lifecycle events (%s): domains that stop "
		    "are only seen when their QEMU closes the device",
		    c->uri, virGetLastErrorMessage());
	virConnectRegisterCloseCallback(c->conn, on_conn_close, c, NULL);
	say("libvirt %s: connected", c->uri);
}

static daemon_libvirt *lv_create(const char *const *uris,
				 daemon_libvirt_domain_fn domain, void *user)
{
	static gsize once;
	daemon_libvirt *lv = g_new0(daemon_libvirt, 1);

	if (g_once_init_enter(&once)) {
		/* libvirt's events on the GLib main loop. */
		gvir_event_register();
		virSetErrorFunc(NULL, quiet_errors);
		g_once_init_leave(&once, 1);
	}
	lv->conns = g_ptr_array_new();
	lv->domain = domain;
	lv->user = user;
	for (guint i = 0; uris != NULL && uris[i] != NULL; i++) {
		struct lv_conn *c;

		if (conn_by_uri(lv, uris[i]) != NULL)
			continue;
		c = g_new0(struct lv_conn, 1);
		c->lv = lv;
		c->uri = g_strdup(uris[i]);
		c->cb_lifecycle = c->cb_removed = c->cb_removal_failed = -1;
		g_ptr_array_add(lv->conns, c);
		conn_open(c);
	}
	return lv;
}

static void lv_scan(daemon_libvirt *lv)
{
	lv->scanned = TRUE;
	for (guint i = 0; i < lv->conns->len; i++) {
		struct lv_conn *c = g_ptr_array_index(lv->conns, i);
		virDomainPtr *doms = NULL;
		int n;

		if (c->conn == NULL)
			continue;
		n = virConnectListAllDomains(c->conn, &doms,
					     VIR_CONNECT_LIST_DOMAINS_ACTIVE);
		if (n < 0) {
			say("libvirt %s: cannot list domains: %s", c->uri,
			    virGetLastErrorMessage());
			continue;
		}
		for (int j = 0; j < n; j++) {
			const char *name = virDomainGetName(doms[j]);

			if (name != NULL)
				lv->domain(lv->user, c->uri, name);
			virDomainFree(doms[j]);
		}
		free(doms);
	}
}

static void lv_destroy(daemon_libvirt *lv)
{
	if (lv == NULL)
		return;
	for (guint i = 0; i < lv->conns->len; i++) {
		struct lv_conn *c = g_ptr_array_index(lv->conns, i);

		if (c->retry_id != 0)
			g_source_remove(c->retry_id);
		if (c->conn != NULL)
			virConnectUnregisterCloseCallback(c->conn,
							  on_conn_close);
		conn_drop(c);
		g_free(c->uri);
		g_free(c);
	}
	g_ptr_array_unref(lv->conns);
	if (lv->private_dir_tmp)
		g_rmdir(lv->private_dir);
	g_free(lv->private_dir);
	g_free(lv);
}

G_MODULE_EXPORT const struct daemon_libvirt_module *
ccid_agent_libvirt_module(void)
{
	static const struct daemon_libvirt_module m = {
		.abi = DAEMON_LIBVIRT_MODULE_ABI,
		.create = lv_create,
		.scan = lv_scan,
		.destroy = lv_destroy,
		.vm_new = lv_vm_new,
	};

	return &m;
}
