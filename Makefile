# kstep: one entry point. `make help` lists the targets.
#
#   make run-guest [WORKLOAD=..] [HALT=1] [ACCEL=auto|kvm|tcg] [SMP=N] [MEM=MiB]
#                  [NIC=e1000|virtio] [GDB_SOCK=path | GDB_PORT=N] [COUNT=N] [PIN=auto|off]
#                  [WORKLOAD_CPU=N] [KASLR=1] [KGDB=1] [VIA=libvirt [DOMAIN=NAME] [KEEP=1]]
#   make attach    [KGDB=1 | DOMAIN=NAME] (LIBVIRT_URI=... for a domain elsewhere)
#   make test      install what is missing, build everything, run every test
#   make V=1 ...   show full commands

IMAGES   ?= $(CURDIR)/images
# make install: where (Debian's layout below PREFIX); DESTDIR stages it.
PREFIX   ?= /usr/local
DESTDIR  ?=
inst_bin  := $(DESTDIR)$(PREFIX)/bin
inst_data := $(DESTDIR)$(PREFIX)/share/kstep
inst_lib  := $(DESTDIR)$(PREFIX)/lib/kstep
inst_man  := $(DESTDIR)$(PREFIX)/share/man
inst_comp := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
GUEST_FILES := $(wildcard guest/*.sh) guest/init guest/rxload.c guest/kernel.fragment
MAN1 := $(wildcard doc/man/*.1)
MAN7 := $(wildcard doc/man/*.7)
BUILD    ?= $(CURDIR)/build
KSTEP    := $(BUILD)/kstep
export QEMU IMAGES KERNEL_SRC WORKLOAD HALT ACCEL SMP MEM NIC PIN GDB_PORT GDB_SOCK COUNT KSTEP_RUNDIR WORKLOAD_CPU PANIC KASLR KGDB RR RR_LOG \
	VIA DOMAIN KEEP LIBVIRT_URI

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Debian packages that the targets below need (kernel build, guest, host, tests).
DEB_PACKAGES := qemu-system-x86 busybox-static linux-source-6.1 gdb build-essential linux-perf \
	flex bison bc libssl-dev libelf-dev libdw-dev cpio xz-utils file pkg-config \
	babeltrace2 libcapstone-dev libjson-c-dev libcmocka-dev libxml2-dev python3 iproute2 binutils \
	clang libclang-rt-14-dev libglib2.0-dev util-linux passwd chromium libxml2-utils \
	crash python3-drgn mandoc man-db \
	libpcap-dev tshark protobuf-c-compiler libprotobuf-c-dev protobuf-compiler libvirt-dev libvirt-daemon libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients openssh-server

.PHONY: all help deps images kernel initramfs distro qemu host run-guest attach trace test \
	bench fuzz clean distclean install uninstall
all: images host

help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## deps        install missing Debian packages (apt-get, as root)
deps:
	$(Q)missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "deps: missing packages; as root run: apt-get install" $$missing >&2; exit 1; \
		fi; \
		echo "deps: installing" $$missing; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing; } >$(IMAGES)/.apt.log 2>&1 || \
			{ cat $(IMAGES)/.apt.log >&2; echo "deps: apt-get install failed" >&2; exit 1; }; \
	fi

## images      debug kernel (bzImage, vmlinux, gdb scripts) + busybox initramfs
images: kernel initramfs
kernel: deps
	$(Q)guest/build-kernel.sh
initramfs: $(IMAGES)/initramfs.cpio.gz
$(IMAGES)/initramfs.cpio.gz: guest/init $(wildcard guest/workloads/*) guest/rxload.c \
		guest/build-initramfs.sh | deps
	$(Q)guest/build-initramfs.sh

## distro      Debian's cloud kernel (KASLR, ORC, NIC as modules) with its debug vmlinux,
##             booted with the project's initramfs: images/distro (installs ~300 MB once)
distro: images
	$(Q)guest/build-distro.sh

## qemu        QEMU 10 from Debian's backports in images/qemu (its own apt list; the
##             system's apt sources and QEMU untouched): then QEMU=images/qemu/bin/qemu-system-x86_64
qemu: deps
	$(Q)guest/build-qemu.sh

## host        build the kstep driver (build/kstep)
host: deps
	$(Q)$(MAKE) -s -C host BUILD=$(BUILD)

## run-guest   boot the guest on the serial console, gdbstub on a private unix socket
run-guest: images
	$(Q)guest/run-guest.sh

## attach      gdb on images/vmlinux with the kernel's lx-* helpers, attached to run-guest
attach: deps
	$(Q)gdbscripts/attach.sh

## trace       kstep trace --workload ${WORKLOAD:-rx-icmp} [--size COUNT] -o trace.out
trace: images host
	$(Q)$(KSTEP) trace --workload $(or $(WORKLOAD),rx-icmp) $(if $(COUNT),--size $(COUNT)) -o $(or $(OUT),trace.out)

## test        everything: unit tests, guest boot tests, kstep integration tests
test: images host distro qemu
	$(Q)tests/run-all

## fuzz        run each fuzz target for FUZZ_SECONDS (default 60; make test runs them for 5)
fuzz: deps
	$(Q)$(MAKE) -s -C tests/fuzz BUILD=$(BUILD) run

## bench       kstep vs gdb vs raw RSP, and kstep oops vs decode_stacktrace.sh
bench: images host distro qemu
	$(Q)$(MAKE) -s -C bench BUILD=$(BUILD)
	$(Q)bench/run

## install     kstep, its guest scripts, gdb scripts, man pages and bash completion
##             under PREFIX (default /usr/local), staged in DESTDIR; then as any
##             user: kstep build-images (or --images DIR), kstep trace
install: host
	$(Q)install -d $(inst_bin) $(inst_data)/guest/workloads $(inst_data)/gdbscripts \
		$(inst_man)/man1 $(inst_man)/man7 $(inst_comp)
	$(Q)install -m 755 $(KSTEP) $(inst_bin)/kstep
	$(Q)install -d $(inst_lib)
	$(Q)install -m 644 $(BUILD)/kstep-plugin.so $(inst_lib)/kstep-plugin.so
	$(Q)install -m 644 $(GUEST_FILES) $(inst_data)/guest/
	$(Q)chmod 755 $(inst_data)/guest/*.sh $(inst_data)/guest/init
	$(Q)install -m 755 guest/workloads/* $(inst_data)/guest/workloads/
	$(Q)install -m 644 gdbscripts/* $(inst_data)/gdbscripts/
	$(Q)chmod 755 $(inst_data)/gdbscripts/*.sh
	$(Q)install -m 644 $(MAN1) $(inst_man)/man1/
	$(Q)install -m 644 $(MAN7) $(inst_man)/man7/
	$(Q)install -m 644 doc/kstep.bash-completion $(inst_comp)/kstep
	@echo "installed kstep in $(inst_bin); build its guest images with: kstep build-images"

## uninstall   remove what make install put there (same PREFIX and DESTDIR)
uninstall:
	$(Q)rm -f $(inst_bin)/kstep $(inst_comp)/kstep \
		$(addprefix $(inst_man)/man1/,$(notdir $(MAN1))) $(addprefix $(inst_man)/man7/,$(notdir $(MAN7)))
	$(Q)rm -rf $(inst_data) $(inst_lib)

clean:
	rm -rf $(BUILD)
distclean: clean
	rm -rf $(IMAGES)/*
