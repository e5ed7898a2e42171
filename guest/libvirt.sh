# shellcheck shell=bash
# Sourced by run-guest.sh (VIA=libvirt) and gdbscripts/attach.sh (DOMAIN=NAME):
# the libvirt side of the debug guest, through virsh.
#
# A gdbstub in a running domain is opened through the domain's monitor
# (HMP gdbserver) on a unix socket in the domain's own directory, which
# libvirt made for that QEMU alone (mode 0750, the domain's user): no TCP
# port, and nobody but root and that user reaches it.

lv_uri() { # the libvirt URI: $LIBVIRT_URI, else the default for this user
	if [ -n "${LIBVIRT_URI:-}" ]; then echo "$LIBVIRT_URI"
	elif [ "$(id -u)" = 0 ]; then echo qemu:///system
	else echo qemu:///session; fi
}

lv_hmp() { # lv_hmp URI NAME COMMAND: one HMP command, its reply
	virsh -q -c "$1" qemu-monitor-command "$2" --hmp "$3"
}

# lv_stub URI NAME: the path of the domain's gdbstub, opened if it has none.
# Prints "PATH opened" (ours: close it after) or "PATH existing"; on error
# the reason, and returns 1.
lv_stub() {
	local uri=$1 name=$2 chardevs gdb dir reply
	chardevs=$(lv_hmp "$uri" "$name" 'info chardev' 2>&1) || { echo "domain $name: $chardevs"; return 1; }
	gdb=$(sed -n 's/^gdb: filename=//p' <<<"$chardevs" | tr -d '\r')
	if [ -n "$gdb" ]; then
		case "$gdb" in
		disconnected:unix:*) gdb=${gdb#disconnected:unix:}; echo "${gdb%%,*} existing"; return 0 ;;
		disconnected:*) echo "domain $name has a gdbstub that is not a unix socket ($gdb)"; return 1 ;;
		*) echo "domain $name's gdbstub ($gdb) is held by another debugger: detach it first"; return 1 ;;
		esac
	fi
	dir=$(sed -n 's|^charmonitor: filename=unix:\(.*\)/[^/]*,server=on.*|\1|p' <<<"$chardevs")
	[ -n "$dir" ] || { echo "domain $name: cannot tell its directory from its monitor"; return 1; }
	reply=$(lv_hmp "$uri" "$name" "gdbserver unix:$dir/kstep-gdb.sock,server=on,wait=off" 2>&1)
	grep -q 'Waiting for gdb connection' <<<"$reply" ||
		{ echo "domain $name's QEMU cannot open a gdbstub in $dir: $(tr -d '\r' <<<"$reply" | head -1)"; return 1; }
	echo "$dir/kstep-gdb.sock opened"
}

lv_close_stub() { # lv_close_stub URI NAME
	lv_hmp "$1" "$2" 'gdbserver none' >/dev/null 2>&1
}

xml_escape() {
	local s=${1//&/&amp;}
	s=${s//</&lt;}
	s=${s//>/&gt;}
	s=${s//\'/&apos;}
	printf '%s' "${s//\"/&quot;}"
}
