/* SPDX-License-Identifier: MIT */
/*
 * libvirt: a domain libvirt runs, local or over ssh, as kstep's guest. Its
 * gdbstub is opened for the session through the domain's monitor (or the
 * one it has is used), pause and resume and the memory dump go through
 * libvirt (which owns the domain's QMP socket), and at the end the domain
 * is handed back as it was found: running or paused, with no gdbserver of
 * kstep's left in it.
 */
#ifndef KSTEP_LIBVIRT_H
#define KSTEP_LIBVIRT_H

#include <stdbool.h>
#include <stddef.h>

struct lv_domain;

/* The URI kstep uses when none is given: qemu:///system as root,
 * qemu:///session otherwise. */
const char *lv_default_uri(void);

/*
 * Connect to @uri (NULL: the default) and find the running or paused
 * x86-64 domain @name. 0, or -errno with a one-line reason in @err:
 * -ECONNREFUSED no libvirt there, -ENOENT no such domain, -ESRCH not
 * running, -EPROTOTYPE not x86-64.
 */
int lv_open(struct lv_domain **out, const char *uri, const char *name, char *err, size_t errlen);

/*
 * Start the guest of @xml as a transient domain at @uri (local only),
 * paused at reset; destroyed when kstep lets go of it unless @keep.
 */
int lv_create(struct lv_domain **out, const char *uri, const char *xml, bool keep, char *err, size_t errlen);

/*
 * The endpoint to connect to (for rsp_connect) in @ep: the domain's own
 * idle gdbstub, or one opened for the session at @stub_path (NULL: in the
 * domain's own directory, where its QEMU may create a socket). Over ssh
 * the socket is forwarded to one in kstep's private run directory.
 * -EBUSY when another debugger holds the domain's stub.
 */
int lv_open_stub(struct lv_domain *d, const char *stub_path, char *ep, size_t eplen, char *err, size_t errlen);

/* libvirt marked the domain tainted by this session's monitor commands
 * (it was not before). */
bool lv_tainted_by_us(const struct lv_domain *d);
/* kstep made the domain and destroys it at lv_close (not --keep-guest). */
bool lv_ends_with_kstep(const struct lv_domain *d);
/* The stub was opened as TCP (someone else's, on a port): worth a warning. */
bool lv_stub_is_tcp(const struct lv_domain *d);

/* libvirt has QEMU write the domain's memory into @fd as an ELF vmcore
 * (memory only, with VMCOREINFO; without QEMU's paging, which drgn 0.0.22
 * needs: crash opens it). Local domains only (-EREMOTE). */
int lv_dump(struct lv_domain *d, int fd, char *err, size_t errlen);

/* What became of the domain after its stub closed, said in @out ("shut
 * off (its kernel crashed)", "is still there: ..."). */
enum lv_ending { LV_END_SHUT_OFF, LV_END_CRASHED, LV_END_ALIVE };
enum lv_ending lv_ending(struct lv_domain *d, char *out, size_t len);

/* After the session's connection to the stub broke with the domain still
 * there: a new connection's detach takes out the breakpoints QEMU still
 * holds (they would stop the guest at the next hit) and lets it run. */
int lv_release_guest(struct lv_domain *d, char *err, size_t errlen);

/*
 * Hand the domain back: the session's gdbserver stopped, the domain
 * running or paused as it was found (@frozen: left paused, a dying kernel
 * kept for a look). 0, or -errno with what could not be undone in @err.
 * Frees @d either way.
 */
int lv_close(struct lv_domain *d, bool frozen, char *err, size_t errlen);

const char *lv_uri(const struct lv_domain *d);
const char *lv_name(const struct lv_domain *d);

#endif
