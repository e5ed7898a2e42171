// SPDX-License-Identifier: MIT
/* Unit tests of the packet report: stops grouped by skb into paths. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "report.h"

static void test_report_paths(void **state)
{
	struct report *r;
	char out[1024] = "";
	FILE *f = fmemopen(out, sizeof(out), "w");

	(void)state;
	assert_int_equal(report_new(&r), 0);
	/* two packets through the same buffer, one through another */
	report_add(r, 0x1000, "ip_rcv", 5);
	report_add(r, 0x2000, "ip_rcv", 5);
	report_add(r, 0x1000, "icmp_rcv", 7);
	report_add(r, 0x1000, "ip_rcv", 5); /* recycled buffer: a new packet */
	report_add(r, 0x1000, "icmp_rcv", 7);
	report_add(r, 0x2000, "udp_rcv", 7);
	/* copied to user, freed, reused for a packet from the NIC: two packets,
	 * though the second never comes back to a probe the first passed */
	report_add(r, 0x3000, "skb_copy_datagram_iter", 8);
	report_add(r, 0x3000, "napi_gro_receive", 3);
	report_add(r, 0x3000, "ip_rcv", 5);
	/* a probe off the path (order 0) never splits a packet */
	report_add(r, 0x2000, "my_probe", 0);
	report_add(r, 0, "ignored", 0);
	assert_int_equal(report_packets(r), 5);
	report_print(r, f);
	fclose(f);
	assert_non_null(strstr(out, "packets: 5"));
	assert_non_null(strstr(out, "2  ip_rcv -> icmp_rcv"));
	assert_non_null(strstr(out, "1  ip_rcv -> udp_rcv -> my_probe"));
	assert_non_null(strstr(out, "1  skb_copy_datagram_iter\n"));
	assert_non_null(strstr(out, "1  napi_gro_receive -> ip_rcv\n"));
	report_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report_paths),
	};

	return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
