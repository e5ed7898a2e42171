#!/bin/bash
# Build images/initramfs.cpio.gz: busybox-static, guest/init, the workloads and
# rxload, plus images/tftp/blob that the rx-udp workload downloads.
set -eEuo pipefail
trap 'echo "build-initramfs: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
here=$(cd "$(dirname "$0")" && pwd)
images=${IMAGES:-$(dirname "$here")/images}
busybox=${BUSYBOX:-/bin/busybox}
die() { echo "build-initramfs: $*" >&2; exit 1; }

"$busybox" --list >/dev/null 2>&1 || die "$busybox is not busybox (install busybox-static: make deps)"
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
	die "$busybox is not statically linked (install busybox-static: make deps)"

root=$images/build/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,workloads} "$images/tftp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$here/init" "$root/init"
cp "$here"/workloads/* "$root/workloads/"
${CC:-cc} -static -O2 -Wall -Wextra -Werror -o "$root/bin/rxload" "$here/rxload.c" ||
	die "cannot build the static rxload helper (needs libc6-dev: make deps)"
chmod 755 "$root/init" "$root"/workloads/*
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
# The kernel opens /dev/console before init runs; without the node it warns.
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --owner 0:0 --quiet) | gzip -6 > "$images/initramfs.cpio.gz.tmp"
mv "$images/initramfs.cpio.gz.tmp" "$images/initramfs.cpio.gz"
[ -f "$images/tftp/blob" ] || head -c 262144 /dev/urandom > "$images/tftp/blob"
echo "build-initramfs: $images/initramfs.cpio.gz ($(du -k "$images/initramfs.cpio.gz" | cut -f1) KiB)" >&2
