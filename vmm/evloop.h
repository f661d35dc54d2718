/* The per-VM event loop: one thread, one io_uring. It owns every device's
 * data plane: queue kicks (ioeventfds), disk and socket I/O, console input.
 * Other threads reach it only through evloop_call/evloop_post. */
#ifndef COVE_EVLOOP_H
#define COVE_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

struct evloop;
struct io_uring_sqe;

/* A completion target. Embed it in the struct that owns the operation and
 * recover the owner with container_of in cb. The SQE's user_data is the
 * handler's address. `res` is cqe->res, `flags` cqe->flags. */
struct evloop_handler {
	void (*cb)(struct evloop_handler *h, int res, uint32_t flags);
};

/* A readiness watch on an fd (multishot poll, re-armed as needed).
 * cb runs on the loop thread with the poll revents. */
struct evloop_watch {
	struct evloop_handler h;	/* internal */
	struct evloop *loop;
	int fd;
	uint32_t events;
	bool active;
	void (*cb)(struct evloop_watch *w, uint32_t revents);
	void *arg;
};

/* Create the ring and its wake-up eventfd. 0 or -errno. Setup thread. */
int evloop_create(struct evloop **out);
void evloop_destroy(struct evloop *loop);

/* Start the loop thread; when this returns, evloop_call from other threads
 * goes to it. on_error(arg, -errno) runs on the loop thread if the ring
 * fails. 0 or -errno. Setup thread. */
int evloop_start(struct evloop *loop, void (*on_error)(void *arg, int err), void *arg);
/* Ask the loop to stop soon. Any thread, also from inside the loop. */
void evloop_stop(struct evloop *loop);
/* Stop the loop and wait for its thread to end. Setup thread. */
void evloop_join(struct evloop *loop);
/* True on the loop thread. */
bool evloop_on_loop(const struct evloop *loop);

/* An SQE whose completion goes to h. The caller fills it with
 * io_uring_prep_* and must not touch user_data. Never NULL: a full
 * submission queue is flushed first. Loop thread only (or the setup thread
 * before the loop runs). */
struct io_uring_sqe *evloop_sqe(struct evloop *loop, struct evloop_handler *h);

/* Start watching w->fd for w->events (POLLIN…); fill fd, events, cb, arg
 * first. 0 or -errno. Loop thread, or setup thread before the loop runs. */
int evloop_watch_start(struct evloop *loop, struct evloop_watch *w);
/* Stop watching; cb is not called again. Loop thread. */
void evloop_watch_stop(struct evloop_watch *w);

/* Run fn(arg) on the loop thread and wait until it returned. On the loop
 * thread, or when the loop is not running, fn runs inline. 0 or -errno. */
int evloop_call(struct evloop *loop, void (*fn)(void *arg), void *arg);
/* Queue fn(arg) to run on the loop thread; does not wait. 0 or -ENOMEM. */
int evloop_post(struct evloop *loop, void (*fn)(void *arg), void *arg);

#endif
