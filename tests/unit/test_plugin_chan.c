// SPDX-License-Identifier: MIT
/* Unit tests of kstep's end of the plugin channel: messages that arrive in
 * pieces, and messages whose lengths lie (the plugin's input is checked
 * before anything reads it), over a socketpair. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plugin_chan.h"

#define REGS 16

struct pair {
	struct chan *c;
	int peer;
};

static int setup(void **state)
{
	static struct pair p;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(chan_from_fd(&p.c, sv[0]), 0);
	p.peer = sv[1];
	*state = &p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	chan_free(p->c);
	close(p->peer);
	return 0;
}

/* A message of @type laid out as a HIT, of @win stack bytes, whose
 * header claims @claimed_extra body bytes more than it has. */
static size_t make_typed(uint8_t *out, uint32_t type, uint32_t win, uint32_t claimed_extra)
{
	struct chan_hit h = { .vcpu = 1, .regs_len = REGS, .win_len = win, .pc = 0xffffffff81000000ull,
			      .sp = 0xffff888000004000ull - win, .seq = 7 };
	uint32_t len = (uint32_t)(sizeof(h) + REGS + win);
	struct chan_header hdr = { type, len + claimed_extra };

	memcpy(out, &hdr, sizeof(hdr));
	memcpy(out + sizeof(hdr), &h, sizeof(h));
	for (uint32_t i = 0; i < REGS + win; i++)
		out[sizeof(hdr) + sizeof(h) + i] = (uint8_t)i;
	return sizeof(hdr) + len + claimed_extra;
}

static size_t make_hit(uint8_t *out, uint32_t win, uint32_t claimed_extra)
{
	return make_typed(out, CHAN_HIT, win, claimed_extra);
}

static void hit_in_pieces(void **state)
{
	struct pair *p = *state;
	uint8_t buf[512];
	size_t len = make_hit(buf, 64, 0);
	struct chan_hit_view v;
	struct chan_msg m;

	assert_int_equal(write(p->peer, buf, 5), 5);
	assert_int_equal(chan_next(p->c, &m, 0), 0); /* half a header: nothing yet */
	assert_int_equal(write(p->peer, buf + 5, len - 5), (ssize_t)(len - 5));
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_int_equal(chan_parse_hit(&m, REGS, &v), 0);
	assert_int_equal(v.h.win_len, 64);
	assert_int_equal(v.regs[1], 1);
	assert_int_equal(v.window[0], REGS);
	assert_int_equal(v.h.seq, 7);
}

static void hit_whose_lengths_lie(void **state)
{
	struct pair *p = *state;
	uint8_t buf[512];
	size_t len = make_hit(buf, 64, 8); /* 8 bytes the parts do not account for */
	struct chan_hit_view v;
	struct chan_msg m;

	assert_int_equal(write(p->peer, buf, len), (ssize_t)len);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_int_equal(chan_parse_hit(&m, REGS, &v), -EPROTO);
	/* Another register layout than kstep's. */
	len = make_hit(buf, 64, 0);
	assert_int_equal(write(p->peer, buf, len), (ssize_t)len);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_int_equal(chan_parse_hit(&m, REGS + 8, &v), -EPROTO);
}

/* The next STEP's pc, before it is taken: once its head has come, and
 * not for a message of another kind. */
static void next_pc_is_seen_ahead(void **state)
{
	struct pair *p = *state;
	uint8_t buf[1024];
	size_t len = make_typed(buf, CHAN_STEP, 32, 0), half;
	struct chan_msg m;
	uint64_t pc = 0;

	half = len + sizeof(struct chan_header) + offsetof(struct chan_hit, pc) + 4; /* into the second's pc */
	len += make_typed(buf + len, CHAN_STEP, 32, 0);
	assert_int_equal(write(p->peer, buf, half), (ssize_t)half);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_false(chan_peek_pc(p->c, &pc));
	assert_int_equal(write(p->peer, buf + half, len - half), (ssize_t)(len - half));
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_false(chan_peek_pc(p->c, &pc)); /* nothing after it */
	/* Two whole ones, the second at another pc; then a SYNCED. */
	len = make_typed(buf, CHAN_STEP, 32, 0);
	half = len;
	len += make_typed(buf + len, CHAN_STEP, 32, 0);
	memcpy(buf + half + sizeof(struct chan_header) + offsetof(struct chan_hit, pc), &(uint64_t){ 0x1234 }, 8);
	len += make_typed(buf + len, CHAN_SYNCED, 32, 0);
	assert_int_equal(write(p->peer, buf, len), (ssize_t)len);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_true(chan_peek_pc(p->c, &pc));
	assert_int_equal(pc, 0x1234);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_false(chan_peek_pc(p->c, &pc)); /* a SYNCED is next */
}

/* A STEP is parsed as a HIT is, lengths checked the same; a SYNCED is
 * not taken for either. */
static void step_is_checked_as_a_hit(void **state)
{
	struct pair *p = *state;
	uint8_t buf[512];
	size_t len = make_typed(buf, CHAN_STEP, 32, 0);
	struct chan_hit_view v;
	struct chan_msg m;

	assert_int_equal(write(p->peer, buf, len), (ssize_t)len);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_int_equal(m.type, CHAN_STEP);
	assert_int_equal(chan_parse_hit(&m, REGS, &v), 0);
	assert_int_equal(v.h.win_len, 32);
	len = make_typed(buf, CHAN_STEP, 32, 4);
	assert_int_equal(write(p->peer, buf, len), (ssize_t)len);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_int_equal(chan_parse_hit(&m, REGS, &v), -EPROTO);
	len = make_typed(buf, CHAN_SYNCED, 32, 0);
	assert_int_equal(write(p->peer, buf, len), (ssize_t)len);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_int_equal(chan_parse_hit(&m, REGS, &v), -EPROTO);
}

/* A STEP may carry the head of its register block (CHAN_HIT_REGS_HEAD),
 * never more than the block; a HIT carries it whole, flag or not. */
static void step_may_carry_the_head_of_its_registers(void **state)
{
	static const uint32_t head = CHAN_HIT_REGS_HEAD;
	struct pair *p = *state;
	uint8_t buf[512];
	struct chan_hit_view v;
	struct chan_msg m;
	const struct {
		uint32_t type;
		size_t block;
		int ret;
	} cases[] = {
		{ CHAN_STEP, REGS + 8, 0 },       /* the head: 8 bytes short */
		{ CHAN_STEP, REGS, 0 },           /* all of it differed */
		{ CHAN_STEP, REGS - 8, -EPROTO }, /* more than the block */
		{ CHAN_HIT, REGS + 8, -EPROTO },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = make_typed(buf, cases[i].type, 32, 0);

		memcpy(buf + sizeof(struct chan_header) + offsetof(struct chan_hit, flags), &head, sizeof(head));
		assert_int_equal(write(p->peer, buf, len), (ssize_t)len);
		assert_int_equal(chan_next(p->c, &m, 100), 1);
		assert_int_equal(chan_parse_hit(&m, cases[i].block, &v), cases[i].ret);
		if (!cases[i].ret)
			assert_int_equal(v.window[0], REGS); /* the window after the head */
	}
}

static void oversized_message_ends_the_channel(void **state)
{
	struct pair *p = *state;
	struct chan_header h = { CHAN_HIT, CHAN_MAX_BODY + 1 };
	struct chan_msg m;

	assert_int_equal(write(p->peer, &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(chan_next(p->c, &m, 100), -EPROTO);
}

static void synced_and_the_end(void **state)
{
	struct pair *p = *state;
	struct chan_synced s = { .hits = 3, .waits = 1 }, got;
	struct chan_header h = { CHAN_SYNCED, sizeof(s) };
	struct chan_msg m;

	assert_int_equal(write(p->peer, &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(write(p->peer, &s, sizeof(s)), (ssize_t)sizeof(s));
	shutdown(p->peer, SHUT_WR);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_int_equal(chan_parse_synced(&m, &got), 0);
	assert_int_equal(got.hits, 3);
	assert_int_equal(chan_parse_hit(&m, REGS, &(struct chan_hit_view){ 0 }), -EPROTO);
	assert_int_equal(chan_next(p->c, &m, 100), -ECONNRESET);
}

/* A SYNCED answers the last message sent that the plugin answers only
 * when it counts that one: an earlier message's answer, read late, is
 * not it. A STEP_VERDICT is not answered, and not counted. */
static void synced_answers_the_last_message_only(void **state)
{
	struct pair *p = *state;
	struct chan_synced early = { .answered = 1 }, last = { .answered = 2 };
	struct chan_step_at at = { 0 };
	struct chan_step_verdict verdict = { 0 };
	uint8_t sink[64];

	assert_int_equal(chan_send(p->c, CHAN_SYNC, NULL, 0), 0);
	assert_true(chan_synced_is_last(p->c, &early));
	assert_int_equal(chan_send(p->c, CHAN_STEP_AT, &at, sizeof(at)), 0);
	assert_false(chan_synced_is_last(p->c, &early));
	assert_true(chan_synced_is_last(p->c, &last));
	assert_int_equal(chan_send(p->c, CHAN_STEP_VERDICT, &verdict, sizeof(verdict)), 0);
	assert_true(chan_synced_is_last(p->c, &last));
	assert_true(read(p->peer, sink, sizeof(sink)) > 0);
}

/* The plugin's last word when it gives up: why, and after how many HITs;
 * a GONE of another length is refused, as is a SYNCED taken for one. */
static void gone_says_why(void **state)
{
	struct pair *p = *state;
	struct chan_gone g = { .reason = CHAN_GONE_NOMEM, .hits = 3 }, got;
	struct chan_header h = { CHAN_GONE, sizeof(g) }, bad = { CHAN_GONE, sizeof(g) - 1 };
	struct chan_synced s;
	struct chan_msg m;

	assert_int_equal(write(p->peer, &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(write(p->peer, &g, sizeof(g)), (ssize_t)sizeof(g));
	assert_int_equal(write(p->peer, &bad, sizeof(bad)), (ssize_t)sizeof(bad));
	assert_int_equal(write(p->peer, &g, sizeof(g) - 1), (ssize_t)sizeof(g) - 1);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_int_equal(chan_parse_gone(&m, &got), 0);
	assert_int_equal(got.reason, CHAN_GONE_NOMEM);
	assert_int_equal(got.hits, 3);
	assert_int_equal(chan_parse_synced(&m, &s), -EPROTO);
	assert_int_equal(chan_next(p->c, &m, 100), 1);
	assert_int_equal(chan_parse_gone(&m, &got), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(hit_in_pieces, setup, teardown),
		cmocka_unit_test_setup_teardown(hit_whose_lengths_lie, setup, teardown),
		cmocka_unit_test_setup_teardown(step_is_checked_as_a_hit, setup, teardown),
		cmocka_unit_test_setup_teardown(next_pc_is_seen_ahead, setup, teardown),
		cmocka_unit_test_setup_teardown(step_may_carry_the_head_of_its_registers, setup, teardown),
		cmocka_unit_test_setup_teardown(oversized_message_ends_the_channel, setup, teardown),
		cmocka_unit_test_setup_teardown(synced_and_the_end, setup, teardown),
		cmocka_unit_test_setup_teardown(synced_answers_the_last_message_only, setup, teardown),
		cmocka_unit_test_setup_teardown(gone_says_why, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
