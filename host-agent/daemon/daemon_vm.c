/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VMs over QMP and usb-redir hot-plugging (see daemon_vm.h).
 */
#include "daemon_vm.h"

#include "daemon_qmp.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum vm_state { VM_CONNECTING, VM_RUNNING, VM_PAUSED, VM_GONE };

static const char *const state_names[] = {
	[VM_CONNECTING] = "connecting",
	[VM_RUNNING] = "running",
	[VM_PAUSED] = "paused",
	[VM_GONE] = "gone",
};

/* One plug or unplug in flight. */
struct vm_op {
	daemon_vm *vm;
	char *id;
	gboolean unplug;
	int fd;                      /* plug: our end of the socketpair */
	daemon_vm_plug_fn plug_done;
	daemon_vm_unplug_fn unplug_done;
	void *user;
	/* unplug: DEVICE_DELETED seen / device_del answered */
	gboolean deleted;
	gboolean del_answered;
	GSource *timer;
	/* QMP commands sent for this op whose reply callback has not run: an
	 * op that ended early (unplug timeout, VM gone) is freed only once
	 * the last of them has, as each gets the op as its user data. */
	guint in_flight;
	gboolean finished;
};

struct daemon_vm {
	char *name;
	char *qmp_path;
	struct daemon_vm_callbacks cbs;
	void *user;
	daemon_vm_ready_fn ready;
	void *ready_user;
	enum vm_state state;
	daemon_qmp *qmp;
	GList *ops;                  /* struct vm_op */
	guint stale_left;            /* stale devices still being unplugged */
	/* Not QMP (qmp is NULL): plugs go through the backend. */
	const struct daemon_vm_backend *backend;
	void *impl;
};

/* The ids of the devices this daemon plugs (daemon_entry.c makes them):
 * one found when a VM is added was left by an earlier daemon. */
#define VM_OWN_DEVICE_PREFIX "ccidemu-"
#define VM_STALE_UNPLUG_MS 5000u

static void set_state(daemon_vm *vm, enum vm_state st)
{
	if (vm->state == st)
		return;
	vm->state = st;
	if (vm->cbs.state_changed != NULL)
		vm->cbs.state_changed(vm->user, vm);
}

static void op_free(struct vm_op *op)
{
	if (op->timer != NULL) {
		g_source_destroy(op->timer);
		g_source_unref(op->timer);
	}
	if (op->fd >= 0)
		close(op->fd);
	g_free(op->id);
	g_free(op);
}

static void op_execute(struct vm_op *op, const char *command,
		       JsonObject *args, int fd, daemon_qmp_reply_fn reply)
{
	op->in_flight++;
	daemon_qmp_execute(op->vm->qmp, command, args, fd, reply, op);
}

/* At the top of each reply callback of an op: TRUE when the op has
 * already ended, so the reply is only accounted for. */
static gboolean op_reply_after_end(struct vm_op *op)
{
	op->in_flight--;
	if (!op->finished)
		return FALSE;
	if (op->in_flight == 0)
		op_free(op);
	return TRUE;
}

/* Ends @op: off the list, then its callback, then freed (or, with replies
 * still due, once they have come). */
static void op_finish(struct vm_op *op, const GError *error)
{
	daemon_vm *vm = op->vm;
	int fd = -1;

	if (op->finished)
		return;
	op->finished = TRUE;
	vm->ops = g_list_remove(vm->ops, op);
	if (!op->unplug && error == NULL) {
		fd = op->fd;
		op->fd = -1;
	}
	if (op->unplug)
		op->unplug_done(op->user, error);
	else
		op->plug_done(op->user, fd, error);
	if (op->in_flight == 0) {
		op_free(op);
		return;
	}
	if (op->timer != NULL) {
		g_source_destroy(op->timer);
		g_source_unref(op->timer);
		op->timer = NULL;
	}
	if (op->fd >= 0)
		close(op->fd);
	op->fd = -1;
}

static void op_fail(struct vm_op *op, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void op_fail(struct vm_op *op, const char *fmt, ...)
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

/* The VM is gone: plugs fail, unplugs are done (nothing is left to
 * unplug). */
static void finish_all_ops(daemon_vm *vm, const char *why)
{
	while (vm->ops != NULL) {
		struct vm_op *op = vm->ops->data;

		if (op->unplug)
			op_finish(op, NULL);
		else
			op_fail(op, "VM '%s' %s before device %s was plugged",
				vm->name, why, op->id);
	}
}

static void mark_gone(daemon_vm *vm, const char *reason, const char *detail)
{
	if (vm->state == VM_GONE)
		return;
	set_state(vm, VM_GONE);
	finish_all_ops(vm, "went away");
	if (vm->cbs.gone != NULL)
		vm->cbs.gone(vm->user, vm, reason, detail);
}

/* --- unplug ------------------------------------------------------------- */

static void on_chardev_remove(void *user, JsonNode *ret, const char *cls,
			      const GError *error)
{
	struct vm_op *op = user;

	if (op_reply_after_end(op))
		return;
	/* "not found": usb-redir's unplug already removed its chardev.  Any
	 * other refusal leaves a chardev nobody uses, which is not worth
	 * failing the detach for: the device is gone. */
	if (error != NULL && !g_error_matches(error, DAEMON_QMP_ERROR,
					      DAEMON_QMP_ERROR_COMMAND)) {
		op_finish(op, NULL);    /* QMP gone: the VM is too */
		return;
	}
	if (error != NULL && strstr(error->message, "not found") == NULL)
		g_message("VM '%s': chardev %s left behind: %s", op->vm->name,
			  op->id, error->message);
	op_finish(op, NULL);
}

static void unplug_chardev(struct vm_op *op)
{
	JsonObject *args = json_object_new();

	if (op->timer != NULL) {
		g_source_destroy(op->timer);
		g_source_unref(op->timer);
		op->timer = NULL;
	}
	json_object_set_string_member(args, "id", op->id);
	op_execute(op, "chardev-remove", args, -1, on_chardev_remove);
}

static void on_device_del(void *user, JsonNode *ret, const char *cls,
			  const GError *error)
{
	struct vm_op *op = user;

	if (op_reply_after_end(op))
		return;
	if (error != NULL && !g_error_matches(error, DAEMON_QMP_ERROR,
					      DAEMON_QMP_ERROR_COMMAND)) {
		op_finish(op, NULL);    /* QMP gone: the VM is too */
		return;
	}
	if (error != NULL && g_strcmp0(cls, "DeviceNotFound") == 0) {
		unplug_chardev(op);    /* already gone */
		return;
	}
	if (error != NULL) {
		op_fail(op, "VM '%s' refused to unplug device %s: %s",
			op->vm->name, op->id, error->message);
		return;
	}
	op->del_answered = TRUE;
	if (op->deleted)
		unplug_chardev(op);
}

static gboolean on_unplug_timeout(gpointer data)
{
	struct vm_op *op = data;

	g_source_unref(op->timer);
	op->timer = NULL;
	op_fail(op, "VM '%s' did not release device %s (no DEVICE_DELETED "
		"event in time; the guest may be ignoring the unplug)",
		op->vm->name, op->id);
	return G_SOURCE_REMOVE;
}

void daemon_vm_unplug_redir(daemon_vm *vm, const char *dev_id,
			    guint timeout_ms, daemon_vm_unplug_fn done,
			    void *user)
{
	struct vm_op *op;
	JsonObject *args;

	if (vm->backend != NULL) {
		if (vm->state == VM_GONE || vm->state == VM_CONNECTING)
			done(user, NULL);
		else
			vm->backend->unplug(vm->impl, dev_id, timeout_ms,
					    done, user);
		return;
	}
	op = g_new0(struct vm_op, 1);

	op->vm = vm;
	op->id = g_strdup(dev_id);
	op->unplug = TRUE;
	op->fd = -1;
	op->unplug_done = done;
	op->user = user;
	vm->ops = g_list_prepend(vm->ops, op);
	if (vm->state == VM_GONE || !daemon_qmp_is_connected(vm->qmp)) {
		op_finish(op, NULL);
		return;
	}
	op->timer = g_timeout_source_new(timeout_ms);
	g_source_set_callback(op->timer, on_unplug_timeout, op, NULL);
	g_source_attach(op->timer, NULL);
	args = json_object_new();
	json_object_set_string_member(args, "id", dev_id);
	/* USB devices go at once: DEVICE_DELETED may come before the
	 * answer, which is why both are tracked. */
	op_execute(op, "device_del", args, -1, on_device_del);
}

/* --- plug --------------------------------------------------------------- */

static void on_device_add(void *user, JsonNode *ret, const char *cls,
			  const GError *error)
{
	struct vm_op *op = user;

	if (op_reply_after_end(op))
		return;
	if (error != NULL) {
		JsonObject *args;

		if (daemon_qmp_is_connected(op->vm->qmp)) {
			args = json_object_new();
			json_object_set_string_member(args, "id", op->id);
			daemon_qmp_execute(op->vm->qmp, "chardev-remove", args,
					   -1, NULL, NULL);
		}
		op_fail(op, "VM '%s' refused the usb-redir device: %s (does "
			"it have a USB controller, e.g. -device qemu-xhci?)",
			op->vm->name, error->message);
		return;
	}
	op_finish(op, NULL);
}

static void on_chardev_add(void *user, JsonNode *ret, const char *cls,
			   const GError *error)
{
	struct vm_op *op = user;
	JsonObject *args;

	if (op_reply_after_end(op))
		return;
	if (error != NULL) {
		if (daemon_qmp_is_connected(op->vm->qmp)) {
			args = json_object_new();
			json_object_set_string_member(args, "fdname", op->id);
			daemon_qmp_execute(op->vm->qmp, "closefd", args, -1,
					   NULL, NULL);
		}
		op_fail(op, "VM '%s' refused a socket chardev on a passed "
			"descriptor: %s", op->vm->name, error->message);
		return;
	}
	args = json_object_new();
	json_object_set_string_member(args, "driver", "usb-redir");
	json_object_set_string_member(args, "chardev", op->id);
	json_object_set_string_member(args, "id", op->id);
	op_execute(op, "device_add", args, -1, on_device_add);
}

static void on_getfd(void *user, JsonNode *ret, const char *cls,
		     const GError *error)
{
	struct vm_op *op = user;
	JsonObject *args, *backend, *data, *addr, *addr_data;

	if (op_reply_after_end(op))
		return;
	if (error != NULL) {
		op_fail(op, "VM '%s' did not take the socket descriptor: %s",
			op->vm->name, error->message);
		return;
	}
	addr_data = json_object_new();
	json_object_set_string_member(addr_data, "str", op->id);
	addr = json_object_new();
	json_object_set_string_member(addr, "type", "fd");
	json_object_set_object_member(addr, "data", addr_data);
	data = json_object_new();
	json_object_set_object_member(data, "addr", addr);
	json_object_set_boolean_member(data, "server", FALSE);
	backend = json_object_new();
	json_object_set_string_member(backend, "type", "socket");
	json_object_set_object_member(backend, "data", data);
	args = json_object_new();
	json_object_set_string_member(args, "id", op->id);
	json_object_set_object_member(args, "backend", backend);
	op_execute(op, "chardev-add", args, -1, on_chardev_add);
}

void daemon_vm_plug_redir(daemon_vm *vm, const char *dev_id,
			  daemon_vm_plug_fn done, void *user)
{
	struct vm_op *op;
	JsonObject *args;
	int sv[2];

	if (vm->backend != NULL) {
		if (vm->state == VM_GONE || vm->state == VM_CONNECTING) {
			g_autoptr(GError) error = g_error_new(G_IO_ERROR,
				G_IO_ERROR_FAILED, "VM '%s' is %s", vm->name,
				state_names[vm->state]);

			done(user, -1, error);
		} else {
			vm->backend->plug(vm->impl, dev_id, done, user);
		}
		return;
	}
	op = g_new0(struct vm_op, 1);

	op->vm = vm;
	op->id = g_strdup(dev_id);
	op->fd = -1;
	op->plug_done = done;
	op->user = user;
	vm->ops = g_list_prepend(vm->ops, op);
	if (vm->state == VM_GONE || !daemon_qmp_is_connected(vm->qmp)) {
		op_fail(op, "VM '%s' is %s", vm->name, state_names[vm->state]);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		op_fail(op, "socketpair: %s", g_strerror(errno));
		return;
	}
	op->fd = sv[0];
	args = json_object_new();
	json_object_set_string_member(args, "fdname", dev_id);
	/* QEMU gets sv[1]; the QMP client closes our copy once sent. */
	op_execute(op, "getfd", args, sv[1], on_getfd);
}

/* --- QMP events and lifetime ------------------------------------------- */

static void on_qmp_event(void *user, const char *name, JsonObject *data)
{
	daemon_vm *vm = user;

	if (strcmp(name, "SHUTDOWN") == 0) {
		mark_gone(vm, "vm-shutdown", "QEMU shut down");
	} else if (strcmp(name, "STOP") == 0) {
		if (vm->state == VM_RUNNING)
			set_state(vm, VM_PAUSED);
	} else if (strcmp(name, "RESUME") == 0) {
		if (vm->state == VM_PAUSED)
			set_state(vm, VM_RUNNING);
	} else if (strcmp(name, "DEVICE_DELETED") == 0) {
		const char *dev = daemon_qmp_get_string(data, "device");

		for (GList *l = vm->ops; dev != NULL && l != NULL; l = l->next) {
			struct vm_op *op = l->data;

			if (!op->unplug || op->deleted ||
			    strcmp(op->id, dev) != 0)
				continue;
			op->deleted = TRUE;
			if (op->del_answered)
				unplug_chardev(op);
			break;
		}
	}
}

static void on_qmp_closed(void *user, const GError *why)
{
	daemon_vm *vm = user;

	mark_gone(vm, "vm-gone", why->message);
}

static void run_ready(daemon_vm *vm, const GError *error)
{
	daemon_vm_ready_fn ready = vm->ready;

	vm->ready = NULL;
	if (ready != NULL)
		ready(vm->ready_user, vm, error);
}

static void on_stale_unplugged(void *user, const GError *error)
{
	daemon_vm *vm = user;

	if (error != NULL)
		g_message("VM '%s': %s", vm->name, error->message);
	if (--vm->stale_left == 0)
		run_ready(vm, NULL);
}

/* Devices of an earlier daemon (it exited or crashed while they were
 * plugged) are unplugged before the VM is ready: their sockets are
 * closed, and their ids would collide with new ones. */
static void on_peripherals(void *user, JsonNode *ret, const char *cls,
			   const GError *error)
{
	daemon_vm *vm = user;
	JsonArray *a = ret != NULL && JSON_NODE_HOLDS_ARRAY(ret) ?
		       json_node_get_array(ret) : NULL;
	guint n = a != NULL ? json_array_get_length(a) : 0;
	g_autoptr(GPtrArray) stale = g_ptr_array_new_with_free_func(g_free);

	if (error != NULL && !g_error_matches(error, DAEMON_QMP_ERROR,
					      DAEMON_QMP_ERROR_COMMAND)) {
		run_ready(vm, error);    /* QMP is gone */
		return;
	}
	if (error != NULL)
		g_message("VM '%s': cannot list its devices: %s", vm->name,
			  error->message);
	for (guint i = 0; i < n; i++) {
		JsonNode *e = json_array_get_element(a, i);
		JsonObject *o = JSON_NODE_HOLDS_OBJECT(e) ?
				json_node_get_object(e) : NULL;
		const char *name = daemon_qmp_get_string(o, "name");
		const char *type = daemon_qmp_get_string(o, "type");

		if (name != NULL && type != NULL &&
		    g_str_has_prefix(name, VM_OWN_DEVICE_PREFIX) &&
		    g_str_has_prefix(type, "child<usb-redir"))
			g_ptr_array_add(stale, g_strdup(name));
	}
	vm->stale_left = 1;    /* this function's own */
	for (guint i = 0; i < stale->len; i++) {
		g_message("VM '%s': unplugging %s, left by an earlier daemon",
			  vm->name, (const char *)g_ptr_array_index(stale, i));
		vm->stale_left++;
		daemon_vm_unplug_redir(vm, g_ptr_array_index(stale, i),
				       VM_STALE_UNPLUG_MS, on_stale_unplugged,
				       vm);
	}
	on_stale_unplugged(vm, NULL);
}

static void on_query_status(void *user, JsonNode *ret, const char *cls,
			    const GError *error)
{
	daemon_vm *vm = user;
	JsonObject *o, *args;

	if (error != NULL) {
		run_ready(vm, error);
		return;
	}
	o = JSON_NODE_HOLDS_OBJECT(ret) ? json_node_get_object(ret) : NULL;
	set_state(vm, g_strcmp0(daemon_qmp_get_string(o, "status"),
				"running") == 0 ? VM_RUNNING : VM_PAUSED);
	args = json_object_new();
	json_object_set_string_member(args, "path", "/machine/peripheral");
	daemon_qmp_execute(vm->qmp, "qom-list", args, -1, on_peripherals, vm);
}

static void on_qmp_ready(void *user, const GError *error)
{
	daemon_vm *vm = user;

	if (error != NULL) {
		vm->state = VM_GONE;
		run_ready(vm, error);
		return;
	}
	daemon_qmp_execute(vm->qmp, "query-status", NULL, -1,
			   on_query_status, vm);
}

daemon_vm *daemon_vm_new(const char *name, const char *qmp_path,
			 const struct daemon_vm_callbacks *cbs, void *user,
			 daemon_vm_ready_fn ready, void *ready_user)
{
	static const struct daemon_qmp_callbacks qmp_cbs = {
		.event = on_qmp_event,
		.closed = on_qmp_closed,
	};
	daemon_vm *vm = g_new0(daemon_vm, 1);

	vm->name = g_strdup(name);
	vm->qmp_path = g_strdup(qmp_path);
	if (cbs != NULL)
		vm->cbs = *cbs;
	vm->user = user;
	vm->ready = ready;
	vm->ready_user = ready_user;
	vm->state = VM_CONNECTING;
	vm->qmp = daemon_qmp_new(qmp_path, &qmp_cbs, vm, on_qmp_ready, vm);
	return vm;
}

void daemon_vm_free(daemon_vm *vm)
{
	if (vm == NULL)
		return;
	vm->cbs.gone = NULL;
	vm->cbs.state_changed = NULL;
	vm->ready = NULL;
	/* Pending QMP replies fail first (their ops with them), then what
	 * waits for an event. */
	g_clear_pointer(&vm->qmp, daemon_qmp_free);
	vm->state = VM_GONE;
	finish_all_ops(vm, "was removed");
	if (vm->backend != NULL)
		vm->backend->free(vm->impl);
	g_free(vm->name);
	g_free(vm->qmp_path);
	g_free(vm);
}

const char *daemon_vm_get_name(const daemon_vm *vm)
{
	return vm->name;
}

const char *daemon_vm_get_qmp(const daemon_vm *vm)
{
	return vm->qmp_path;
}

const char *daemon_vm_get_state(const daemon_vm *vm)
{
	return state_names[vm->state];
}

gboolean daemon_vm_is_gone(const daemon_vm *vm)
{
	return vm->state == VM_GONE;
}

/* --- VMs of another backend (daemon_vm.h) -------------------------------- */

daemon_vm *daemon_vm_new_backend(const char *name, const char *address,
				 const struct daemon_vm_backend *backend,
				 void *impl,
				 const struct daemon_vm_callbacks *cbs,
				 void *user, daemon_vm_ready_fn ready,
				 void *ready_user)
{
	daemon_vm *vm = g_new0(daemon_vm, 1);

	vm->name = g_strdup(name);
	vm->qmp_path = g_strdup(address);
	if (cbs != NULL)
		vm->cbs = *cbs;
	vm->user = user;
	vm->ready = ready;
	vm->ready_user = ready_user;
	vm->state = VM_CONNECTING;
	vm->backend = backend;
	vm->impl = impl;
	return vm;
}

void daemon_vm_backend_ready(daemon_vm *vm, gboolean paused,
			     const GError *error)
{
	if (error != NULL)
		vm->state = VM_GONE;
	else
		set_state(vm, paused ? VM_PAUSED : VM_RUNNING);
	run_ready(vm, error);
}

void daemon_vm_backend_set_paused(daemon_vm *vm, gboolean paused)
{
	if (vm->state == VM_RUNNING || vm->state == VM_PAUSED)
		set_state(vm, paused ? VM_PAUSED : VM_RUNNING);
}

void daemon_vm_backend_gone(daemon_vm *vm, const char *reason,
			    const char *detail)
{
	if (vm->state == VM_CONNECTING) {
		vm->state = VM_GONE;
		return;
	}
	mark_gone(vm, reason, detail);
}
