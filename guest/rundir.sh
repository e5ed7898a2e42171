# shellcheck shell=bash
# Sourced by run-guest.sh and gdbscripts/attach.sh: the per-user run
# directory that holds the guest's sockets and guest.env.
#
# The default place, ${XDG_RUNTIME_DIR:-/tmp}/kstep-UID, is predictable, so
# another local user can create it first (or plant a symlink there) and wait
# for our sockets and files. As daemons treat their runtime directory, it is
# used only when it is a real directory that we own with mode 0700.

kstep_rundir() { # the run directory's path
	echo "${KSTEP_RUNDIR:-${XDG_RUNTIME_DIR:-/tmp}/kstep-$(id -u)}"
}

# private_rundir DIR: make DIR, or accept the one there if it is private.
# Prints the reason and returns 1 when it is not.
private_rundir() {
	local dir=$1 owner mode
	[ -e "$dir" ] || [ -L "$dir" ] || mkdir -m 700 "$dir" 2>/dev/null
	if [ -L "$dir" ] || [ ! -d "$dir" ]; then
		echo "$dir is not a directory of yours (a symlink or a file): refusing it; remove it or set KSTEP_RUNDIR"
		return 1
	fi
	read -r owner mode <<<"$(stat -c '%u %a' "$dir")" # not <(...): that needs /dev/fd, gone without /proc
	if [ "$owner" != "$(id -u)" ]; then
		echo "$dir belongs to uid $owner, not to you: refusing it (someone else may have prepared it); set KSTEP_RUNDIR"
		return 1
	fi
	if [ "$mode" != 700 ]; then
		echo "$dir has mode $mode, not 700: refusing it (others could reach the gdbstub); chmod 700 $dir"
		return 1
	fi
}

# write_private FILE: standard input into FILE, replacing it atomically and
# never through a link (the directory must already be private).
write_private() {
	local tmp
	tmp=$(umask 077 && mktemp "$1.XXXXXX") || return 1
	cat >"$tmp" && mv -f "$tmp" "$1"
}
