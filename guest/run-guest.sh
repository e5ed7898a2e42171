#!/bin/bash
# Boot the kstep guest under QEMU with its gdbstub on a private endpoint.
#
# Settings come from the environment (the Makefile passes its variables):
#   WORKLOAD=shell|rx-icmp|rx-udp|rx-udp-flood|rx-tcp|tx-tcp|rx-drop|rx-drops|oops
#   COUNT=N (workload size)
#   HALT=1 (start halted, -S)   ACCEL=auto|kvm|tcg   SMP=N   MEM=MiB
#   WORKLOAD_CPU=N (run the workload on the guest's CPU N)
#   PANIC=exit|pause (what a kernel panic does to QEMU; default pause with HALT=1)
#   KASLR=1 (let the kernel randomize its base; default nokaslr)
#   NIC=e1000|virtio
#   ICOUNT=1 (TCG: the guest's clock counts instructions, 2^ICOUNT_SHIFT ns each
#   (default 3: 8 ns), and stands still while the VM is stopped: kstep reads it
#   at every stop as guest time)
#   GDB_SOCK=/path (default: gdb.sock in the run directory) or GDB_PORT=N
#   (TCP on 127.0.0.1, reachable by every local user: only when asked for)
#   PIN=auto|off (auto: QEMU on the last SMP of our CPUs when there are more)
#   KSTEP_RUNDIR=dir (private, 0700; holds the sockets and guest.env for `make attach`)
#   KGDB=1: a second serial port (ttyS1) on kgdb.sock in the run directory, and
#   kgdboc=ttyS1,115200 kgdbwait: the kernel waits early in its boot for a
#   debugger on that line (make attach KGDB=1, kstep --attach serial:PATH)
#   RR=record|replay RR_LOG=PATH: QEMU's deterministic record/replay (TCG, one
#   vCPU; implies ICOUNT=1): record writes every non-deterministic input
#   (interrupts, clocks, the network through filter-replay, the console) to
#   PATH; replay runs the same guest from it, instruction for instruction
#   (kstep record and --replay use this; the other settings must match)
#   APIC_TIMER=0|1: the guest's local APIC timer (default 0 under ICOUNT=1
#   or RR, whose boot it slows, else 1; a recording made with it replays
#   with it)
#   PRINT_ARGS=1: print QEMU's command line NUL-separated and exit (kstep uses
#   this so the command line is defined once): the console on stdio, then
#   with KGDB=1 the kgdb line; kstep adds its own QMP sockets.
#   VIA=libvirt: the same guest as a transient libvirt domain (DOMAIN=NAME,
#   default kstep-USER, at LIBVIRT_URI, default qemu:///system as root, else
#   qemu:///session), destroyed when this script ends (KEEP=1 leaves it);
#   HALT=1 starts it paused with a gdbstub in the domain's own directory.
#   PRINT_XML=1 prints the domain's XML and exits; LIBVIRT_CONSOLE_LOG=PATH is where
#   its console goes (default RUNDIR/NAME.console.log; libvirt's virtlogd writes it).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
images=${IMAGES:-$top/images}
workload=${WORKLOAD:-shell}
accel=${ACCEL:-auto}
smp=${SMP:-1}
mem=${MEM:-256}
nic=${NIC:-e1000}
halt=${HALT:-0}
pin=${PIN:-auto}
gdb_port=${GDB_PORT:-}
gdb_sock=${GDB_SOCK:-}
. "$here/rundir.sh"
. "$here/libvirt.sh"
via=${VIA:-qemu}
rundir=$(kstep_rundir)
qemu=${QEMU:-qemu-system-x86_64}

die() { echo "run-guest: $*" >&2; exit 2; }
say() { echo "run-guest: $*" >&2; }
# A value inside one of QEMU's KEY=VALUE,... option strings: QEMU splits
# them at commas and reads ",," as one, so a path with a comma in it
# (a directory named "x,rr=record,rrfile=...") could add options of its own.
qval() { printf '%s' "${1//,/,,}"; }

# --- check every setting before anything starts
[ -x "$here/workloads/$workload" ] ||
	die "unknown WORKLOAD '$workload' (choose one of: $(ls "$here/workloads" | tr '\n' ' '))"
case "$accel" in auto|kvm|tcg) ;; *) die "ACCEL must be auto, kvm or tcg, not '$accel'" ;; esac
# e1000: no emulated autonegotiation (the link would come up 2 s late) and no
# interrupt mitigation (each received packet raises its interrupt at once),
# where the QEMU in use has these properties: QEMU 10's e1000 has neither.
case "$nic" in
e1000)
	nic_dev=e1000
	props=$("$qemu" -device e1000,help 2>/dev/null) || props=
	for prop in autonegotiation mitigation; do
		grep -q "^ *$prop=" <<<"$props" && nic_dev+=",$prop=off"
	done ;;
virtio) nic_dev=virtio-net-pci ;;
*) die "NIC must be e1000 or virtio, not '$nic'" ;; esac
[[ "$smp" =~ ^[1-9][0-9]*$ ]] || die "SMP must be a positive number, not '$smp'"
case "$pin" in auto|off) ;; *) die "PIN must be auto or off, not '$pin'" ;; esac
[[ "$mem" =~ ^[1-9][0-9]*$ ]] || die "MEM must be a size in MiB, not '$mem'"
[ -n "${COUNT:-}" ] && { [[ "$COUNT" =~ ^[1-9][0-9]*$ ]] || die "COUNT must be a positive number, not '$COUNT'"; }
for f in bzImage initramfs.cpio.gz; do
	[ -f "$images/$f" ] || die "missing $images/$f: run 'make images' first"
done
command -v "$qemu" >/dev/null || die "$qemu not found: run 'make deps'"
case "$via" in qemu) ;; libvirt)
	command -v virsh >/dev/null || die "VIA=libvirt needs virsh: run 'make deps'"
	[ -z "$gdb_port$gdb_sock" ] || die "VIA=libvirt: the gdbstub is in the domain's own directory (no GDB_PORT/GDB_SOCK)"
	[ "${KGDB:-0}" = 1 ] && die "VIA=libvirt does not take KGDB=1"
	# Their TCP peer is a process QEMU starts (guestfwd cmd:), which the
	# seccomp sandbox libvirt puts QEMU in kills it for.
	case "$workload" in rx-tcp|tx-tcp) die "WORKLOAD=$workload needs QEMU to start its TCP peer," \
		"which libvirt's QEMU sandbox (seccomp_sandbox in qemu.conf) forbids: use it without VIA=libvirt" ;; esac ;;
*) die "VIA must be qemu or libvirt, not '$via'" ;; esac

why=$(private_rundir "$rundir") || die "$why"
# A socket someone still listens on belongs to another guest; one left by a
# guest that died is stale (QEMU would replace it anyway).
listening() { ss -xlH 2>/dev/null | awk '{ print $5 }' | grep -qxF "$1"; }
if [ -n "$gdb_port" ]; then
	[[ "$gdb_port" =~ ^[0-9]+$ ]] && [ "$gdb_port" -ge 1 ] && [ "$gdb_port" -le 65535 ] ||
		die "GDB_PORT must be a TCP port number, not '$gdb_port'"
	if ss -Hltn "sport = :$gdb_port" 2>/dev/null | grep -q .; then
		die "GDB_PORT=$gdb_port is already in use (another guest?); pick another with GDB_PORT=N"
	fi
	gdb_dev="tcp:127.0.0.1:$gdb_port"
	gdb_target="127.0.0.1:$gdb_port"
	say "WARNING: GDB_PORT=$gdb_port puts the gdbstub on TCP 127.0.0.1:$gdb_port, where every local" \
		"user can connect: whoever does controls the guest and, through 'monitor', runs commands" \
		"as $(id -un) on this host. Leave GDB_PORT unset for a private unix socket."
else
	gdb_sock=${gdb_sock:-$rundir/gdb.sock}
	[ "$(dirname "$gdb_sock")" = "$rundir" ] || { why=$(private_rundir "$(dirname "$gdb_sock")") ||
		die "GDB_SOCK: $why"; }
	if [ -e "$gdb_sock" ] || [ -L "$gdb_sock" ]; then
		{ [ -S "$gdb_sock" ] && ! [ -L "$gdb_sock" ] && ! listening "$gdb_sock"; } ||
			die "$gdb_sock is in use by another guest (or is not a socket); stop it or set GDB_SOCK"
		rm -f "$gdb_sock"
	fi
	gdb_dev="unix:$(qval "$gdb_sock"),server=on,wait=off"
	gdb_target="$gdb_sock"
fi
qmp_sock=$rundir/qmp.sock
if [ -S "$qmp_sock" ] && listening "$qmp_sock"; then
	die "$qmp_sock is in use by another guest; stop it or set KSTEP_RUNDIR"
fi
rm -f "$qmp_sock"
kgdb_serial=()
if [ "${KGDB:-0}" = 1 ]; then
	grep -qx 'CONFIG_KGDB_SERIAL_CONSOLE=y' "$images/kernel.config" 2>/dev/null ||
		die "KGDB=1 needs a kernel built with CONFIG_KGDB_SERIAL_CONSOLE (make images builds one)"
	kgdb_sock=$rundir/kgdb.sock
	if [ -S "$kgdb_sock" ] && listening "$kgdb_sock"; then
		die "$kgdb_sock is in use by another guest; stop it or set KSTEP_RUNDIR"
	fi
	rm -f "$kgdb_sock"
	kgdb_serial=(-chardev "socket,id=kgdb,path=$(qval "$kgdb_sock"),server=on,wait=off" -serial chardev:kgdb)
fi

# --- accelerator: KVM only when a guest really boots under it
kvm_boots() { # cached per kernel image and QEMU version
	local key cache=$images/accel.probe out
	# The same key is computed by kstep (host/qemu.c): keep them in step.
	key="$(stat -c %s-%Y "$images/bzImage") $($qemu --version | head -1)"
	if [ -f "$cache" ] && [ "$(head -1 "$cache")" = "$key" ]; then
		[ "$(sed -n 2p "$cache")" = kvm ]
		return
	fi
	say "probing KVM: does the guest reach start_kernel within 8 s?"
	out=$(timeout 8 "$qemu" -accel kvm -cpu host -m 128 -display none -no-reboot \
		-kernel "$images/bzImage" -append "console=ttyS0 earlyprintk=serial,ttyS0 kstep.workload=none" \
		-serial stdio -monitor none </dev/null 2>&1 | head -c 65536)
	if grep -q "Linux version" <<<"$out"; then
		printf '%s\nkvm\n' "$key" | write_private "$cache"; return 0
	fi
	printf '%s\ntcg\n' "$key" | write_private "$cache"; return 1
}
case "$accel" in
tcg) accel_opts=(-accel tcg) ;;
kvm) [ -w /dev/kvm ] || die "ACCEL=kvm but /dev/kvm is missing or not writable"
     accel_opts=(-accel kvm -cpu host) ;;
auto)
	if [ ! -w /dev/kvm ]; then
		say "ACCEL=auto: no usable /dev/kvm, using TCG (software emulation)"
		accel_opts=(-accel tcg)
	elif kvm_boots; then
		accel_opts=(-accel kvm -cpu host)
	else
		say "ACCEL=auto: /dev/kvm is present but the guest never reached start_kernel under it; using TCG (force with ACCEL=kvm)"
		accel_opts=(-accel tcg)
	fi ;;
esac

# --- CPU placement. A debugger that single-steps hands the guest back and
# forth with QEMU thousands of times a second: QEMU's main loop (the gdbstub)
# and its vCPU thread pass it on faster on one shared CPU than across two, and
# the debugger keeps the CPUs left over. On the 2-core TCG host here a bare
# step loop and kstep's recorded steps both ran ~20% faster (make bench).
allowed_cpus() { # the CPUs we may run on, one a line
	local list part
	list=$(taskset -pc $$ 2>/dev/null) || return 0
	IFS=, read -ra parts <<<"${list##*: }"
	for part in "${parts[@]}"; do
		if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
	done
}
cmd=("$qemu")
qemu_cpus=
if [ "$pin" = auto ] && command -v taskset >/dev/null; then
	mapfile -t cpus <<<"$(allowed_cpus)" # not <(...): that needs /dev/fd, gone without /proc
	if [ "${#cpus[@]}" -gt "$smp" ]; then
		qemu_cpus=$(IFS=,; echo "${cpus[*]: -$smp}")
		cmd=(taskset -c "$qemu_cpus" "$qemu")
	fi
fi

[ -n "${WORKLOAD_CPU:-}" ] && { [[ "$WORKLOAD_CPU" =~ ^[0-9]+$ ]] && [ "$WORKLOAD_CPU" -lt "$smp" ] ||
	die "WORKLOAD_CPU must be a CPU of the guest (0 to $((smp - 1))), not '$WORKLOAD_CPU'"; }
# The kernel has KASLR built in; KASLR=1 lets it move the kernel.
kaslr=$([ "${KASLR:-0}" = 1 ] || echo " nokaslr")
append="console=ttyS0$kaslr kstep.workload=$workload${COUNT:+ kstep.count=$COUNT}${WORKLOAD_CPU:+ kstep.cpu=$WORKLOAD_CPU}"
# The project's kernel has no ACPI to find fw_cfg by: its address (QEMU's
# x86 default), so that the kernel tells the vmcoreinfo device where its
# VMCOREINFO is and a memory dump carries it (kstep dump).
grep -qx 'CONFIG_FW_CFG_SYSFS_CMDLINE=y' "$images/kernel.config" 2>/dev/null &&
	append+=" qemu_fw_cfg.ioport=12@0x510:0:1:4"
# kgdb on the second serial port, waiting for its debugger before init runs;
# kernel text left writable (rodata=off): with STRICT_KERNEL_RWX, kgdb cannot
# take out a software breakpoint it put in before the text became read-only,
# and the CPU traps on it for ever (Documentation/dev-tools/kgdb.rst). At
# reboot, kgdb keeps its debugger (debug_core.kgdbreboot=-1): by default it
# says "exited" (W) and stops listening with the breakpoints still in, and
# a probe hit in the shutdown that follows (a packet still coming in) then
# waits for a debugger that has gone, and QEMU never ends.
[ ${#kgdb_serial[@]} -gt 0 ] && append+=" kgdboc=ttyS1,115200 kgdbwait rodata=off debug_core.kgdbreboot=-1"
# Under -icount (ICOUNT=1, RR), no local APIC timer (APIC_TIMER=0): its
# calibration spins on cpu_relax() for 2 x 100 ms of guest time, and TCG leaves
# its loop at every pause; recorded, each of those 3 million exits is a
# checkpoint that a replay hands between the vCPU and the main loop (50 of
# an rx-tcp replay's 53 s). The one CPU takes its ticks from the HPET.
apic_timer=${APIC_TIMER:-$({ [ -n "${RR:-}" ] || [ "${ICOUNT:-0}" = 1 ]; } && echo 0 || echo 1)}
[[ "$apic_timer" =~ ^[01]$ ]] || die "APIC_TIMER must be 0 or 1, not '$apic_timer'"
[ "$apic_timer" = 0 ] && append+=" noapictimer"
# A panic ends QEMU with status 1, or (HALT=1: a debugger is attached)
# pauses it so the dying kernel can be read; PANIC=exit|pause overrides.
panic=${PANIC:-$([ "$halt" = 1 ] && echo pause || echo exit)}
case "$panic" in exit) panic_action=exit-failure ;; pause) panic_action=pause ;;
	*) die "PANIC must be exit or pause, not '$panic'" ;; esac
# One socket per vCPU: the kernel (no ACPI) finds its CPUs in SeaBIOS's MP
# table, which has one entry per package; -smp 2 alone is one package of two
# cores, and the guest would boot with one CPU.
args=("${accel_opts[@]}" -smp "$smp,sockets=$smp,cores=1,threads=1" -m "$mem" -display none -vga none -no-reboot
	-kernel "$images/bzImage" -initrd "$images/initramfs.cpio.gz" -append "$append"
	# restrict=on: the guest reaches only slirp's own services (gateway ping,
	# TFTP) and the guestfwd below, never the host's loopback services.
	# 10.0.2.100:5000 sends 1 MiB (rx-tcp); 10.0.2.101:5001 counts what it
	# receives and answers with the count (tx-tcp).
	-netdev "user,id=n0,restrict=on,tftp=$(qval "$images/tftp"),guestfwd=tcp:10.0.2.100:5000-cmd:dd if=/dev/zero bs=65536 count=16 status=none,guestfwd=tcp:10.0.2.101:5001-cmd:wc -c"
	-device "$nic_dev,netdev=n0"
	-device isa-debug-exit,iobase=0xf4,iosize=0x04
	-device pvpanic-pci -action "panic=$panic_action"
	-device vmcoreinfo
	-gdb "$gdb_dev" -qmp "unix:$(qval "$qmp_sock"),server=on,wait=off")
[ "$halt" = 1 ] && args+=(-S)
# sleep=on: an idle guest's clock follows real time. With sleep=off it jumps
# to the next timer whenever the vCPU does not run, a debugger's stops too:
# a timer interrupt after every stop, and a boot that hangs in check_timer.
rr=${RR:-}
case "$rr" in
'') ;;
record|replay)
	[ -n "${RR_LOG:-}" ] || die "RR=$rr needs RR_LOG=PATH (the replay log)"
	[ "${accel_opts[1]}" = tcg ] || die "RR=$rr needs TCG: record/replay counts instructions, which KVM cannot"
	[ "$smp" = 1 ] || die "RR=$rr needs SMP=1: QEMU records and replays one vCPU only"
	[ ${#kgdb_serial[@]} -eq 0 ] || die "RR=$rr does not take KGDB=1 (kgdb writes into the guest's memory)"
	[ "$via" = qemu ] || die "RR=$rr does not take VIA=libvirt"
	[ "$rr" = record ] || [ -r "$RR_LOG" ] || die "RR=replay: cannot read the replay log $RR_LOG"
	ICOUNT=1 ;;
*) die "RR must be record or replay, not '$rr'" ;;
esac
if [ "${ICOUNT:-0}" = 1 ]; then
	[ "${accel_opts[1]}" = tcg ] || die "ICOUNT=1 needs TCG (instruction counting is TCG's), not ${accel_opts[1]}"
	[ "$smp" = 1 ] || die "ICOUNT=1 needs SMP=1 (QEMU 7.2 hangs bringing up a second vCPU under -icount)"
	icount="shift=${ICOUNT_SHIFT:-3},sleep=on"
	# The network's packets go into (or come from) the log between the
	# NIC and the user network: filter-replay. No rrsnapshot: QEMU 7.2's
	# replay from the snapshot it takes at reset hangs before the first
	# instruction (DESIGN.md), and a snapshot at instruction 0 is where a
	# fresh replay starts anyway.
	[ -n "$rr" ] && { icount+=",rr=$rr,rrfile=$(qval "$RR_LOG")"; args+=(-object filter-replay,id=replay,netdev=n0); }
	args+=(-icount "$icount")
fi

# --- the same guest as a libvirt domain
# domain_xml NAME CONSOLE_LOG: QEMU's own options for what libvirt's XML
# has no word for (the restricted user network with its guestfwd services,
# the PCI pvpanic device) go through qemu:commandline; libvirt marks such a
# domain tainted (custom-argv), which is true of it.
domain_xml() {
	local type=qemu netdev devarg a
	[ "${accel_opts[1]}" = kvm ] && type=kvm
	for a in "${args[@]}"; do case "$a" in user,id=n0,*) netdev=$a ;; *netdev=n0) devarg=$a ;; esac; done
	cat <<XML
<domain type='$type' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$(xml_escape "$1")</name>
  <memory unit='MiB'>$mem</memory>
  <vcpu>$smp</vcpu>
  <cpu><topology sockets='$smp' dies='1' cores='1' threads='1'/></cpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$(xml_escape "$images/bzImage")</kernel>
    <initrd>$(xml_escape "$images/initramfs.cpio.gz")</initrd>
    <cmdline>$(xml_escape "$append")</cmdline>
  </os>
  <features><vmcoreinfo state='on'/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='pty'><log file='$(xml_escape "$2")' append='off'/></serial>
    <memballoon model='none'/>
    <video><model type='none'/></video>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/><qemu:arg value='$(xml_escape "$netdev")'/>
    <qemu:arg value='-device'/><qemu:arg value='$(xml_escape "$devarg")'/>
    <qemu:arg value='-device'/><qemu:arg value='pvpanic-pci'/>
  </qemu:commandline>
</domain>
XML
}

# The guest's result from its console, as QEMU's exit status would tell it.
console_result() {
	local done_line
	done_line=$(grep -a 'KSTEP-WORKLOAD-DONE' "$1" | tail -1 | tr -d '\r')
	if [ -n "$done_line" ]; then
		rc=${done_line##* }
		[ "$rc" = 0 ] && return 0
		return $(((rc << 1) | 1))
	fi
	grep -aq 'Kernel panic' "$1" && return 1
	return 125
}

run_libvirt() {
	local uri name log state stub xml
	uri=$(lv_uri)
	name=${DOMAIN:-kstep-$(id -un)}
	log=${LIBVIRT_CONSOLE_LOG:-$rundir/$name.console.log}
	xml=$(domain_xml "$name" "$log")
	if [ "${PRINT_XML:-0}" = 1 ]; then printf '%s\n' "$xml"; exit 0; fi
	virsh -q -c "$uri" domstate "$name" >/dev/null 2>&1 &&
		die "domain '$name' exists already at $uri: pick another name with DOMAIN=NAME"
	printf '%s\n' "$xml" | write_private "$rundir/$name.xml" || die "cannot write $rundir/$name.xml"
	rm -f "$log"
	# virsh stays on its connection until this script ends, however it
	# ends: libvirt then destroys the domain it created (--autodestroy).
	exec {virsh_in}> >(exec virsh -q -c "$uri" >/dev/null 2>"$rundir/$name.virsh.err")
	echo "create $rundir/$name.xml $([ "$halt" = 1 ] && echo --paused) $([ "${KEEP:-0}" = 1 ] || echo --autodestroy)" >&$virsh_in
	for _ in $(seq 100); do
		state=$(virsh -q -c "$uri" domstate "$name" 2>/dev/null) && break
		[ -s "$rundir/$name.virsh.err" ] && break
		sleep 0.1
	done
	[ -n "$state" ] || die "libvirt did not start domain '$name': $(head -c 400 "$rundir/$name.virsh.err")"
	say "libvirt domain '$name' at $uri, ${accel_opts[1]}, workload $workload, $smp vCPU, $mem MiB, NIC $nic" \
		"$([ "${KEEP:-0}" = 1 ] || echo "(destroyed when this ends)")"
	if [ "$halt" = 1 ]; then
		stub=$(lv_stub "$uri" "$name") || die "$stub"
		say "HALT=1: the domain is paused; gdbstub on ${stub% *} (private: the domain's directory)"
		say "attach: make attach DOMAIN=$name   or: kstep trace --domain $name"
	fi
	say "console: $log"
	tail -n +1 -F "$log" 2>/dev/null &
	local tailer=$!
	while virsh -q -c "$uri" domstate "$name" >/dev/null 2>&1; do sleep 0.5; done
	sleep 0.3
	kill "$tailer" 2>/dev/null
	console_result "$log"
	rc=$?
	exec {virsh_in}>&-
	report_rc $rc
}

report_rc() {
	local q=""
	[ "$via" = qemu ] && q=" (QEMU exit $1)"
	case $1 in
	0) say "guest finished: success" ;;
	1) say "guest finished: kernel panic$q" ;;
	*) if [ "$via" = libvirt ] && [ "$1" = 125 ]; then
		say "the domain ended without finishing its workload (destroyed, or QEMU ended)"
	   elif [ $(($1 % 2)) = 1 ]; then say "guest finished: workload failed with rc $(($1 / 2))$q"
	   else say "QEMU exited with status $1"; fi ;;
	esac
	exit "$1"
}
[ "$via" = libvirt ] && run_libvirt

if [ "${PRINT_ARGS:-0}" = 1 ]; then
	# ttyS0 (the console) must come before the kgdb line (ttyS1).
	printf '%s\0' "${cmd[@]}" "${args[@]}" -serial stdio "${kgdb_serial[@]}"
	exit 0
fi
say "${accel_opts[1]} guest, workload $workload, $smp vCPU, $mem MiB, NIC $nic"
[ -n "$qemu_cpus" ] && say "QEMU on CPU $qemu_cpus, the other CPUs left for the debugger (PIN=off: anywhere)"
say "gdbstub on $gdb_target$([ -n "$gdb_port" ] || echo ' (private)'), QMP on $qmp_sock"
[ ${#kgdb_serial[@]} -gt 0 ] && say "kgdb on ttyS1 = $kgdb_sock; the kernel waits for it early in its boot" \
	"(make attach KGDB=1, or kstep trace --attach serial:$kgdb_sock)"
say "attach: gdb $images/vmlinux -ex 'target remote $gdb_target'   (or: make attach)"
[ "$halt" = 1 ] && say "HALT=1: the guest is stopped at reset until a debugger continues it"
[ "${DRY_RUN:-0}" = 1 ] && { printf '%q ' "${cmd[@]}" "${args[@]}"; echo; exit 0; }
printf 'GDB_TARGET=%s\nQMP_SOCK=%s\n%s' "$gdb_target" "$qmp_sock" \
	"$([ ${#kgdb_serial[@]} -gt 0 ] && printf 'KGDB_TARGET=%s\n' "$kgdb_sock")" | write_private "$rundir/guest.env" ||
	die "cannot write $rundir/guest.env"

if [ "$workload" = shell ]; then
	say "serial console follows; Ctrl-A X quits QEMU, Ctrl-A C toggles its monitor"
	"${cmd[@]}" "${args[@]}" -serial mon:stdio "${kgdb_serial[@]}"
	rc=$?
else
	# Read the console line by line to time the boot on the host clock.
	start=$(date +%s.%N)
	# QEMU ends with status 0 both when the guest reboots (success) and when
	# it is sent SIGTERM, SIGINT or SIGHUP; only its own line tells these apart.
	# The loop's status carries that signal's number.
	"${cmd[@]}" "${args[@]}" -serial stdio "${kgdb_serial[@]}" -monitor none </dev/null 2>&1 | {
		signum=0
		while IFS= read -r line; do
			printf '%s\n' "$line"
			case "$line" in
			*KSTEP-READY*)
				printf 'run-guest: KSTEP-READY %.2f s after QEMU started\n' \
					"$(echo "$(date +%s.%N) - $start" | bc)" >&2 ;;
			"qemu-system-"*": terminating on signal "[0-9]*)
				signum=${line##*terminating on signal }; signum=${signum%%[!0-9]*} ;;
			esac
		done
		exit $((signum & 63))
	}
	status=("${PIPESTATUS[@]}")
	rc=${status[0]}
	signum=${status[1]}
	if [ "$rc" = 0 ] && [ "$signum" != 0 ]; then
		rm -f "$rundir/guest.env"
		say "QEMU was ended by signal $signum before the guest finished"
		exit $((128 + signum))
	fi
fi
rm -f "$rundir/guest.env"
report_rc $rc
