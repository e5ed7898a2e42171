#!/bin/bash
# Build the kstep debug kernel into images/: bzImage, vmlinux, the kernel's gdb
# scripts and kernel.stamp (source identity + config hash).
#
# Source: Debian's linux-source tarball by default, or KERNEL_SRC=/path/to/linux.
# Rebuilds only when the source identity or the config inputs changed.
#
#   build-kernel.sh [--check]     --check: say what would happen, build nothing
#                                 (exit 0 = up to date, 10 = would rebuild)
set -eEuo pipefail
trap 'echo "build-kernel: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)" >&2' ERR

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
images=${IMAGES:-$top/images}
fragment=${FRAGMENT:-$here/kernel.fragment}
tarball=${KERNEL_TARBALL:-$(ls /usr/src/linux-source-6.1.tar.xz 2>/dev/null || true)}
cache=${KSTEP_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/kstep}
jobs=${JOBS:-$(nproc)}
check=0
[ "${1:-}" = --check ] && check=1

die() { echo "build-kernel: $*" >&2; exit 1; }
say() { echo "build-kernel: $*" >&2; }

[ -f "$fragment" ] || die "config fragment $fragment not found"

# --- where the source comes from, and what identifies it
if [ -n "${KERNEL_SRC:-}" ]; then
	[ -d "$KERNEL_SRC" ] || die "KERNEL_SRC=$KERNEL_SRC: no such directory (point it at a Linux source tree)"
	[ -f "$KERNEL_SRC/Makefile" ] && [ -f "$KERNEL_SRC/Kconfig" ] ||
		die "KERNEL_SRC=$KERNEL_SRC is not a Linux source tree (no Makefile/Kconfig)"
	src=$(cd "$KERNEL_SRC" && pwd)
	version=$(make -s -C "$src" kernelversion 2>/dev/null) || die "KERNEL_SRC=$src: 'make kernelversion' failed"
	source_id="tree:$src:$version"
	builddir=$images/build/tree-$(printf %s "$src" | sha256sum | cut -c1-12)
else
	[ -n "$tarball" ] && [ -f "$tarball" ] ||
		die "no kernel source: install linux-source-6.1 (make deps) or set KERNEL_SRC=/path/to/linux"
	pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %s-%Y "$tarball")
	source_id="debian:$(basename "$tarball"):$pkgver"
	src=$images/build/$(basename "$tarball" .tar.xz)
	builddir=$images/build/kernel
fi
# Bump the recipe number when this script changes what ends up in the build.
config_hash=$( { echo "recipe=3"; cat "$fragment"; } | sha256sum | cut -c1-16)
stamp=$images/kernel.stamp
want="source=$source_id
config=$config_hash"

# A user's tree changes under us: any source file newer than the stamp counts.
tree_changed() {
	[ -n "${KERNEL_SRC:-}" ] || return 1
	[ -n "$(find "$src" \( -name .git -o -name 'images' \) -prune -o -type f \
		\( -name '*.[chS]' -o -name 'Kconfig*' -o -name 'Makefile*' -o -name '*.lds*' \) \
		-newer "$stamp" -print -quit 2>/dev/null)" ]
}

reason=""
if [ ! -f "$stamp" ] || [ ! -f "$images/bzImage" ] || [ ! -f "$images/vmlinux" ]; then
	reason="no kernel image yet"
elif [ "$(grep -E '^(source|config)=' "$stamp")" != "$want" ]; then
	old_src=$(sed -n 's/^source=//p' "$stamp"); old_cfg=$(sed -n 's/^config=//p' "$stamp")
	if [ "$old_src" != "$source_id" ]; then reason="source changed ($old_src -> $source_id)"
	else reason="config changed ($old_cfg -> $config_hash)"; fi
elif tree_changed; then
	reason="files in $src changed since the last build"
fi

if [ -z "$reason" ]; then
	# A stamp from before srcdir/objdir were recorded: add them.
	[ $check = 1 ] || grep -q '^srcdir=' "$stamp" || printf 'srcdir=%s\nobjdir=%s\n' "$src" "$builddir" >> "$stamp"
	say "kernel up to date ($source_id, config $config_hash)"
	exit 0
fi
if [ $check = 1 ]; then
	say "would rebuild: $reason"
	exit 10
fi
say "building: $reason"

key=$(printf '%s\n%s' "$source_id" "$config_hash" | sha256sum | cut -c1-20)
install_outputs() { # from $1 (a build dir or a cache entry)
	mkdir -p "$images"
	rm -rf "$images/scripts" "$images/vmlinux-gdb.py"
	cp "$1/vmlinux" "$images/vmlinux.tmp" && mv "$images/vmlinux.tmp" "$images/vmlinux"
	cp "$1/arch/x86/boot/bzImage" "$images/bzImage"
	cp "$1/.config" "$images/kernel.config"
	cp -L "$1/vmlinux-gdb.py" "$images/vmlinux-gdb.py"
	mkdir -p "$images/scripts/gdb/linux"
	cp -L "$1"/scripts/gdb/linux/*.py "$images/scripts/gdb/linux/"
}

# The source tree is part of the images even when the build comes from the
# cache: its scripts (decode_stacktrace.sh) and sources serve gdb and oopses.
if [ -z "${KERNEL_SRC:-}" ] && [ ! -f "$src/Makefile" ]; then
	say "unpacking $tarball"
	mkdir -p "$images/build"
	tar -C "$images/build" -xJf "$tarball"
fi
if [ -z "${KERNEL_SRC:-}" ] && [ -n "$cache" ] && [ -f "$cache/$key/vmlinux" ]; then
	say "using cached build $cache/$key"
	install_outputs "$cache/$key"
else
	mkdir -p "$builddir"
	say "configuring (tinyconfig + $(basename "$fragment")) in $builddir"
	make -s -C "$src" O="$builddir" ARCH=x86_64 tinyconfig >/dev/null
	"$src/scripts/kconfig/merge_config.sh" -m -O "$builddir" "$builddir/.config" "$fragment" >/dev/null
	make -s -C "$src" O="$builddir" ARCH=x86_64 olddefconfig >/dev/null
	missing=""
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" "$builddir/.config" || missing="$missing ${line%%=*}" ;;
		"# CONFIG_"*" is not set") o=${line#\# }; o=${o%% *}
			grep -q "^$o=" "$builddir/.config" && missing="$missing $o(should be off)" ;;
		esac
	done < "$fragment"
	[ -z "$missing" ] || die "config options did not take (unmet dependencies?):$missing"

	say "compiling with $jobs jobs (a few minutes; progress below)"
	start=$(date +%s)
	# One line per 200 compiled files keeps the log short but shows it moving.
	# Debug info names sources relative to the kernel tree (./net/ipv4/icmp.c),
	# not by this clone's absolute path: a cached build then serves any clone,
	# and gdb and kstep look the files up in the tree they run from.
	if ! make -C "$src" O="$builddir" ARCH=x86_64 -j"$jobs" \
		KCFLAGS="-ffile-prefix-map=$src/=./ -ffile-prefix-map=$builddir=." \
		KAFLAGS="-ffile-prefix-map=$src/=./ -ffile-prefix-map=$builddir=." \
		bzImage vmlinux scripts_gdb 2>&1 |
		awk -v t0="$start" '
			/^  (CC|AS|LD|AR)/ { n++; if (n % 200 == 0) { printf "build-kernel: %d objects, %ds\n", n, systime() - t0 > "/dev/stderr" } }
			/: error:|\*\*\*/ { print > "/dev/stderr" }'; then
		die "kernel build failed (rerun with: make -C $src O=$builddir)"
	fi
	say "compiled in $(( $(date +%s) - start ))s"
	install_outputs "$builddir"
	if [ -z "${KERNEL_SRC:-}" ] && [ -n "$cache" ]; then
		mkdir -p "$cache/$key/arch/x86/boot" "$cache/$key/scripts/gdb/linux"
		cp "$builddir/vmlinux" "$builddir/.config" "$cache/$key/"
		cp -L "$builddir/vmlinux-gdb.py" "$cache/$key/"
		cp "$builddir/arch/x86/boot/bzImage" "$cache/$key/arch/x86/boot/"
		cp -L "$builddir"/scripts/gdb/linux/*.py "$cache/$key/scripts/gdb/linux/"
	fi
fi

version=$(strings "$images/vmlinux" | grep -m1 '^Linux version ' || true)
# Where this tree's sources and generated files are: the debug info names
# them relative to these (gdbscripts/attach.sh adds them to gdb's path).
printf '%s\nbanner=%s\nbuilt=%s\nsrcdir=%s\nobjdir=%s\n' "$want" "$version" "$(date -u +%FT%TZ)" "$src" "$builddir" > "$stamp"
say "images ready: $images/bzImage, $images/vmlinux ($version)"
