#!/bin/bash
# A QEMU 10 for kstep on Debian 12, whose own QEMU is 7.2: Debian's
# bookworm-backports qemu-system-x86 (with -common and -data), downloaded
# with a private package list and unpacked into $IMAGES/qemu, without
# touching the system's apt sources or its installed QEMU. Its libraries are
# bookworm's own (those of the system's qemu-system-x86, from make deps).
# The mirror is the one the system's apt already uses for its release.
#
#   build-qemu.sh          then: QEMU=$IMAGES/qemu/bin/qemu-system-x86_64
#   QEMU_SUITE=SUITE       another suite than CODENAME-backports
set -eEuo pipefail
trap 'echo "build-qemu: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR
here=$(cd "$(dirname "$0")" && pwd)
images=${IMAGES:-$(dirname "$here")/images}
out=$images/qemu
case "$out" in *\'*) echo "build-qemu: $out has a quote in it: pick another IMAGES" >&2; exit 1 ;; esac
packages="qemu-system-x86 qemu-system-common qemu-system-data"
die() { echo "build-qemu: $*" >&2; exit 1; }
say() { echo "build-qemu: $*" >&2; }

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$codename" ] || die "/etc/os-release names no release (VERSION_CODENAME): this is for Debian"
suite=${QEMU_SUITE:-$codename-backports}
# The archive's URI as this machine's apt has it, from any sources format.
mirror=$(apt-cache policy 2>/dev/null | awk -v s="$codename/main" '$3 == s && $2 ~ /^(https?|file):/ { print $2; exit }')
[ -n "$mirror" ] || die "apt has no source for $codename/main (apt-cache policy): run apt-get update, or add one"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring missing: install debian-archive-keyring"
if [ -x "$out/bin/qemu-system-x86_64" ] && [ "$(cat "$out/suite" 2>/dev/null)" = "$suite $mirror" ]; then
	say "$("$out/bin/qemu-system-x86_64" --version | head -1) up to date in $out"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kstep-qemu-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
echo "deb [signed-by=$keyring] $mirror $suite main" >"$work/sources.list"
apt=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/dev/null
	-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
	-o APT::Sandbox::User=root)
say "fetching the $suite package list from $mirror"
apt-get "${apt[@]}" update -qq >"$work/apt.log" 2>&1 || { tail -5 "$work/apt.log" >&2; die "apt-get update of $suite failed"; }
version=$(apt-cache "${apt[@]}" show qemu-system-x86 2>/dev/null | sed -n 's/^Version: //p' | head -1)
[ -n "$version" ] || die "$suite has no qemu-system-x86"
say "downloading $packages $version (about 14 MB)"
(cd "$work/debs" && apt-get "${apt[@]}" download $(printf "%s=$version " $packages) >"$work/apt.log" 2>&1) ||
	{ tail -5 "$work/apt.log" >&2; die "apt-get download failed"; }
rm -rf "$out.new"
mkdir -p "$out.new/bin"
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$out.new/root"; done
# The binary with its own firmware first, then the system's SeaBIOS and
# iPXE; its own modules, not the system QEMU 7.2's (QEMU_MODULE_DIR).
cat >"$out.new/bin/qemu-system-x86_64" <<WRAP
#!/bin/sh
# QEMU $version from Debian's $suite, unpacked by guest/build-qemu.sh
QEMU_MODULE_DIR='$out/root/usr/lib/x86_64-linux-gnu/qemu' exec '$out/root/usr/bin/qemu-system-x86_64' \\
	-L '$out/root/usr/share/qemu' -L /usr/share/seabios -L /usr/lib/ipxe/qemu "\$@"
WRAP
chmod 755 "$out.new/bin/qemu-system-x86_64"
echo "$suite $mirror" >"$out.new/suite"
rm -rf "$out"
mv "$out.new" "$out"
"$out/bin/qemu-system-x86_64" --version | head -1 >&2
say "ready: QEMU=$out/bin/qemu-system-x86_64 (kstep and make run-guest take it from QEMU)"
