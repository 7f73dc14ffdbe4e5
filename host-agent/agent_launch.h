/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What to tell QEMU and libvirt so that their usb-redir device reaches
 * `ccid-agent serve`: the -chardev/-device arguments and the <redirdev>
 * element, for each of the four ways to meet (unix or TCP, the agent
 * listening or connecting).
 */
#ifndef CCID_AGENT_LAUNCH_H
#define CCID_AGENT_LAUNCH_H

#include <glib.h>

G_BEGIN_DECLS

/* Chardev and device ids in the generated arguments. */
#define AGENT_LAUNCH_CHARDEV_ID "ccid0"
#define AGENT_LAUNCH_DEVICE_ID  "ccidredir0"
/* Seconds QEMU (or libvirt) waits before reconnecting to a listening
 * agent that went away. */
#define AGENT_LAUNCH_RECONNECT_S 1u

struct agent_launch_addr {
	gboolean is_unix;
	const char *path;          /* unix */
	const char *host;          /* tcp, without brackets */
	guint16 port;              /* tcp */
	/* TRUE: the agent listens and QEMU connects (serve --listen);
	 * FALSE: QEMU listens and the agent connects (serve --connect). */
	gboolean agent_listens;
};

/* The QEMU arguments, one per element: "-chardev", "socket,...",
 * "-device", "usb-redir,...".  Commas inside a path or host are doubled
 * as QEMU's option syntax requires.  g_strfreev(). */
char **agent_launch_qemu_argv(const struct agent_launch_addr *a);
/* The same as one line for a shell, elements quoted only when they hold
 * characters a shell would interpret. */
char *agent_launch_qemu_line(const struct agent_launch_addr *a);
/* The libvirt <redirdev> element, on one line, attribute values escaped
 * for XML. */
char *agent_launch_libvirt_xml(const struct agent_launch_addr *a);

G_END_DECLS

#endif /* CCID_AGENT_LAUNCH_H */
