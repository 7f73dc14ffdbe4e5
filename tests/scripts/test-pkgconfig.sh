#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# libccidemu.pc works: a program outside the tree, compiled with only what
# `pkg-config --cflags --libs libccidemu` gives (meson's uninstalled copy
# of the .pc file in the build tree), creates a device and reads its USB
# device descriptor (18 bytes, bDescriptorType 1, class in the interface).
#
# Usage: test-pkgconfig.sh BUILD_DIR CC
set -euo pipefail
BUILD=$(cd "${1:?usage: test-pkgconfig.sh BUILD_DIR CC}" && pwd)
CC=${2:-cc}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PKG_CONFIG_PATH=$BUILD/meson-uninstalled

cat >"$WORK/use.c" <<'C'
#include <ccid-emu/ccid_emu.h>
#include <stdio.h>

static uint64_t now(void *user) { return 0; }
static void timer(void *user, int64_t deadline) { }

int main(void)
{
	struct ccid_config cfg;
	struct ccid_transport_ops ops = { .now_ms = now, .timer_update = timer };
	const char *err = NULL;
	ccid_dev *dev;
	const uint8_t *d;
	size_t len;
	int ok;

	ccid_config_init(&cfg);
	dev = ccid_dev_new(&cfg, &ops, NULL, &err);
	if (dev == NULL) {
		fprintf(stderr, "ccid_dev_new: %s\n", err);
		return 1;
	}
	d = ccid_dev_device_descriptor(dev, &len);
	printf("descriptor %zu bytes, type %u, usb %04x:%04x\n", len, d[1],
	       d[8] | d[9] << 8, d[10] | d[11] << 8);
	ok = len == 18 && d[0] == 18 && d[1] == 1;
	ccid_dev_free(dev);
	return ok ? 0 : 1;
}
C
flags=$(pkg-config --cflags --libs libccidemu)
echo "pkg-config --cflags --libs libccidemu: $flags"
# shellcheck disable=SC2086 # the flags are words
"$CC" -Wall -Werror -o "$WORK/use" "$WORK/use.c" $flags
LD_LIBRARY_PATH=$BUILD/ccid-emu "$WORK/use"
