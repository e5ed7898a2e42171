#!/bin/bash
# A distribution kernel for kstep: Debian's cloud kernel (KASLR, ORC, no
# e1000, virtio-net as modules) with its debug vmlinux, booted with the
# project's initramfs plus the modules it needs. Into images/distro/:
#   bzImage, vmlinux (-> the -dbg package's), initramfs.cpio.gz, tftp, release
#
#   DISTRO_RELEASE=6.1.0-N-cloud-amd64   which one (default: the newest
#                                        installed with its -dbg, else the
#                                        newest the package registry has)
#   KSTEP_SYSROOT=DIR                    look for installed kernels below DIR
#                                        instead of / (the first-run tests
#                                        point it at an empty stand-in)
# Installs the two packages with apt-get when they are missing (as root; about
# 300 MB to download once). Rebuilds only when the release or the project's
# initramfs changed.
set -eEuo pipefail
trap 'echo "build-distro: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
images=${IMAGES:-$top/images}
out=$images/distro
sysroot=${KSTEP_SYSROOT:-}
# Load order: each needs the ones before it; pvpanic ends QEMU on a panic.
modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net
	pvpanic pvpanic-pci"

die() { echo "build-distro: $*" >&2; exit 1; }
say() { echo "build-distro: $*" >&2; }

# Releases installed with both the image and its -dbg; none is no error (an
# `[ -f ] && echo` as the loop's last command would fail the pipeline).
installed_releases() {
	local v r
	for v in "$sysroot"/usr/lib/debug/boot/vmlinux-*-cloud-amd64; do
		r=${v##*/vmlinux-}
		if [ -f "$v" ] && [ -f "$sysroot/boot/vmlinuz-$r" ]; then echo "$r"; fi
	done | sort -V
}

release=${DISTRO_RELEASE:-$(installed_releases | tail -1)}
if [ -z "$release" ] || [ ! -f "$sysroot/usr/lib/debug/boot/vmlinux-$release" ]; then
	newest() {
		apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-cloud-amd64-dbg$' 2>/dev/null |
			sed -n 's/^linux-image-\(.*\)-dbg .*/\1/p' | sort -V | tail -1
	}
	[ -z "$release" ] && release=$(newest)
	# Package lists never fetched on this machine (make deps had nothing to install).
	if [ -z "$release" ] && [ "$(id -u)" = 0 ]; then
		say "no package lists yet: apt-get update"
		apt-get update -qq >"$images/.apt-distro.log" 2>&1 ||
			{ tail -5 "$images/.apt-distro.log" >&2; die "apt-get update failed"; }
		release=$(newest)
	fi
	[ -n "$release" ] || die "no Debian cloud kernel in the package lists (run apt-get update, or set DISTRO_RELEASE)"
	[ "$(id -u)" = 0 ] || die "as root run: apt-get install linux-image-$release-unsigned linux-image-$release-dbg"
	say "installing linux-image-$release-unsigned and -dbg (about 300 MB, once)"
	install_kernel() {
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"linux-image-$release-unsigned" "linux-image-$release-dbg" >"$images/.apt-distro.log" 2>&1
	}
	# Lists fetched long ago name packages the mirror no longer has: fetch
	# them anew once before giving up.
	install_kernel || { say "apt-get install failed; updating the package lists and trying again"
		apt-get update -qq >>"$images/.apt-distro.log" 2>&1 && install_kernel; } ||
		{ tail -20 "$images/.apt-distro.log" >&2; die "apt-get install failed (log: $images/.apt-distro.log)"; }
fi
vmlinuz=$sysroot/boot/vmlinuz-$release
vmlinux=$sysroot/usr/lib/debug/boot/vmlinux-$release
moddir=$sysroot/lib/modules/$release
for f in "$vmlinuz" "$vmlinux"; do [ -f "$f" ] || die "$f missing: reinstall linux-image-$release(-unsigned, -dbg)"; done
[ -f "$images/initramfs.cpio.gz" ] && [ -d "$images/build/initramfs" ] || die "no project initramfs: run 'make images'"

want="$release $(stat -c %Y "$images/initramfs.cpio.gz") $(sha256sum "$0" | cut -c1-12)"
if [ -f "$out/release" ] && [ "$(cat "$out/release")" = "$want" ]; then
	say "distro kernel $release up to date in $out"
	exit 0
fi

root=$images/build/initramfs-distro
rm -rf "$root" "$out"
mkdir -p "$out"
cp -a "$images/build/initramfs" "$root"
mkdir -p "$root/modules"
for m in $modules; do
	ko=$(find "$moddir" -name "$m.ko" -print -quit)
	[ -n "$ko" ] || die "module $m is not in $moddir"
	cp "$ko" "$root/modules/"
	echo "$m" >>"$root/modules/order"
done
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --owner 0:0 --quiet) | gzip -6 >"$out/initramfs.cpio.gz"
cp "$vmlinuz" "$out/bzImage"
ln -s "$vmlinux" "$out/vmlinux"
ln -s ../tftp "$out/tftp"
echo "$want" >"$out/release"
say "distro kernel $release ready in $out (boot it with: make run-guest IMAGES=$out NIC=virtio KASLR=1)"
