// SPDX-License-Identifier: MIT
/*
 * kstep dump -o FILE, a vmcore of a guest kstep started or
 * attached to: the one `make run-guest` or a frozen oops catch left
 * (found through the run directory's guest.env), the one beside a given
 * gdbstub socket, the one behind a given QMP socket, or a libvirt domain
 * (through libvirt, which owns its QMP socket).
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "files.h"
#include "libvirt.h"
#include "vmcore.h"

#include "cmd.h"

static void usage(FILE *f)
{
	fprintf(f, "Usage: kstep dump -o FILE [--attach unix:PATH | --qmp PATH | --domain NAME]\n"
		   "Write the guest's memory as an ELF vmcore (with the kernel's VMCOREINFO) that\n"
		   "crash and drgn open. A running guest is stopped for the dump and runs on after;\n"
		   "a stopped one (a frozen oops) stays stopped.\n\n"
		   "  -o, --output FILE      the vmcore to write (a new file, mode 0600)\n"
		   "  -A, --attach unix:PATH the guest whose gdbstub is PATH (its QMP socket, qmp.sock,\n"
		   "                         is beside it, as make run-guest leaves it)\n"
		   "      --qmp PATH         the guest behind this QMP socket\n"
		   "      --domain NAME      the libvirt domain NAME (--libvirt URI: where; default\n"
		   "                         qemu:///system as root, else qemu:///session)\n"
		   "  -h, --help             this help\n"
		   "Without either: the guest make run-guest (or a frozen kstep trace) left, from\n"
		   "the run directory's guest.env. Exit: 0 written, 1 not (the reason on stderr),\n"
		   "2 bad usage.\n");
}

/* QMP_SOCK= of the run directory's guest.env, trusted only as run-guest.sh
 * and attach.sh trust it: the directory private and ours, the file ours and
 * not a link, the socket it names ours. Otherwise someone else could name
 * a QMP socket of theirs and be handed the descriptor of the new vmcore.
 * -ENOENT: no guest.env; other errors with the reason in @err. */
static int qmp_from_rundir(char *out, size_t len, char *err, size_t errlen)
{
	char dir[PATH_MAX], line[PATH_MAX];
	struct stat st;
	FILE *f = NULL;
	int ret, dfd, fd;

	files_rundir(dir, sizeof(dir));
	if ((ret = files_private_dir(dir, err, errlen)))
		return ret;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -errno;
	fd = openat(dfd, "guest.env", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ret = fd < 0 ? -errno : 0;
	close(dfd);
	if (ret)
		return ret;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || !(f = fdopen(fd, "r"))) {
		close(fd);
		snprintf(err, errlen, "%s/guest.env is not a file of yours: refusing it", dir);
		return -EPERM;
	}
	ret = -ENOENT;
	while (ret && fgets(line, sizeof(line), f))
		if (!strncmp(line, "QMP_SOCK=", 9)) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, len, "%s", line + 9);
			ret = 0;
		}
	fclose(f);
	if (!ret && (lstat(out, &st) || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid())) {
		snprintf(err, errlen, "%s/guest.env names %s, which is not a QMP socket of yours: refusing it", dir, out);
		ret = -EPERM;
	}
	return ret;
}

/* Which QMP socket: 0, or 2 (usage) / 1 with the reason said. */
static int find_qmp(const char *attach, const char *qmp, char *out, size_t len)
{
	char err[3 * PATH_MAX];
	int ret;

	if (qmp) {
		snprintf(out, len, "%s", qmp);
		return 0;
	}
	if (attach) {
		if (strncmp(attach, "unix:", 5)) {
			say_error("--attach %s: only a unix:PATH gdbstub has a QMP socket beside it; "
					"pass --qmp PATH", attach);
			return EXIT_USAGE;
		}
		if (vmcore_qmp_beside(attach + 5, out, len)) {
			say_error("no QMP socket of yours beside %s (%s); pass --qmp PATH",
				attach + 5, out);
			return EXIT_FAILED;
		}
		return 0;
	}
	ret = qmp_from_rundir(out, len, err, sizeof(err));
	if (ret == -ENOENT) {
		say_error("no guest found (no guest.env in the run directory: start one with "
				"make run-guest, or pass --attach/--qmp)");
		return EXIT_FAILED;
	}
	if (ret) {
		say_error("%s", err);
		return EXIT_FAILED;
	}
	return 0;
}

static int dump_domain(void *ctx, int fd, char *err, size_t errlen)
{
	return lv_dump(ctx, fd, err, errlen);
}

/* A libvirt domain's memory, the file passed to its QEMU through libvirt. */
static int dump_libvirt(const char *uri, const char *name, const char *out, char *err, size_t errlen)
{
	struct lv_domain *d;
	int ret = lv_open(&d, uri, name, err, errlen);

	if (ret)
		return ret;
	say_info("dumping the memory of domain '%s' (%s) to %s", name, lv_uri(d), out);
	ret = vmcore_write_by(dump_domain, d, AT_FDCWD, out, err, errlen);
	if (lv_tainted_by_us(d))
		say_info("libvirt now marks domain '%s' tainted (custom monitor): the dump went through "
				"the domain's monitor", name);
	if (ret)
		lv_close(d, false, NULL, 0);
	else
		ret = lv_close(d, false, err, errlen);
	return ret;
}

int cmd_dump(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' }, { "attach", required_argument, NULL, 'A' },
		{ "qmp", required_argument, NULL, 'Q' },    { "help", no_argument, NULL, 'h' },
		{ "domain", required_argument, NULL, 'D' }, { "libvirt", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL, *attach = NULL, *qmp = NULL, *domain = NULL, *uri = NULL;
	char sock[PATH_MAX], err[1024];
	int c, ret;

	while ((c = getopt_long(argc, argv, "o:A:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'A':
			attach = optarg;
			break;
		case 'Q':
			qmp = optarg;
			break;
		case 'D':
			domain = optarg;
			break;
		case 'L':
			uri = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			say_error("bad usage (see 'kstep dump --help')");
			return EXIT_USAGE;
		}
	}
	if (!out || optind < argc || !!attach + !!qmp + !!domain > 1 || (uri && !domain)) {
		say_error("%s (try kstep dump --help)",
			!out			  ? "-o FILE is required"
			: uri && !domain	  ? "--libvirt URI needs --domain NAME"
			: optind < argc		  ? "unexpected argument"
						  : "one of --attach, --qmp and --domain");
		return EXIT_USAGE;
	}
	if (domain) {
		ret = dump_libvirt(uri, domain, out, err, sizeof(err));
	} else {
		if ((ret = find_qmp(attach, qmp, sock, sizeof(sock))))
			return ret;
		say_info("dumping the guest's memory to %s", out);
		ret = vmcore_write(sock, AT_FDCWD, out, err, sizeof(err));
	}
	if (ret) {
		say_error("no vmcore written: %s", err);
		return EXIT_FAILED;
	}
	if (domain)
		printf("vmcore: %s (open it with: crash --kaslr auto VMLINUX %s; libvirt's dump has no page "
		       "tables for drgn 0.0.22)\n", out, out);
	else
		printf("vmcore: %s (open it with: crash --kaslr auto VMLINUX %s, or drgn -c %s -s VMLINUX)\n", out, out,
		       out);
	return 0;
}
