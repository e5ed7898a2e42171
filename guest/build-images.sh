#!/bin/bash
# kstep build-images [--system]: the guest images (debug kernel, busybox
# initramfs) for an installed kstep, built from Debian's linux-source into
#   ${XDG_CACHE_HOME:-~/.cache}/kstep/images    (default: for this user)
#   /var/cache/kstep/images                     (--system: for every user; root)
# KSTEP_IMAGES=DIR builds into DIR instead. The packages it needs are those
# of `make deps` (linux-source-6.1, busybox-static, the kernel's build tools).
set -eEuo pipefail
trap 'echo "build-images: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "build-images: $*" >&2; exit 1; }

case "${1:-}" in
--system) [ "$(id -u)" = 0 ] || die "--system writes /var/cache/kstep/images: run it as root"
	images=/var/cache/kstep/images ;;
'') images=${KSTEP_IMAGES:-${XDG_CACHE_HOME:-$HOME/.cache}/kstep/images} ;;
-h|--help) sed -n '2,7s/^# \{0,1\}//p' "$0"; exit 0 ;;
*) die "unknown argument '$1' (kstep build-images [--system])" ;;
esac
mkdir -p "$images"
export IMAGES=$images
"$here/build-kernel.sh"
"$here/build-initramfs.sh"
echo "build-images: images ready in $images" >&2
