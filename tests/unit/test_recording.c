// SPDX-License-Identifier: MIT
/* Unit tests of a recording's directory: what kstep record writes reads back,
 * a recording cut short or of other images is refused with the reason, and
 * the directory is private and never someone else's. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recording.h"
#include "../scratch.h"

static void put(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static void rm_rf(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* The text of @dir's recording file. */
static void get(const char *dir, char *text, size_t len)
{
	char path[600];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/recording", dir);
	assert_non_null(f = fopen(path, "r"));
	n = fread(text, 1, len - 1, f);
	fclose(f);
	text[n] = '\0';
}

static void drop_line(char *text, const char *line)
{
	char *at = strstr(text, line);

	assert_non_null(at);
	memmove(at, at + strlen(line), strlen(at + strlen(line)) + 1);
}

/* Two small images in @images and an empty recording directory
 * @rec (both mkdtemp templates), @r begun for rx-tcp. */
static void fresh(char *images, char *rec, struct recording *r)
{
	char err[512];

	assert_non_null(mkdtemp(images));
	assert_non_null(mkdtemp(rec));
	put(images, "bzImage", "kernel");
	put(images, "initramfs.cpio.gz", "initramfs");
	assert_int_equal(recording_init(r, images, err, sizeof(err)), 0);
	snprintf(r->workload, sizeof(r->workload), "rx-tcp");
}

static void test_written_recording_reads_back_and_checks(void **state)
{
	char images[SCRATCH_MAX], rec[SCRATCH_MAX], err[512], text[2048];
	struct recording r, back;

	(void)state;
	scratch(images, sizeof(images), "kstep-test-img");
	scratch(rec, sizeof(rec), "kstep-test-rec");
	fresh(images, rec, &r);
	assert_int_equal(strlen(r.id), 32);
	snprintf(r.size, sizeof(r.size), "1000");
	snprintf(r.nic, sizeof(r.nic), "e1000");
	snprintf(r.state, sizeof(r.state), "complete");
	r.kaslr = true;
	r.log_bytes = 123;
	assert_int_equal(recording_write(rec, &r, err, sizeof(err)), 0);
	assert_int_equal(recording_read(rec, &back, err, sizeof(err)), 0);
	assert_string_equal(back.id, r.id);
	assert_string_equal(back.workload, "rx-tcp");
	assert_string_equal(back.size, "1000");
	assert_true(back.kaslr);
	assert_int_equal(back.log_bytes, 123);
	assert_int_equal(recording_check(&back, rec, images, err, sizeof(err)), 0);

	/* Another initramfs (one byte more): refused, the file named. */
	put(images, "initramfs.cpio.gz", "initramfs!");
	assert_int_equal(recording_check(&back, rec, images, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "initramfs.cpio.gz is not the one recorded"));

	/* Cut short: refused whatever the images. */
	snprintf(back.state, sizeof(back.state), "interrupted");
	assert_int_equal(recording_check(&back, rec, images, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "was interrupted, not completed"));

	/* An edited setting (issue 22: workload, kaslr): refused at once, not a
	 * replay that hangs or never reaches start_kernel. */
	get(rec, text, sizeof(text));
	assert_non_null(strstr(text, "kaslr=1"));
	strstr(text, "kaslr=1")[6] = '0';
	put(rec, "recording", text);
	assert_int_equal(recording_read(rec, &back, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "was edited"));
	rm_rf(images);
	rm_rf(rec);
}

/* A recording says it was made without the guest's APIC timer
 * (apic_timer=0); an older kstep's has no such line, and reads as one made
 * with it. The line is part of the check; no other value is taken. */
static void test_apic_timer_of_new_and_older_recordings(void **state)
{
	char images[SCRATCH_MAX], rec[SCRATCH_MAX], err[512], text[2048];
	struct recording r, back;

	(void)state;
	scratch(images, sizeof(images), "kstep-test-img");
	scratch(rec, sizeof(rec), "kstep-test-rec");
	fresh(images, rec, &r);
	snprintf(r.apic_timer, sizeof(r.apic_timer), "0");
	assert_int_equal(recording_write(rec, &r, err, sizeof(err)), 0);
	assert_int_equal(recording_read(rec, &back, err, sizeof(err)), 0);
	assert_string_equal(back.apic_timer, "0");
	/* The line taken out: edited. */
	get(rec, text, sizeof(text));
	drop_line(text, "apic_timer=0\n");
	put(rec, "recording", text);
	assert_int_equal(recording_read(rec, &back, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "was edited"));
	/* As an older kstep wrote it: no line at all. */
	r.apic_timer[0] = '\0';
	assert_int_equal(recording_write(rec, &r, err, sizeof(err)), 0);
	get(rec, text, sizeof(text));
	drop_line(text, "apic_timer=\n");
	put(rec, "recording", text);
	assert_int_equal(recording_read(rec, &back, err, sizeof(err)), 0);
	assert_string_equal(back.apic_timer, "");
	/* A value no kstep writes. */
	snprintf(r.apic_timer, sizeof(r.apic_timer), "1");
	assert_int_equal(recording_write(rec, &r, err, sizeof(err)), 0);
	assert_int_equal(recording_read(rec, &back, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "apic_timer=1"));
	rm_rf(images);
	rm_rf(rec);
}

static void test_not_a_recording(void **state)
{
	char dir[SCRATCH_MAX], err[512];
	struct recording r;

	(void)state;
	scratch(dir, sizeof(dir), "kstep-test-notrec");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(recording_read(dir, &r, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "not a kstep recording"));
	put(dir, "recording", "something else\nid=1\n");
	assert_int_equal(recording_read(dir, &r, err, sizeof(err)), -EINVAL);
	rm_rf(dir);
}

/* -o DIR: created 0700; an old recording replaced only with --force; a
 * directory with anything else in it, or a link, never used. */
static void test_recording_directory_rules(void **state)
{
	char base[SCRATCH_MAX], dir[SCRATCH_MAX + 16], link[SCRATCH_MAX + 32], err[512];
	struct stat st;

	(void)state;
	scratch(base, sizeof(base), "kstep-test-recdir");
	assert_non_null(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/new", base);
	assert_int_equal(recording_prepare_dir(dir, false, err, sizeof(err)), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	put(dir, RECORDING_FILE, "kstep-recording 1\n");
	put(dir, RECORDING_LOG, "log");
	assert_int_equal(recording_prepare_dir(dir, false, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "pass --force"));
	assert_int_equal(recording_prepare_dir(dir, true, err, sizeof(err)), 0);
	assert_int_equal(access(RECORDING_LOG, F_OK), -1);
	put(dir, "notes.txt", "mine");
	assert_int_equal(recording_prepare_dir(dir, true, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "not a kstep recording"));
	snprintf(link, sizeof(link), "%s/link", base);
	assert_int_equal(symlink(dir, link), 0);
	assert_true(recording_prepare_dir(link, true, err, sizeof(err)) < 0);
	rm_rf(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_written_recording_reads_back_and_checks),
		cmocka_unit_test(test_apic_timer_of_new_and_older_recordings),
		cmocka_unit_test(test_not_a_recording),
		cmocka_unit_test(test_recording_directory_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
