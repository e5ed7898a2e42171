#!/bin/bash
# gdb on images/vmlinux with the kernel's gdb scripts and kstep's helpers,
# attached to the guest of `make run-guest` (or a guest kstep left frozen).
# Extra arguments go to gdb, e.g.: attach.sh -batch -ex bt -ex lx-dmesg
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
images=${IMAGES:-$top/images}
. "$top/guest/rundir.sh"
rundir=$(kstep_rundir)

die() { echo "attach: $*" >&2; exit 2; }
[ -f "$images/vmlinux" ] || die "no $images/vmlinux: run 'make images' first"
[ -f "$images/vmlinux-gdb.py" ] || die "no $images/vmlinux-gdb.py: run 'make images' (CONFIG_GDB_SCRIPTS)"
command -v gdb >/dev/null || die "gdb not found: run 'make deps'"

# Where to attach: explicit settings first, then what the running guest wrote
# (only from a run directory that is really ours), then its default socket.
stub_opened=
if [ -n "${DOMAIN:-}" ]; then
	# A libvirt domain: its own gdbstub, or one opened for this gdb and
	# closed again when gdb ends.
	. "$top/guest/libvirt.sh"
	command -v virsh >/dev/null || die "DOMAIN=$DOMAIN needs virsh: run 'make deps'"
	uri=$(lv_uri)
	virsh -q -c "$uri" domstate "$DOMAIN" >/dev/null 2>&1 || die "no running domain '$DOMAIN' at $uri (virsh -c $uri list)"
	stub=$(lv_stub "$uri" "$DOMAIN") || die "$stub"
	target=${stub% *}
	[ "${stub##* }" = opened ] && stub_opened=1
	echo "attach: domain '$DOMAIN' at $uri, gdbstub $target$([ -n "$stub_opened" ] && echo ' (opened for this gdb; closed when it ends)')" >&2
elif [ "${KGDB:-0}" = 1 ]; then
	# The kernel's own kgdb on the guest's second serial line (run-guest KGDB=1).
	why=$(private_rundir "$rundir") || die "$why"
	target=$(sed -n 's/^KGDB_TARGET=//p' "$rundir/guest.env" 2>/dev/null)
	[ -n "$target" ] || die "no kgdb line in $rundir/guest.env: start the guest with make run-guest KGDB=1"
elif [ -n "${GDB_SOCK:-}" ]; then
	target=$GDB_SOCK
elif [ -n "${GDB_PORT:-}" ]; then
	target=127.0.0.1:$GDB_PORT
elif [ -n "${GDB_TARGET:-}" ]; then
	target=$GDB_TARGET
else
	why=$(private_rundir "$rundir") || die "$why"
	target=$rundir/gdb.sock
	[ -f "$rundir/guest.env" ] && target=$(sed -n 's/^GDB_TARGET=//p' "$rundir/guest.env")
fi
case "$target" in
/*) [ -S "$target" ] || die "no gdbstub socket at $target (is the guest running? make run-guest HALT=1)" ;;
*) timeout 1 bash -c "exec 3<>/dev/tcp/${target%:*}/${target##*:}" 2>/dev/null ||
	die "nothing listens on $target (start the guest first: make run-guest HALT=1)" ;;
esac

# The debug info names sources relative to the kernel tree (./net/...):
# look them up in this tree's sources and generated files.
srcdirs=()
for key in srcdir objdir; do
	d=$(sed -n "s/^$key=//p" "$images/kernel.stamp" 2>/dev/null)
	[ -n "$d" ] && [ -d "$d" ] && srcdirs+=(-ex "directory $d")
done

export KSTEP_GDBSCRIPTS=$here
interactive=1
for a in "$@"; do [ "$a" = -batch ] && interactive=0; done
banner=()
[ $interactive = 1 ] && banner=(-ex "echo kstep: attached to $target; 'kstep-help' lists kstep's commands\n")
gdb_cmd=(gdb -q -iex "add-auto-load-safe-path $images" -ex "source $images/vmlinux-gdb.py" \
	-x "$here/kstep.gdb" "${srcdirs[@]}" -ex "target remote $target" "${banner[@]}" "$@" "$images/vmlinux")
[ -z "$stub_opened" ] && exec "${gdb_cmd[@]}"
# The stub opened for this gdb is closed again however gdb ends; the
# domain runs on (gdb's detach or quit resumes it).
trap 'lv_close_stub "$uri" "$DOMAIN"' EXIT
trap '' INT # Ctrl-C is gdb's (it interrupts the guest)
"${gdb_cmd[@]}"
