/* The control API: a unix stream socket served on the VM's event loop.
 *
 * One JSON object per line in each direction; replies come in request
 * order, one per request:
 *
 *	{"op":"status"}   {"ok":true,"state":"running"|"paused","uptime_ms":N,
 *	                   "cpus":N,"memory_mib":N,"boot_timer_ms":N|null}
 *	{"op":"pause"}    {"ok":true}  once every vCPU is parked (idempotent)
 *	{"op":"resume"}   {"ok":true}  (idempotent)
 *	{"op":"stop"}     {"ok":true}  then the VM ends ("stopped")
 *	{"op":"metrics"}  {"ok":true,"metrics":{…as cove_vm_write_metrics…}}
 *	{"op":"balloon","target_mib":N}  {"ok":true}  the guest inflates or
 *	                   deflates toward it
 *	{"op":"balloon_stats"}  {"ok":true,"target_bytes":N,"actual_bytes":N,
 *	                   "inflated_bytes":N,"reported_bytes":N,"bad_input":N,
 *	                   "stats_age_ms":N|null,"guest":{…N|null…}}
 *	{"op":"shutdown"[,"timeout_ms":N]}  {"ok":true} at once; the guest is
 *	                   asked to power off, and stopped after the timeout
 *	anything else     {"ok":false,"error":"…"}
 *
 * An optional "id" (number or string) is echoed in the reply as written;
 * other members than the op's own are errors. Blank lines are ignored. A line longer than
 * API_LINE_MAX bytes gets an error reply and the connection is closed; at
 * most API_MAX_CONNS connections, a further one gets an error line and is
 * closed. A client that does not read its replies stalls only itself: its
 * requests are not read until its last reply was written. */
#ifndef COVE_API_H
#define COVE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_LINE_MAX	4096	/* request bytes before the newline */
#define API_MAX_CONNS	16

#define API_SHUTDOWN_TIMEOUT_MS	10000	/* default of "timeout_ms" */
#define API_TIMEOUT_MS_MAX	86400000

struct evloop;
struct api_server;
struct cove_balloon_stats;

struct api_status {
	bool paused;
	uint64_t uptime_ns;		/* since the VM started */
	int cpus;
	uint64_t memory;		/* bytes */
	uint64_t boot_timer_ns;		/* 0: the guest has not written it */
};

/* What the API does to the VM. Called on the event-loop thread; none may
 * block. */
struct api_ops {
	void (*status)(void *arg, struct api_status *st);
	/* 0 once every vCPU is parked; -EINPROGRESS while the pause is under
	 * way (the server calls again about every millisecond); -errno. */
	int (*pause)(void *arg);
	int (*resume)(void *arg);
	void (*stop)(void *arg);
	/* The metrics JSON object, malloc'd, in *json (length *len). 0 or
	 * -errno. */
	int (*metrics)(void *arg, char **json, size_t *len);
	/* Set the balloon target in bytes: 0, -ENODEV (no balloon), -EINVAL
	 * (more than the guest's memory). */
	int (*balloon)(void *arg, uint64_t target);
	/* The balloon's state: 0 or -ENODEV. */
	int (*balloon_stats)(void *arg, struct cove_balloon_stats *st);
	/* Ask the guest to power off, stop it after timeout_ms: 0, or
	 * -ENOTSUP when the guest cannot be asked (no ACPI). */
	int (*shutdown)(void *arg, unsigned timeout_ms);
};

/* Listen on a unix stream socket at path and serve requests with ops on
 * loop. A stale socket at path (nothing accepts on it) is replaced; a live
 * one is -EADDRINUSE, any other file -EEXIST; the socket is mode 0600.
 * 0 or -errno with cove_fail's message. Setup thread, before the loop runs
 * (or on the loop thread). */
int api_create(struct evloop *loop, const char *path, const struct api_ops *ops, void *arg,
	       struct api_server **out);

/* Close every connection and the socket, and unlink it if it is still
 * ours. NULL is fine. Setup thread, once the loop has stopped (or never
 * ran). */
void api_destroy(struct api_server *srv);

/* Answer one request line (line[0..len), without its newline) using ops.
 * Returns the length of the malloc'd reply in *reply (one JSON object and
 * a newline), 0 for a blank line (no reply), -EINPROGRESS when a pause is
 * under way (no reply yet: call again with the same line), or -ENOMEM.
 * Any thread that may call ops. */
int api_handle_request(const struct api_ops *ops, void *arg, const char *line, size_t len,
		       char **reply);

#endif
