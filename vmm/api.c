#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "evloop.h"
#include "json.h"
#include "libcove.h"
#include "log.h"
#include "usock.h"

#define API_MAX_MEMBERS	8	/* op, id and a few wrong ones to report */
#define API_BACKLOG	32
#define API_LINES_PER_RUN 32	/* requests served per wake-up of a connection */
#define API_PAUSE_POLL_NS 1000000

#define STR(x) #x
#define XSTR(x) STR(x)

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* ---- replies ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->oom = true;	/* our formats are short: never */
		return;
	}
	sb_add(b, tmp, n);
}

static void sb_quote(struct sbuf *b, const char *s, size_t n)
{
	size_t need = json_quote(NULL, 0, s, n);
	char *q = malloc(need + 1);

	if (!q) {
		b->oom = true;
		return;
	}
	json_quote(q, need + 1, s, n);
	sb_add(b, q, need);
	free(q);
}

/* {"ok":…,"id":… — the head of every reply. */
static void reply_head(struct sbuf *b, bool ok, const struct json_member *id)
{
	sb_str(b, ok ? "{\"ok\":true" : "{\"ok\":false");
	if (id) {
		sb_str(b, ",\"id\":");
		sb_add(b, id->value, id->value_len);	/* validated JSON text */
	}
}

/* An error reply; the message is prefix, then name (raw bytes, may be
 * NULL), then suffix, quoted as one JSON string. */
static void reply_error(struct sbuf *b, const struct json_member *id, const char *prefix,
			const char *name, size_t name_len, const char *suffix)
{
	char msg[512];
	size_t n = 0, l;

	l = strlen(prefix);
	memcpy(msg, prefix, l);
	n += l;
	if (name) {
		if (name_len > 64) {	/* cut, not inside a UTF-8 sequence */
			name_len = 64;
			while (name_len && ((unsigned char)name[name_len] & 0xc0) == 0x80)
				name_len--;
		}
		memcpy(msg + n, name, name_len);
		n += name_len;
	}
	l = strlen(suffix);
	if (l > sizeof(msg) - n)
		l = sizeof(msg) - n;
	memcpy(msg + n, suffix, l);
	n += l;
	reply_head(b, false, id);
	sb_str(b, ",\"error\":");
	sb_quote(b, msg, n);
	sb_str(b, "}\n");
}

static const char *op_strerror(int err)
{
	switch (err) {
	case -ESRCH:
		return "the VM has ended";
	case -ECANCELED:
		return "resumed before every vCPU was parked";
	case -EINVAL:
		return "the VM has not started";
	case -ENODEV:
		return "no balloon device (start cove-vmm with --balloon)";
	case -ENOTSUP:
		return "no ACPI: cannot ask the guest; use stop";
	default:
		return strerror(-err);
	}
}

static bool is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

static bool key_is(const struct json_member *m, const char *key)
{
	return m->key_len == strlen(key) && !memcmp(m->key, key, m->key_len);
}

/* A member holding a whole number from 0 to max, written plainly (no
 * sign, fraction or exponent). */
static bool member_uint(const struct json_member *m, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (m->type != JSON_NUMBER || m->value_len == 0 || m->value_len > 20)
		return false;
	for (size_t i = 0; i < m->value_len; i++) {
		unsigned d = (unsigned char)m->value[i] - '0';
		if (d > 9 || v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* What each op takes besides "op" and "id". */
struct api_op {
	const char *name;
	const char *arg;	/* its one member, or NULL */
	bool arg_required;
	const char *usage;	/* for an unknown member */
};

static const struct api_op api_ops_table[] = {
	{ "status", NULL, false, "a request has \"op\" and optionally \"id\"" },
	{ "pause", NULL, false, "a request has \"op\" and optionally \"id\"" },
	{ "resume", NULL, false, "a request has \"op\" and optionally \"id\"" },
	{ "stop", NULL, false, "a request has \"op\" and optionally \"id\"" },
	{ "metrics", NULL, false, "a request has \"op\" and optionally \"id\"" },
	{ "balloon", "target_mib", true, "balloon takes \"target_mib\" and optionally \"id\"" },
	{ "balloon_stats", NULL, false, "a request has \"op\" and optionally \"id\"" },
	{ "shutdown", "timeout_ms", false,
	  "shutdown takes optionally \"timeout_ms\" and \"id\"" },
};

#define OPS_LIST "status, pause, resume, stop, metrics, balloon, balloon_stats or shutdown"

static const struct api_op *find_op(const char *name)
{
	for (size_t i = 0; i < sizeof(api_ops_table) / sizeof(api_ops_table[0]); i++)
		if (!strcmp(api_ops_table[i].name, name))
			return &api_ops_table[i];
	return NULL;
}

static void do_status(struct sbuf *b, const struct api_ops *ops, void *arg,
		      const struct json_member *id)
{
	struct api_status st = { 0 };

	ops->status(arg, &st);
	reply_head(b, true, id);
	sb_printf(b, ",\"state\":\"%s\",\"uptime_ms\":%" PRIu64 ",\"cpus\":%d,\"memory_mib\":%" PRIu64,
		  st.paused ? "paused" : "running", st.uptime_ns / 1000000, st.cpus, st.memory >> 20);
	if (st.boot_timer_ns)
		sb_printf(b, ",\"boot_timer_ms\":%.3f}\n", st.boot_timer_ns / 1e6);
	else
		sb_str(b, ",\"boot_timer_ms\":null}\n");
}

static void do_metrics(struct sbuf *b, const struct api_ops *ops, void *arg,
		       const struct json_member *id)
{
	char *json = NULL;
	size_t len = 0;
	int err = ops->metrics(arg, &json, &len);

	while (!err && len && (json[len - 1] == '\n' || json[len - 1] == ' '))
		len--;
	if (!err && !len)
		err = -EIO;
	if (err) {
		reply_error(b, id, "metrics: ", NULL, 0, op_strerror(err));
	} else {
		reply_head(b, true, id);
		sb_str(b, ",\"metrics\":");
		sb_add(b, json, len);
		sb_str(b, "}\n");
	}
	free(json);
}

/* ,"key":N or ,"key":null for COVE_BALLOON_UNKNOWN */
static void sb_stat(struct sbuf *b, const char *sep, const char *key, uint64_t v)
{
	if (v == COVE_BALLOON_UNKNOWN)
		sb_printf(b, "%s\"%s\":null", sep, key);
	else
		sb_printf(b, "%s\"%s\":%" PRIu64, sep, key, v);
}

static void do_balloon_stats(struct sbuf *b, const struct api_ops *ops, void *arg,
			     const struct json_member *id)
{
	struct cove_balloon_stats st;
	int err = ops->balloon_stats(arg, &st);

	if (err) {
		reply_error(b, id, "balloon_stats: ", NULL, 0, op_strerror(err));
		return;
	}
	reply_head(b, true, id);
	sb_printf(b, ",\"target_bytes\":%" PRIu64 ",\"actual_bytes\":%" PRIu64
		  ",\"inflated_bytes\":%" PRIu64 ",\"reported_bytes\":%" PRIu64
		  ",\"bad_input\":%" PRIu64, st.target, st.actual, st.inflated, st.reported,
		  st.bad_input);
	if (st.stats_age_ns)
		sb_printf(b, ",\"stats_age_ms\":%" PRIu64, st.stats_age_ns / 1000000);
	else
		sb_str(b, ",\"stats_age_ms\":null");
	sb_stat(b, ",\"guest\":{", "swap_in_bytes", st.swap_in);
	sb_stat(b, ",", "swap_out_bytes", st.swap_out);
	sb_stat(b, ",", "major_faults", st.major_faults);
	sb_stat(b, ",", "minor_faults", st.minor_faults);
	sb_stat(b, ",", "free_bytes", st.free_memory);
	sb_stat(b, ",", "total_bytes", st.total_memory);
	sb_stat(b, ",", "available_bytes", st.available_memory);
	sb_stat(b, ",", "disk_caches_bytes", st.disk_caches);
	sb_str(b, "}}\n");
}

static void reply_ok(struct sbuf *b, const struct json_member *id)
{
	reply_head(b, true, id);
	sb_str(b, "}\n");
}

/* Run a decoded op with its member (NULL if absent, already checked to be
 * the op's); -EINPROGRESS when a pause is not complete yet. */
static int run_op(struct sbuf *b, const struct api_ops *ops, void *arg,
		  const struct json_member *id, const char *op, const struct json_member *am)
{
	uint64_t v;
	int err;

	if (!strcmp(op, "status")) {
		do_status(b, ops, arg, id);
	} else if (!strcmp(op, "pause") || !strcmp(op, "resume")) {
		err = op[0] == 'p' ? ops->pause(arg) : ops->resume(arg);
		if (err == -EINPROGRESS)
			return err;
		if (err)
			reply_error(b, id, op[0] == 'p' ? "pause: " : "resume: ", NULL, 0,
				    op_strerror(err));
		else
			reply_ok(b, id);
	} else if (!strcmp(op, "stop")) {
		ops->stop(arg);
		reply_ok(b, id);
	} else if (!strcmp(op, "metrics")) {
		do_metrics(b, ops, arg, id);
	} else if (!strcmp(op, "balloon")) {
		if (!member_uint(am, UINT64_MAX >> 20, &v)) {
			reply_error(b, id, "\"target_mib\" must be a whole number of MiB", NULL, 0, "");
			return 0;
		}
		err = ops->balloon(arg, v << 20);
		if (err == -EINVAL)
			reply_error(b, id, "balloon: \"target_mib\" exceeds the guest's memory",
				    NULL, 0, "");
		else if (err)
			reply_error(b, id, "balloon: ", NULL, 0, op_strerror(err));
		else
			reply_ok(b, id);
	} else if (!strcmp(op, "balloon_stats")) {
		do_balloon_stats(b, ops, arg, id);
	} else {	/* shutdown */
		v = API_SHUTDOWN_TIMEOUT_MS;
		if (am && !member_uint(am, API_TIMEOUT_MS_MAX, &v)) {
			reply_error(b, id, "\"timeout_ms\" must be a whole number of milliseconds "
				    "up to " XSTR(API_TIMEOUT_MS_MAX), NULL, 0, "");
			return 0;
		}
		err = ops->shutdown(arg, (unsigned)v);
		if (err)
			reply_error(b, id, "shutdown: ", NULL, 0, op_strerror(err));
		else
			reply_ok(b, id);
	}
	return 0;
}

int api_handle_request(const struct api_ops *ops, void *arg, const char *line, size_t len,
		       char **reply)
{
	struct json_member m[API_MAX_MEMBERS];
	const struct json_member *id = NULL, *op = NULL, *am = NULL, *other = NULL;
	const struct api_op *desc = NULL;
	struct json_error jerr = { 0 };
	struct sbuf b = { 0 };
	char name[32];
	int n, l = -1;

	*reply = NULL;
	if (is_blank(line, len))
		return 0;
	n = json_parse_object(line, len, m, API_MAX_MEMBERS, &jerr);
	if (n < 0) {
		char where[64];
		snprintf(where, sizeof(where), " at byte %zu", jerr.offset);
		reply_error(&b, NULL, "not a JSON request object: ", jerr.msg, strlen(jerr.msg),
			    where);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (key_is(&m[i], "id"))
			id = &m[i];
		else if (key_is(&m[i], "op"))
			op = &m[i];
	}
	if (op && op->type == JSON_STRING) {
		l = json_string_decode(op->value, op->value_len, name, sizeof(name));
		if (l >= 0 && strlen(name) == (size_t)l)	/* not too long, no NUL */
			desc = find_op(name);
	}
	for (int i = 0; i < n; i++) {
		if (&m[i] == id || &m[i] == op)
			continue;
		if (desc && desc->arg && key_is(&m[i], desc->arg))
			am = &m[i];
		else if (!other)
			other = &m[i];
	}
	if (id && id->type != JSON_NUMBER && id->type != JSON_STRING) {
		reply_error(&b, NULL, "id must be a number or a string", NULL, 0, "");
	} else if (other) {
		char usage[128];
		snprintf(usage, sizeof(usage), "\" (%s)",
			 desc ? desc->usage : "a request has \"op\" and optionally \"id\"");
		reply_error(&b, id, "unknown member \"", other->key, other->key_len, usage);
	} else if (!op) {
		reply_error(&b, id, "missing \"op\"", NULL, 0, "");
	} else if (op->type != JSON_STRING) {
		reply_error(&b, id, "\"op\" must be a string", NULL, 0, "");
	} else if (l < 0 || strlen(name) != (size_t)l) {
		reply_error(&b, id, "unknown op (use " OPS_LIST ")", NULL, 0, "");
	} else if (!desc) {
		reply_error(&b, id, "unknown op \"", name, l, "\" (use " OPS_LIST ")");
	} else if (desc->arg_required && !am) {
		reply_error(&b, id, "missing \"", desc->arg, strlen(desc->arg), "\"");
	} else if (run_op(&b, ops, arg, id, name, am) == -EINPROGRESS) {
		free(b.p);
		return -EINPROGRESS;
	}
out:
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*reply = b.p;
	return (int)b.len;
}

/* ---- the server ---- */

struct api_conn {
	struct api_server *srv;
	struct api_conn *next;
	int fd;
	/* One single-shot poll at a time (so that we choose POLLIN or
	 * POLLOUT each time) and the pause timer; the connection is freed once
	 * neither is in flight. */
	struct evloop_handler poll_h, timer_h;
	struct __kernel_timespec ts;
	int inflight;
	bool poll_armed;
	bool eof;		/* the peer will send no more */
	bool closing;		/* close once the reply is written */
	bool abort;		/* close even if the reply cannot be written now */
	bool waiting;		/* the first line waits for a pause to complete */
	bool dead;		/* closed; freed when nothing is in flight */
	char *out;		/* the reply being written */
	size_t out_len, out_off;
	size_t in_len;
	char in[API_LINE_MAX + 1];	/* a full line and its newline */
};

struct api_server {
	struct evloop *loop;
	const struct api_ops *ops;
	void *arg;
	int fd;
	struct evloop_watch listen;
	char *path;
	struct usock_id id;
	struct api_conn *conns;
	int nconns;
	unsigned log_count;
};

static void conn_run(struct api_conn *c);

static void conn_free(struct api_conn *c)
{
	struct api_server *srv = c->srv;

	for (struct api_conn **pp = &srv->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	srv->nconns--;
	close(c->fd);
	free(c->out);
	free(c);
}

/* Stop serving c; it is freed once its completions are in. */
static void conn_kill(struct api_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	shutdown(c->fd, SHUT_RDWR);
	if (c->poll_armed)
		io_uring_prep_poll_remove(evloop_sqe(c->srv->loop, NULL), (__u64)(uintptr_t)&c->poll_h);
	if (!c->inflight)
		conn_free(c);
}

static void conn_poll_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct api_conn *c = container_of(h, struct api_conn, poll_h);

	(void)flags;
	c->inflight--;
	c->poll_armed = false;
	if (c->dead) {
		if (!c->inflight)
			conn_free(c);
		return;
	}
	if (res < 0) {
		conn_kill(c);
		return;
	}
	conn_run(c);
}

static void conn_timer_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct api_conn *c = container_of(h, struct api_conn, timer_h);

	(void)res;
	(void)flags;
	c->inflight--;
	if (c->dead) {
		if (!c->inflight)
			conn_free(c);
		return;
	}
	c->waiting = false;
	conn_run(c);
}

static void conn_arm_poll(struct api_conn *c, uint32_t events)
{
	io_uring_prep_poll_add(evloop_sqe(c->srv->loop, &c->poll_h), c->fd, events);
	c->poll_armed = true;
	c->inflight++;
}

static void conn_arm_timer(struct api_conn *c)
{
	c->ts.tv_sec = 0;
	c->ts.tv_nsec = API_PAUSE_POLL_NS;
	io_uring_prep_timeout(evloop_sqe(c->srv->loop, &c->timer_h), &c->ts, 0, 0);
	c->waiting = true;
	c->inflight++;
}

/* Write what is left of the reply: 0 when done, -EAGAIN, or -errno. */
static int conn_flush(struct api_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		c->out_off += n;
	}
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	return 0;
}

static void conn_set_reply(struct api_conn *c, char *reply, size_t len)
{
	c->out = reply;
	c->out_len = len;
	c->out_off = 0;
}

/* Serve the buffered line at c->in[0..len) (+1 for its newline). */
static int conn_serve_line(struct api_conn *c, size_t len, bool newline)
{
	char *reply;
	int n = api_handle_request(c->srv->ops, c->srv->arg, c->in, len, &reply);

	if (n == -EINPROGRESS)
		return n;
	if (newline)
		len++;
	memmove(c->in, c->in + len, c->in_len - len);
	c->in_len -= len;
	if (n < 0)
		return n;
	if (n > 0)
		conn_set_reply(c, reply, n);
	return 0;
}

/* Serve c as far as it goes without blocking, then wait for what it needs:
 * the socket writable (a reply is pending, or we yield), readable (no full
 * line buffered), or the pause timer. */
static void conn_run(struct api_conn *c)
{
	uint32_t want = POLLOUT;	/* to yield with lines still buffered */

	for (int served = 0; served < API_LINES_PER_RUN;) {
		char *nl;
		ssize_t n;
		int err;

		if (c->out) {
			err = conn_flush(c);
			if (err == -EAGAIN && !c->abort) {
				want = POLLOUT;
				break;
			}
			if (err < 0) {
				conn_kill(c);
				return;
			}
		}
		if (c->closing) {
			conn_kill(c);
			return;
		}
		nl = memchr(c->in, '\n', c->in_len);
		if (!nl && c->in_len == sizeof(c->in)) {
			static const char msg[] = "{\"ok\":false,\"error\":\"request line too long "
				"(at most " XSTR(API_LINE_MAX) " bytes); closing the connection\"}\n";
			char *reply = strdup(msg);
			if (!reply) {
				conn_kill(c);
				return;
			}
			conn_set_reply(c, reply, sizeof(msg) - 1);
			c->in_len = 0;
			c->closing = c->abort = true;
			continue;
		}
		if (nl || (c->eof && c->in_len)) {
			err = conn_serve_line(c, nl ? (size_t)(nl - c->in) : c->in_len, nl);
			if (err == -EINPROGRESS) {
				conn_arm_timer(c);
				return;
			}
			if (err < 0) {
				conn_kill(c);
				return;
			}
			served++;
			continue;
		}
		if (c->eof) {
			c->closing = true;
			continue;
		}
		n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
		if (n > 0) {
			c->in_len += n;
		} else if (n == 0) {
			c->eof = true;
		} else if (errno == EWOULDBLOCK) {
			want = POLLIN;
			break;
		} else if (errno != EINTR) {
			conn_kill(c);
			return;
		}
	}
	conn_arm_poll(c, want);
}

static void refuse(int fd)
{
	static const char msg[] = "{\"ok\":false,\"error\":\"too many connections "
		"(at most " XSTR(API_MAX_CONNS) ")\"}\n";

	if (send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* the peer goes away either way */
	}
	close(fd);
}

static void listen_cb(struct evloop_watch *w, uint32_t revents)
{
	struct api_server *srv = w->arg;

	(void)revents;
	for (;;) {
		struct api_conn *c;
		int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EWOULDBLOCK)
				log_ratelimited(&srv->log_count, "api", "accept: %s", strerror(errno));
			return;
		}
		if (srv->nconns >= API_MAX_CONNS) {
			refuse(fd);
			continue;
		}
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		memset(c, 0, offsetof(struct api_conn, in));
		c->srv = srv;
		c->fd = fd;
		c->poll_h.cb = conn_poll_done;
		c->timer_h.cb = conn_timer_done;
		c->next = srv->conns;
		srv->conns = c;
		srv->nconns++;
		conn_run(c);
	}
}

static int open_socket(struct api_server *srv, const char *path)
{
	int fd = usock_listen("api socket", path, API_BACKLOG, &srv->id);

	if (fd < 0)
		return fd;
	srv->fd = fd;
	srv->path = strdup(path);
	if (!srv->path) {
		usock_unlink(path, &srv->id);
		return cove_fail(-ENOMEM, "out of memory");
	}
	return 0;
}

int api_create(struct evloop *loop, const char *path, const struct api_ops *ops, void *arg,
	       struct api_server **out)
{
	struct api_server *srv = calloc(1, sizeof(*srv));
	int err;

	if (!srv)
		return cove_fail(-ENOMEM, "out of memory");
	srv->fd = -1;
	srv->loop = loop;
	srv->ops = ops;
	srv->arg = arg;
	err = open_socket(srv, path);
	if (err < 0) {
		api_destroy(srv);
		return err;
	}
	srv->listen.fd = srv->fd;
	srv->listen.events = POLLIN;
	srv->listen.cb = listen_cb;
	srv->listen.arg = srv;
	err = evloop_watch_start(loop, &srv->listen);
	if (err < 0) {
		api_destroy(srv);
		return cove_fail(err, "api socket %s: %s", path, strerror(-err));
	}
	*out = srv;
	return 0;
}

void api_destroy(struct api_server *srv)
{
	if (!srv)
		return;
	while (srv->conns)
		conn_free(srv->conns);
	if (srv->fd >= 0)
		close(srv->fd);
	if (srv->path)
		usock_unlink(srv->path, &srv->id);
	free(srv->path);
	free(srv);
}
