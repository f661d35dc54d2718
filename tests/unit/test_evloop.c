/* The event loop: cross-thread calls, fd watches, io_uring completions. */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "evloop.h"

struct ctx {
	struct evloop *loop;
	int calls;
	bool on_loop;
	int watch_hits;
	uint64_t watched_total;
	int io_res;
	struct evloop_handler io;
	struct evloop_watch w;
	int efd;
};

static void bump(void *arg)
{
	struct ctx *c = arg;

	c->calls++;
	c->on_loop = evloop_on_loop(c->loop);
}

static void test_call_runs_on_loop(void **state)
{
	struct ctx c = { 0 };

	(void)state;
	assert_int_equal(evloop_create(&c.loop), 0);
	/* Before the loop runs, a call runs inline. */
	evloop_call(c.loop, bump, &c);
	assert_int_equal(c.calls, 1);
	assert_false(c.on_loop);
	assert_int_equal(evloop_start(c.loop, NULL, NULL), 0);
	for (int i = 0; i < 100; i++)
		evloop_call(c.loop, bump, &c);
	assert_int_equal(c.calls, 101);
	assert_true(c.on_loop);
	evloop_join(c.loop);
	/* After it stopped, inline again. */
	evloop_call(c.loop, bump, &c);
	assert_int_equal(c.calls, 102);
	evloop_destroy(c.loop);
}

static void stop_loop(void *arg)
{
	struct ctx *c = arg;

	evloop_stop(c->loop);
}

static void test_post_before_run(void **state)
{
	struct ctx c = { 0 };

	(void)state;
	assert_int_equal(evloop_create(&c.loop), 0);
	assert_int_equal(evloop_post(c.loop, bump, &c), 0);
	assert_int_equal(evloop_post(c.loop, stop_loop, &c), 0);
	assert_int_equal(c.calls, 0);
	assert_int_equal(evloop_start(c.loop, NULL, NULL), 0);
	/* the loop ends by itself: stop_loop ran */
	evloop_join(c.loop);
	assert_int_equal(c.calls, 1);
	/* Posted work that never ran is freed by destroy. */
	evloop_post(c.loop, bump, &c);
	evloop_destroy(c.loop);
	assert_int_equal(c.calls, 1);
}

static void watch_cb(struct evloop_watch *w, uint32_t revents)
{
	struct ctx *c = w->arg;
	uint64_t v;

	assert_true(revents & POLLIN);
	assert_int_equal(read(c->efd, &v, sizeof(v)), sizeof(v));
	c->watch_hits++;
	c->watched_total += v;
	if (c->watched_total >= 10)
		evloop_stop(c->loop);
}

static void test_watch_fires_repeatedly(void **state)
{
	struct ctx c = { 0 };
	uint64_t one = 1;

	(void)state;
	assert_int_equal(evloop_create(&c.loop), 0);
	c.efd = eventfd(0, EFD_NONBLOCK);
	c.w.fd = c.efd;
	c.w.events = POLLIN;
	c.w.cb = watch_cb;
	c.w.arg = &c;
	assert_int_equal(evloop_watch_start(c.loop, &c.w), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(write(c.efd, &one, sizeof(one)), sizeof(one));
	assert_int_equal(evloop_start(c.loop, NULL, NULL), 0);
	while (!__atomic_load_n(&c.watched_total, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&c.watched_total, __ATOMIC_ACQUIRE) < 10)
		usleep(1000);
	evloop_join(c.loop);
	assert_int_equal(c.watched_total, 10);
	assert_true(c.watch_hits >= 1);
	close(c.efd);
	evloop_destroy(c.loop);
}

static void io_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct ctx *c = (struct ctx *)((char *)h - offsetof(struct ctx, io));

	(void)flags;
	c->io_res = res;
	evloop_stop(c->loop);
}

static void test_io_completion(void **state)
{
	struct ctx c = { 0 };
	int p[2];
	char buf[16] = { 0 };

	(void)state;
	assert_int_equal(evloop_create(&c.loop), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "hello", 5), 5);
	c.io.cb = io_done;
	io_uring_prep_read(evloop_sqe(c.loop, &c.io), p[0], buf, sizeof(buf), 0);
	assert_int_equal(evloop_start(c.loop, NULL, NULL), 0);
	while (!__atomic_load_n(&c.io_res, __ATOMIC_ACQUIRE))
		usleep(1000);
	evloop_join(c.loop);
	assert_int_equal(c.io_res, 5);
	assert_memory_equal(buf, "hello", 5);
	close(p[0]);
	close(p[1]);
	evloop_destroy(c.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_call_runs_on_loop),
		cmocka_unit_test(test_post_before_run),
		cmocka_unit_test(test_watch_fires_repeatedly),
		cmocka_unit_test(test_io_completion),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
