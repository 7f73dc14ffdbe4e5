#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the test guest: a Debian 12 kernel plus a busybox initramfs with
# udev, pcscd, libccid, OpenSC and our ccid-guest-tool, from Debian
# packages fetched with `apt-get download` (no network but the package
# mirror, no root needed except for apt's own cache).
#
# Output (default tests/guest/out/, GUEST_OUT overrides):
#   vmlinuz          the kernel (bzImage)
#   vmlinux          the same kernel uncompressed, booted through its PVH
#                    entry (seconds faster under TCG)
#   initramfs.img    the root file system (compressed cpio)
#   ccid-guest-tool  the guest tool, also installed in the image
#   guest.env        KERNEL_VERSION, INITRAMFS_COMPRESSION, PACKAGES
#   debs/            downloaded packages, kept between builds
#
# The build is skipped when nothing it depends on changed: this script,
# packages.txt, rootfs/, tool/ and the versions apt would download.
# Usage: build-guest.sh [--force] [--out DIR] [--compress zstd|gzip|none]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${GUEST_OUT:-$HERE/out}
KERNEL_META=${GUEST_KERNEL_META:-linux-image-amd64}
COMPRESS=${GUEST_COMPRESS:-zstd}
FORCE=0

# Top-level kernel modules; their dependencies are added from .modinfo.
# USB host controllers (xhci, ehci, uhci, plus ohci for completeness),
# virtio for a virtio-serial port, qemu_fw_cfg for -fw_cfg files.
MODULES=(xhci-pci ehci-pci uhci-hcd ohci-pci virtio_pci virtio_console
	qemu_fw_cfg)

# Never copied into the image: documentation, translations, data nobody
# reads in the guest, init-system glue, and the Perl half of pcsc-tools.
EXCLUDES=(
	./usr/share/doc ./usr/share/man ./usr/share/info ./usr/share/locale
	./usr/share/lintian ./usr/share/bug ./usr/share/bash-completion
	./usr/share/zsh ./usr/share/fish ./usr/share/icons
	./usr/share/applications ./usr/share/pixmaps ./usr/share/menu
	./usr/share/pcsc ./usr/share/gdb ./usr/share/gcc ./usr/share/glib-2.0
	./usr/share/polkit-1 ./usr/share/initramfs-tools
	./usr/lib/x86_64-linux-gnu/gconv ./usr/lib/udev/hwdb.d
	./usr/lib/systemd/system ./usr/lib/systemd/network
	./usr/lib/tmpfiles.d ./usr/lib/modprobe.d ./usr/lib/sysusers.d
	./usr/lib/x86_64-linux-gnu/perl5 ./usr/share/perl5
	./etc/init.d ./etc/xdg ./etc/rc?.d
	./usr/bin/scriptor ./usr/bin/gscriptor ./usr/bin/ATR_analysis
	./usr/bin/pkcs11-register ./usr/bin/opensc-notify
)

log() { printf 'build-guest: %s\n' "$*"; }
die() { printf 'build-guest: error: %s\n' "$*" >&2; exit 1; }

usage() {
	sed -n '3,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($#)); do
	case $1 in
	--force) FORCE=1 ;;
	--out) OUT=${2:?--out needs a directory}; shift ;;
	--compress) COMPRESS=${2:?--compress needs zstd, gzip or none}; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
	shift
done

case $COMPRESS in
zstd) COMPRESS_CMD=(zstd -q -T0 -10 -c) ;;
gzip) COMPRESS_CMD=(gzip -6 -n -c) ;;
none) COMPRESS_CMD=(cat) ;;
*) die "--compress: '$COMPRESS' is not zstd, gzip or none" ;;
esac

need() {
	local tool
	for tool; do
		command -v "$tool" >/dev/null 2>&1 ||
			die "'$tool' not found on the host (see docs/guest-kit.md, host packages)"
	done
}
need apt-get apt-cache dpkg-deb cpio gcc pkg-config readelf objcopy sha256sum xz
[[ $COMPRESS == none ]] || need "${COMPRESS_CMD[0]}"
LDCONFIG=$(command -v ldconfig || echo /sbin/ldconfig)
[[ -x $LDCONFIG ]] || die "ldconfig not found on the host (package libc-bin)"
pkg-config --exists libpcsclite ||
	die "libpcsclite development files not found (package libpcsclite-dev)"

START=$EPOCHREALTIME
mkdir -p "$OUT/debs"
# One build at a time per output directory (parallel boot-guest.sh runs
# all call us); the others wait, then find the guest up to date.
exec 9>"$OUT/.lock"
flock 9

# --- what to fetch ----------------------------------------------------------

read_packages() {
	local line
	PACKAGES=()
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%%#*}
		line=${line//[[:space:]]/}
		[[ -n $line ]] && PACKAGES+=("$line")
	done <"$HERE/packages.txt"
	((${#PACKAGES[@]})) || die "packages.txt names no package"
}
read_packages

# The metapackage's dependency names the versioned kernel package.
KERNEL_PKG=$(apt-cache depends "$KERNEL_META" 2>/dev/null |
	awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
[[ -n $KERNEL_PKG ]] ||
	die "cannot resolve $KERNEL_META to a kernel package: run 'apt-get update' (as root) first"
KERNEL_VERSION=${KERNEL_PKG#linux-image-}

# apt-get --print-uris resolves names to exact .deb files without
# downloading; the file names carry the versions and go into the stamp.
declare -A DEB_OF=()
uris=$(apt-get download --print-uris "${PACKAGES[@]}" "$KERNEL_PKG" 2>&1) ||
	die "apt-get cannot resolve the packages in packages.txt: $(tail -n 1 <<<"$uris")"
while read -r uri file _; do
	[[ $uri == "'"* ]] || continue
	DEB_OF[${file%%_*}]=$file
done <<<"$uris"
for pkg in "${PACKAGES[@]}" "$KERNEL_PKG"; do
	[[ -n ${DEB_OF[$pkg]:-} ]] || die "apt-get does not know package '$pkg'"
done

# --- up to date? -------------------------------------------------------------

stamp_inputs() {
	printf '%s\n' "compress=$COMPRESS" "kernel=$KERNEL_PKG" "${MODULES[@]}"
	printf '%s\n' "${DEB_OF[@]}" | LC_ALL=C sort
	gcc --version | head -n 1
	(cd "$HERE" && find build-guest.sh packages.txt rootfs tool -type f \
		-print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
STAMP=$(stamp_inputs | sha256sum | cut -d' ' -f1)
if ((!FORCE)) && [[ -f $OUT/stamp && $(cat "$OUT/stamp") == "$STAMP" &&
	-f $OUT/vmlinuz && -f $OUT/initramfs.img ]]; then
	log "up to date ($OUT)"
	exit 0
fi
rm -f "$OUT/stamp"

# --- download ----------------------------------------------------------------

missing=()
for pkg in "${!DEB_OF[@]}"; do
	[[ -s $OUT/debs/${DEB_OF[$pkg]} ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
	log "downloading ${#missing[@]} package(s)"
	apt_opts=()
	# apt drops to user _apt for downloads, which cannot write here.
	((EUID == 0)) && apt_opts+=(-o APT::Sandbox::User=root)
	(cd "$OUT/debs" && apt-get "${apt_opts[@]}" -q download "${missing[@]}" >/dev/null) ||
		die "apt-get download failed"
fi
# Forget versions we no longer use so the cache does not grow forever.
for deb in "$OUT"/debs/*.deb; do
	keep=0
	for pkg in "${!DEB_OF[@]}"; do
		[[ ${deb##*/} == "${DEB_OF[$pkg]}" ]] && keep=1 && break
	done
	((keep)) || rm -f "$deb"
done

# --- unpack ------------------------------------------------------------------

STAGE=$OUT/stage
ROOT=$OUT/rootfs
rm -rf "$STAGE" "$ROOT"
mkdir -p "$STAGE" "$ROOT"

for pkg in "${PACKAGES[@]}"; do
	dpkg-deb -x "$OUT/debs/${DEB_OF[$pkg]}" "$STAGE"
done

# Only the kernel image and the modules the image needs, cached per kernel
# build and module list: unpacking the kernel package takes seconds, and
# its 400 MB module tree is pruned to those modules once they are known.
KDIR=$OUT/kernel/${DEB_OF[$KERNEL_PKG]%.deb}-$(printf '%s\n' "${MODULES[@]}" | sha256sum | cut -c1-12)
if [[ ! -f $KDIR/done ]]; then
	log "unpacking $KERNEL_PKG"
	rm -rf "$OUT/kernel"
	mkdir -p "$KDIR"
	# tar stops at the end-of-archive marker; cat drains the padding
	# after it so dpkg-deb does not die of SIGPIPE.
	dpkg-deb --fsys-tarfile "$OUT/debs/${DEB_OF[$KERNEL_PKG]}" |
		{ tar -x -C "$KDIR" --wildcards "./boot/vmlinuz-*" \
			"./lib/modules/*/kernel/drivers/*" \
			"./lib/modules/*/kernel/lib/*" "./lib/modules/*/modules.order"
		  cat >/dev/null; }
	[[ -f $KDIR/boot/vmlinuz-$KERNEL_VERSION ]] ||
		die "$KERNEL_PKG has no boot/vmlinuz-$KERNEL_VERSION"
	touch "$KDIR/done"
fi
KMOD=$KDIR/lib/modules/$KERNEL_VERSION

# Debian 12 is merged-/usr: packages still ship /bin and /lib, the image
# has them as links into /usr.
for top in bin sbin lib lib64; do
	if [[ -d $STAGE/$top && ! -L $STAGE/$top ]]; then
		mkdir -p "$STAGE/usr/$top"
		cp -a "$STAGE/$top/." "$STAGE/usr/$top/"
		rm -rf "${STAGE:?}/$top"
	fi
done

exclude_args=()
for e in "${EXCLUDES[@]}"; do
	exclude_args+=("--exclude=$e")
done
tar -C "$STAGE" "${exclude_args[@]}" -cf - . | tar -C "$ROOT" -xf -
for top in bin sbin lib lib64; do
	mkdir -p "$ROOT/usr/$top"
	ln -s "usr/$top" "$ROOT/$top"
done
mkdir -p "$ROOT"/{dev,proc,sys,run,tmp,root,var/log,etc/ccid-guest}
ln -sfn ../run "$ROOT/var/run"
chmod 1777 "$ROOT/tmp"

# --- kernel modules ----------------------------------------------------------

declare -A MOD_PATH=() MOD_DONE=()
while IFS= read -r path; do
	name=${path##*/}
	name=${name%.ko}
	MOD_PATH[${name//-/_}]=$path
done < <(cd "$KMOD" && find kernel -name '*.ko')

MOD_ORDER=()
# Depth-first over .modinfo's depends=, so each module follows its
# dependencies and busybox insmod can load the list in order.
add_module() {
	local name=${1//-/_} path deps dep
	[[ -n ${MOD_DONE[$name]:-} ]] && return 0
	path=${MOD_PATH[$name]:-}
	[[ -n $path ]] || die "kernel module '$1' not found in $KERNEL_PKG"
	MOD_DONE[$name]=1
	deps=$(objcopy -O binary --only-section=.modinfo "$KMOD/$path" /dev/stdout |
		tr '\0' '\n' | sed -n 's/^depends=//p')
	IFS=, read -r -a deps <<<"$deps"
	for dep in "${deps[@]}"; do
		[[ -n $dep ]] && add_module "$dep"
	done
	MOD_ORDER+=("$path")
}
for m in "${MODULES[@]}"; do
	add_module "$m"
done
if [[ ! -f $KDIR/pruned ]]; then
	declare -A KEEP_MOD=()
	for path in "${MOD_ORDER[@]}"; do
		KEEP_MOD[$path]=1
	done
	while IFS= read -r path; do
		[[ -n ${KEEP_MOD[$path]:-} ]] || rm -f "$KMOD/$path"
	done < <(cd "$KMOD" && find kernel -name '*.ko')
	touch "$KDIR/pruned"
fi
: >"$ROOT/etc/ccid-guest/modules"
for path in "${MOD_ORDER[@]}"; do
	install -D -m 644 "$KMOD/$path" "$ROOT/usr/lib/modules/$KERNEL_VERSION/$path"
	printf '/usr/lib/modules/%s/%s\n' "$KERNEL_VERSION" "$path" >>"$ROOT/etc/ccid-guest/modules"
done

# --- busybox, our files, the guest tool --------------------------------------

BUSYBOX=$ROOT/usr/bin/busybox
[[ -x $BUSYBOX ]] || die "busybox-static did not provide /bin/busybox"
while IFS= read -r applet; do
	# Real programs (udevadm, ...) win over applets of the same name.
	[[ -e $ROOT/$applet || -L $ROOT/$applet ]] && continue
	mkdir -p "$ROOT/${applet%/*}"
	ln -s /usr/bin/busybox "$ROOT/$applet"
done < <("$BUSYBOX" --list-full)

cp -a "$HERE/rootfs/." "$ROOT/"
chmod 755 "$ROOT/init"

read -r -a pcsc_flags <<<"$(pkg-config --cflags --libs libpcsclite)"
gcc -std=gnu11 -O2 -g0 -Wall -Wextra -Werror -o "$OUT/ccid-guest-tool" \
	"$HERE/tool/ccid-guest-tool.c" "${pcsc_flags[@]}"
install -m 755 "$OUT/ccid-guest-tool" "$ROOT/usr/bin/ccid-guest-tool"
read -r -a usb_flags <<<"$(pkg-config --cflags --libs libusb-1.0)"
gcc -std=gnu11 -O2 -g0 -Wall -Wextra -Werror -o "$OUT/ccid-usb-raw" \
	"$HERE/tool/ccid-usb-raw.c" "${usb_flags[@]}"
install -m 755 "$OUT/ccid-usb-raw" "$ROOT/usr/bin/ccid-usb-raw"

cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
# The groups udev's default rules name, so udevd does not warn about them.
groupid=0
: >"$ROOT/etc/group"
for g in root tty disk kmem dialout audio video cdrom tape plugdev input \
	render sgx kvm lp floppy scard; do
	printf '%s:x:%d:\n' "$g" "$groupid" >>"$ROOT/etc/group"
	groupid=$((groupid + 1))
done
printf 'nogroup:x:65534:\n' >>"$ROOT/etc/group"
printf 'include /etc/ld.so.conf.d/*.conf\n' >"$ROOT/etc/ld.so.conf"
"$LDCONFIG" -r "$ROOT"

# libccid's reader list as the package ships it, straight from the .deb:
# guest tests check that the list they ran with is this one (no edit).
dpkg-deb --fsys-tarfile "$OUT/debs/${DEB_OF[libccid]}" |
	tar -xO ./etc/libccid_Info.plist | sha256sum | cut -d' ' -f1 \
	>"$ROOT/etc/ccid-guest/libccid-plist.sha256"
[[ -s $ROOT/etc/ccid-guest/libccid-plist.sha256 ]] ||
	die "libccid's package has no ./etc/libccid_Info.plist"

cat >"$ROOT/etc/ccid-guest/build" <<EOF
KERNEL_VERSION=$KERNEL_VERSION
PACKAGES="$(for p in "${PACKAGES[@]}"; do printf '%s ' "${DEB_OF[$p]%.deb}"; done)"
EOF

# --- every ELF file finds its libraries --------------------------------------

declare -A HAVE_LIB=()
for dir in usr/lib/x86_64-linux-gnu usr/lib usr/lib64; do
	for f in "$ROOT/$dir"/*; do
		[[ -e $f ]] && HAVE_LIB[${f##*/}]=1
	done
done
missing_libs=()
while IFS= read -r -d '' f; do
	[[ $(head -c 4 "$f" | od -An -c | tr -d ' ') == '177ELF' ]] || continue
	while read -r lib; do
		[[ -n ${HAVE_LIB[$lib]:-} ]] || missing_libs+=("${f#"$ROOT"}: $lib")
	done < <(readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
done < <(find "$ROOT/usr" -type f \( -perm -u+x -o -name '*.so*' \) -print0)
if ((${#missing_libs[@]})); then
	printf 'build-guest: missing library: %s\n' "${missing_libs[@]}" >&2
	die "add the package(s) providing these libraries to packages.txt"
fi

# --- pack ----------------------------------------------------------------------

cp "$KDIR/boot/vmlinuz-$KERNEL_VERSION" "$OUT/vmlinuz.tmp"
# The bzImage decompresses itself, which costs seconds under TCG.  The
# ELF inside boots through its PVH entry point (QEMU loads it directly),
# so unpack it once here.  Debian 12 compresses kernels with xz.
rm -f "$OUT/vmlinux"
xz_off=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$OUT/vmlinuz.tmp" | head -n 1 | cut -d: -f1)
if [[ -n $xz_off ]] &&
	xz -dc --single-stream <(tail -c +$((xz_off + 1)) "$OUT/vmlinuz.tmp") >"$OUT/vmlinux.tmp" &&
	[[ $(readelf -n "$OUT/vmlinux.tmp" 2>/dev/null) == *"(0x00000012)"* ]]; then
	mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
else
	rm -f "$OUT/vmlinux.tmp"
	log "note: no PVH vmlinux in the kernel image; guests boot the slower bzImage"
fi
(cd "$ROOT" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --reproducible --quiet) |
	"${COMPRESS_CMD[@]}" >"$OUT/initramfs.img.tmp"
# boot-guest.sh appends a second cpio; the kernel looks for it only at a
# 4-byte aligned offset, and skips the zeros before it.
size=$(stat -c %s "$OUT/initramfs.img.tmp")
head -c $(((512 - size % 512) % 512)) /dev/zero >>"$OUT/initramfs.img.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$OUT/initramfs.img.tmp" "$OUT/initramfs.img"
cat >"$OUT/guest.env" <<EOF
KERNEL_VERSION=$KERNEL_VERSION
INITRAMFS_COMPRESSION=$COMPRESS
PACKAGES="$(for p in "${PACKAGES[@]}"; do printf '%s ' "${DEB_OF[$p]%.deb}"; done)"
EOF
rm -rf "$STAGE"
printf '%s\n' "$STAMP" >"$OUT/stamp"

log "$(printf 'built in %s s: vmlinuz %s, initramfs.img %s (%s), rootfs %s' \
	"$(awk -v a="$START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')" \
	"$(du -h "$OUT/vmlinuz" | cut -f1)" "$(du -h "$OUT/initramfs.img" | cut -f1)" \
	"$COMPRESS" "$(du -sh "$ROOT" | cut -f1)")"
