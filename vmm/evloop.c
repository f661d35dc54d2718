#include "evloop.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

#define EVLOOP_ENTRIES 256

struct evloop_msg {
	void (*fn)(void *arg);
	void *arg;
	sem_t *done;		/* evloop_call waits on it; NULL for post */
	struct evloop_msg *next;
};

struct evloop {
	struct io_uring ring;
	int wake_fd;
	struct evloop_watch wake;
	pthread_mutex_t lock;	/* msgs, running */
	struct evloop_msg *msgs, **msgs_tail;
	bool running;
	bool started;		/* a thread was created */
	pthread_t thread;
	bool stop;		/* atomic */
	void (*on_error)(void *arg, int err);
	void *on_error_arg;
};

static void run_msgs(struct evloop *loop)
{
	struct evloop_msg *m;

	pthread_mutex_lock(&loop->lock);
	m = loop->msgs;
	loop->msgs = NULL;
	loop->msgs_tail = &loop->msgs;
	pthread_mutex_unlock(&loop->lock);
	while (m) {
		struct evloop_msg *next = m->next;
		m->fn(m->arg);
		if (m->done)
			sem_post(m->done);	/* m lives on the caller's stack */
		else
			free(m);
		m = next;
	}
}

static void wake_cb(struct evloop_watch *w, uint32_t revents)
{
	struct evloop *loop = w->arg;
	uint64_t v;

	(void)revents;
	if (read(loop->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_msg("evloop", "wake read: %s", strerror(errno));
	run_msgs(loop);
}

int evloop_create(struct evloop **out)
{
	struct evloop *loop = calloc(1, sizeof(*loop));
	int err;

	if (!loop)
		return -ENOMEM;
	err = io_uring_queue_init(EVLOOP_ENTRIES, &loop->ring, 0);
	if (err < 0) {
		free(loop);
		return cove_fail(err, "io_uring_queue_init: %s", strerror(-err));
	}
	loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->wake_fd < 0) {
		err = -errno;
		io_uring_queue_exit(&loop->ring);
		free(loop);
		return cove_fail(err, "eventfd: %s", strerror(-err));
	}
	pthread_mutex_init(&loop->lock, NULL);
	loop->msgs_tail = &loop->msgs;
	loop->wake.fd = loop->wake_fd;
	loop->wake.events = POLLIN;
	loop->wake.cb = wake_cb;
	loop->wake.arg = loop;
	err = evloop_watch_start(loop, &loop->wake);
	if (err < 0) {
		evloop_destroy(loop);
		return err;
	}
	*out = loop;
	return 0;
}

void evloop_destroy(struct evloop *loop)
{
	if (!loop)
		return;
	evloop_join(loop);
	/* Posted work that never ran is dropped: its targets are going away. */
	while (loop->msgs) {
		struct evloop_msg *m = loop->msgs;
		loop->msgs = m->next;
		free(m);
	}
	io_uring_queue_exit(&loop->ring);
	close(loop->wake_fd);
	pthread_mutex_destroy(&loop->lock);
	free(loop);
}

struct io_uring_sqe *evloop_sqe(struct evloop *loop, struct evloop_handler *h)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&loop->ring)))
		io_uring_submit(&loop->ring);
	io_uring_sqe_set_data(sqe, h);
	return sqe;
}

static void watch_arm(struct evloop_watch *w)
{
	struct io_uring_sqe *sqe = evloop_sqe(w->loop, &w->h);

	io_uring_prep_poll_multishot(sqe, w->fd, w->events);
}

static void watch_cqe(struct evloop_handler *h, int res, uint32_t flags)
{
	struct evloop_watch *w = (struct evloop_watch *)h;

	if (!w->active)
		return;
	if (res < 0) {
		if (res != -ECANCELED) {
			log_msg("evloop", "poll on fd %d: %s", w->fd, strerror(-res));
			w->active = false;
			return;
		}
	} else {
		w->cb(w, (uint32_t)res);
	}
	/* Multishot polls end on overflow or cancellation: re-arm. */
	if (w->active && !(flags & IORING_CQE_F_MORE))
		watch_arm(w);
}

int evloop_watch_start(struct evloop *loop, struct evloop_watch *w)
{
	w->h.cb = watch_cqe;
	w->loop = loop;
	w->active = true;
	watch_arm(w);
	return 0;
}

void evloop_watch_stop(struct evloop_watch *w)
{
	struct io_uring_sqe *sqe;

	if (!w->active)
		return;
	w->active = false;
	sqe = evloop_sqe(w->loop, NULL);
	io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)&w->h);
}

static void wake(struct evloop *loop)
{
	uint64_t one = 1;

	if (write(loop->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_msg("evloop", "wake: %s", strerror(errno));
}

static void *loop_thread(void *arg)
{
	struct evloop *loop = arg;
	int err = 0;

	pthread_setname_np(pthread_self(), "evloop");
	pthread_mutex_lock(&loop->lock);
	loop->thread = pthread_self();
	pthread_mutex_unlock(&loop->lock);
	while (!__atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE)) {
		struct io_uring_cqe *cqe;

		err = io_uring_submit_and_wait(&loop->ring, 1);
		if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY) {
			log_msg("evloop", "io_uring_submit_and_wait: %s", strerror(-err));
			break;
		}
		err = 0;
		while (io_uring_peek_cqe(&loop->ring, &cqe) == 0) {
			struct evloop_handler *h = io_uring_cqe_get_data(cqe);
			int res = cqe->res;
			uint32_t flags = cqe->flags;

			io_uring_cqe_seen(&loop->ring, cqe);
			if (h)
				h->cb(h, res, flags);
		}
	}

	pthread_mutex_lock(&loop->lock);
	loop->running = false;
	pthread_mutex_unlock(&loop->lock);
	/* Callers that queued before we stopped are waiting: serve them. */
	run_msgs(loop);
	if (err < 0 && loop->on_error)
		loop->on_error(loop->on_error_arg, err);
	return NULL;
}

int evloop_start(struct evloop *loop, void (*on_error)(void *arg, int err), void *arg)
{
	int err;

	loop->on_error = on_error;
	loop->on_error_arg = arg;
	/* Running from now on, so that no caller runs inline while the
	 * thread starts. */
	pthread_mutex_lock(&loop->lock);
	loop->running = true;
	err = pthread_create(&loop->thread, NULL, loop_thread, loop);
	if (err)
		loop->running = false;
	else
		loop->started = true;
	pthread_mutex_unlock(&loop->lock);
	if (err)
		return cove_fail(-err, "evloop: pthread_create: %s", strerror(err));
	return 0;
}

void evloop_join(struct evloop *loop)
{
	if (!loop->started)
		return;
	evloop_stop(loop);
	pthread_join(loop->thread, NULL);
	loop->started = false;
}

void evloop_stop(struct evloop *loop)
{
	__atomic_store_n(&loop->stop, true, __ATOMIC_RELEASE);
	wake(loop);
}

bool evloop_on_loop(const struct evloop *loop)
{
	return loop->running && pthread_equal(loop->thread, pthread_self());
}

/* Queue m, or return false when the loop is not running (the caller then
 * runs it inline). */
static bool enqueue(struct evloop *loop, struct evloop_msg *m)
{
	bool queued = false;

	pthread_mutex_lock(&loop->lock);
	if (loop->running && !pthread_equal(loop->thread, pthread_self())) {
		m->next = NULL;
		*loop->msgs_tail = m;
		loop->msgs_tail = &m->next;
		queued = true;
	}
	pthread_mutex_unlock(&loop->lock);
	if (queued)
		wake(loop);
	return queued;
}

int evloop_call(struct evloop *loop, void (*fn)(void *arg), void *arg)
{
	sem_t done;
	struct evloop_msg m = { .fn = fn, .arg = arg, .done = &done };

	sem_init(&done, 0, 0);
	if (enqueue(loop, &m)) {
		while (sem_wait(&done) < 0 && errno == EINTR)
			;
	} else {
		fn(arg);
	}
	sem_destroy(&done);
	return 0;
}

int evloop_post(struct evloop *loop, void (*fn)(void *arg), void *arg)
{
	struct evloop_msg *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->fn = fn;
	m->arg = arg;
	/* Before the loop runs, the wake count makes its first poll fire. */
	pthread_mutex_lock(&loop->lock);
	*loop->msgs_tail = m;
	loop->msgs_tail = &m->next;
	pthread_mutex_unlock(&loop->lock);
	wake(loop);
	return 0;
}
