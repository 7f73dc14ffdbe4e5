# SPDX-License-Identifier: LGPL-2.1-or-later
"""The desktop services ccid-menu talks to, on the test's private session
bus, served from the test's own GLib main loop:

- org.kde.StatusNotifierWatcher: the real StatusNotifierItem protocol's
  registry, which libayatana-appindicator registers its item with (a tray
  host reads the item's Menu property and com.canonical.dbusmenu from
  there, as the test does);
- org.freedesktop.Notifications: records every notification (summary,
  body) that GNotification sends through its freedesktop backend.

Both are served from a thread of their own: ccid-menu calls them
synchronously at times while the test calls ccid-menu synchronously over
AT-SPI, and one thread for both would deadlock.
"""
import threading

from gi.repository import Gio, GLib

WATCHER_XML = """
<node>
  <interface name="org.kde.StatusNotifierWatcher">
    <method name="RegisterStatusNotifierItem"><arg name="service" type="s" direction="in"/></method>
    <method name="RegisterStatusNotifierHost"><arg name="service" type="s" direction="in"/></method>
    <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
    <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
    <property name="ProtocolVersion" type="i" access="read"/>
    <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
    <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
    <signal name="StatusNotifierHostRegistered"/>
  </interface>
</node>"""

NOTIFY_XML = """
<node>
  <interface name="org.freedesktop.Notifications">
    <method name="Notify">
      <arg type="s" direction="in"/><arg type="u" direction="in"/>
      <arg type="s" direction="in"/><arg type="s" direction="in"/>
      <arg type="s" direction="in"/><arg type="as" direction="in"/>
      <arg type="a{sv}" direction="in"/><arg type="i" direction="in"/>
      <arg type="u" direction="out"/>
    </method>
    <method name="CloseNotification"><arg type="u" direction="in"/></method>
    <method name="GetCapabilities"><arg type="as" direction="out"/></method>
    <method name="GetServerInformation">
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
      <arg type="s" direction="out"/><arg type="s" direction="out"/>
    </method>
    <signal name="NotificationClosed"><arg type="u"/><arg type="u"/></signal>
    <signal name="ActionInvoked"><arg type="u"/><arg type="s"/></signal>
  </interface>
</node>"""


class DesktopBus:
    def __init__(self):
        ready = threading.Event()
        self._error = None

        def serve():
            ctx = GLib.MainContext()
            ctx.push_thread_default()
            try:
                self._setup()
            except Exception as e:  # reported by the caller
                self._error = e
                ready.set()
                return
            ready.set()
            GLib.MainLoop(ctx).run()
        threading.Thread(target=serve, daemon=True).start()
        ready.wait(30)
        if self._error is not None or not ready.is_set():
            raise RuntimeError(f"cannot serve the desktop bus names: {self._error}")

    def _setup(self):
        self.conn = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        self.items = []           # (unique name, object path) registered
        self.notifications = []   # (summary, body)
        self._next_id = 1
        w = Gio.DBusNodeInfo.new_for_xml(WATCHER_XML).interfaces[0]
        n = Gio.DBusNodeInfo.new_for_xml(NOTIFY_XML).interfaces[0]
        self.conn.register_object("/StatusNotifierWatcher", w,
                                  self._watcher_call, self._watcher_prop, None)
        self.conn.register_object("/org/freedesktop/Notifications", n,
                                  self._notify_call, None, None)
        for name in ("org.kde.StatusNotifierWatcher",
                     "org.freedesktop.Notifications"):
            r = self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                    "org.freedesktop.DBus", "RequestName",
                                    GLib.Variant("(su)", (name, 4)), None,
                                    Gio.DBusCallFlags.NONE, -1, None)
            if r.unpack()[0] != 1:
                raise RuntimeError("cannot own " + name)

    def _watcher_call(self, conn, sender, path, iface, method, params, inv):
        if method == "RegisterStatusNotifierItem":
            service = params.unpack()[0]
            # Ayatana passes its object path; others pass a bus name.
            item = (sender, service) if service.startswith("/") else \
                (service, "/StatusNotifierItem")
            self.items.append(item)
            conn.emit_signal(None, path, iface, "StatusNotifierItemRegistered",
                             GLib.Variant("(s)", (item[0] + item[1],)))
        inv.return_value(None)

    def _watcher_prop(self, conn, sender, path, iface, prop):
        if prop == "RegisteredStatusNotifierItems":
            return GLib.Variant("as", [a + b for a, b in self.items])
        if prop == "IsStatusNotifierHostRegistered":
            return GLib.Variant("b", True)
        if prop == "ProtocolVersion":
            return GLib.Variant("i", 0)
        return None

    def _notify_call(self, conn, sender, path, iface, method, params, inv):
        if method == "Notify":
            args = params.unpack()
            self.notifications.append((args[3], args[4]))
            inv.return_value(GLib.Variant("(u)", (self._next_id,)))
            self._next_id += 1
        elif method == "GetCapabilities":
            inv.return_value(GLib.Variant("(as)", (["body"],)))
        elif method == "GetServerInformation":
            inv.return_value(GLib.Variant("(ssss)", ("test", "ccid-emu", "1", "1.2")))
        else:
            inv.return_value(None)

    def menu_layout(self, item):
        """The registered item's menu as a tree of dicts (label, props,
        children) from com.canonical.dbusmenu GetLayout."""
        owner, path = item
        menu = self.conn.call_sync(owner, path, "org.freedesktop.DBus.Properties",
                                   "Get", GLib.Variant("(ss)", ("org.kde.StatusNotifierItem", "Menu")),
                                   None, Gio.DBusCallFlags.NONE, 5000, None).unpack()[0]
        rev, layout = self.conn.call_sync(owner, menu, "com.canonical.dbusmenu", "GetLayout",
                                          GLib.Variant("(iias)", (0, -1, [])),
                                          GLib.VariantType("(u(ia{sv}av))"),
                                          Gio.DBusCallFlags.NONE, 5000, None).unpack()
        return menu, layout

    def menu_event(self, item, menu, item_id, event="clicked"):
        owner, _ = item
        self.conn.call_sync(owner, menu, "com.canonical.dbusmenu", "Event",
                            GLib.Variant("(isvu)", (item_id, event, GLib.Variant("i", 0), 0)),
                            None, Gio.DBusCallFlags.NONE, 5000, None)
