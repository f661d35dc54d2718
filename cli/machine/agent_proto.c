#include "agent_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#define EXEC_FIXED	32	/* flags uid gid rows cols user-len cwd-len argc; envc */
#define INFO_SIZE	52
#define RBUF_MIN	(AGENT_HDR_SIZE + AGENT_DATA_MAX + 1024)

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static uint16_t get16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

bool agent_frame_len_ok(uint16_t type, uint32_t len, uint32_t exec_max)
{
	switch (type) {
	case AGENT_HELLO:
		return len == 8;
	case AGENT_EXEC:
		return len >= EXEC_FIXED && len <= exec_max;
	case AGENT_POWEROFF:
	case AGENT_GET_INFO:
	case AGENT_OK:
		return len == 0;
	case AGENT_INFO:
		return len == INFO_SIZE;
	case AGENT_STDIN:
	case AGENT_STDOUT:
	case AGENT_STDERR:
		return len >= 1 && len <= AGENT_DATA_MAX;
	case AGENT_EOF:
		return len == 1;
	case AGENT_RESIZE:
	case AGENT_SIGNAL:
		return len == 4;
	case AGENT_EXIT:
		return len == 8;
	case AGENT_ERROR:
		return len >= 4 && len < 4 + AGENT_ERROR_MAX;
	default:
		return false;
	}
}

/* Room for a frame of len payload bytes at the end of w; returns where
 * the payload goes, the header written. */
static uint8_t *wbuf_frame(struct agent_wbuf *w, uint16_t type, size_t len)
{
	size_t need = AGENT_HDR_SIZE + len;
	uint8_t *p;

	if (w->off == w->len)
		w->off = w->len = 0;
	if (w->cap - w->len < need) {
		size_t cap = w->cap ? w->cap : 4096;

		if (w->off) {		/* slide the unsent bytes down first */
			memmove(w->data, w->data + w->off, w->len - w->off);
			w->len -= w->off;
			w->off = 0;
		}
		while (cap - w->len < need)
			cap *= 2;
		if (cap != w->cap) {
			p = realloc(w->data, cap);
			if (!p)
				return NULL;
			w->data = p;
			w->cap = cap;
		}
	}
	p = w->data + w->len;
	put32(p, len);
	put16(p + 4, type);
	put16(p + 6, 0);
	w->len += need;
	return p + AGENT_HDR_SIZE;
}

static int put_fixed(struct agent_wbuf *w, uint16_t type, const uint8_t *payload, size_t len)
{
	uint8_t *p = wbuf_frame(w, type, len);

	if (!p)
		return -ENOMEM;
	memcpy(p, payload, len);
	return 0;
}

int agent_put_hello(struct agent_wbuf *w, uint16_t min, uint16_t max)
{
	uint8_t p[8];

	if (!min || min > max)
		return -EINVAL;
	put32(p, AGENT_MAGIC);
	put16(p + 4, min);
	put16(p + 6, max);
	return put_fixed(w, AGENT_HELLO, p, sizeof(p));
}

/* The rules an exec request's strings follow, shared by encoder and
 * decoder. */
static bool user_ok(const char *s, size_t len)
{
	if (len > AGENT_USER_MAX || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || (c == '$' && i == len - 1)))
			return false;
	}
	return true;
}

static bool cwd_ok(const char *s, size_t len)
{
	return s[0] == '/' && len < AGENT_PATH_MAX;
}

static bool env_ok(const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len);

	return eq && eq != s;
}

static bool str_ok(const char *s, size_t len)
{
	return len < AGENT_ARG_MAX && !memchr(s, '\0', len);
}

static size_t list_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	put32(p, n);
	if (n)
		memcpy(p + 4, s, n);
	return p + 4 + n;
}

int agent_put_exec(struct agent_wbuf *w, const struct agent_exec_msg *m)
{
	size_t argc = list_len(m->argv), envc = list_len(m->env);
	size_t size = EXEC_FIXED, n;
	bool tty = m->flags & AGENT_EXEC_TTY;
	uint8_t *p;

	if (m->flags & ~(AGENT_EXEC_TTY | AGENT_EXEC_STDIN))
		return -EINVAL;
	if (tty ? !m->rows || !m->cols : m->rows || m->cols)
		return -EINVAL;
	if (m->user) {
		n = strlen(m->user);
		if (!n || !user_ok(m->user, n))
			return -EINVAL;
		size += n;
	}
	if (m->cwd) {
		n = strlen(m->cwd);
		if (!n || !cwd_ok(m->cwd, n))
			return -EINVAL;
		size += n;
	}
	if ((m->argv && (!argc || !m->argv[0][0])) || argc > AGENT_ARGC_MAX ||
	    envc > AGENT_ENVC_MAX)
		return -EINVAL;
	for (size_t i = 0; i < argc + envc; i++) {
		const char *s = i < argc ? m->argv[i] : m->env[i - argc];

		n = strlen(s);
		if (n >= AGENT_ARG_MAX || (i >= argc && !env_ok(s, n)))
			return -EINVAL;
		size += 4 + n;
		if (size > AGENT_EXEC_MAX)
			return -E2BIG;
	}
	p = wbuf_frame(w, AGENT_EXEC, size);
	if (!p)
		return -ENOMEM;
	put32(p, m->flags);
	put32(p + 4, m->uid);
	put32(p + 8, m->gid);
	put16(p + 12, m->rows);
	put16(p + 14, m->cols);
	p = put_str(p + 16, m->user);
	p = put_str(p, m->cwd);
	put32(p, argc);
	p += 4;
	for (size_t i = 0; i < argc; i++)
		p = put_str(p, m->argv[i]);
	put32(p, envc);
	p += 4;
	for (size_t i = 0; i < envc; i++)
		p = put_str(p, m->env[i]);
	return 0;
}

int agent_put_data(struct agent_wbuf *w, uint16_t type, const void *buf, size_t len)
{
	if ((type != AGENT_STDIN && type != AGENT_STDOUT && type != AGENT_STDERR) ||
	    !agent_frame_len_ok(type, len, 0))
		return -EINVAL;
	return put_fixed(w, type, buf, len);
}

int agent_put_eof(struct agent_wbuf *w, enum agent_stream s)
{
	uint8_t p = s;

	if (s > AGENT_STREAM_STDERR)
		return -EINVAL;
	return put_fixed(w, AGENT_EOF, &p, 1);
}

int agent_put_resize(struct agent_wbuf *w, uint16_t rows, uint16_t cols)
{
	uint8_t p[4];

	if (!rows || !cols)
		return -EINVAL;
	put16(p, rows);
	put16(p + 2, cols);
	return put_fixed(w, AGENT_RESIZE, p, sizeof(p));
}

int agent_put_signal(struct agent_wbuf *w, uint32_t sig)
{
	uint8_t p[4];

	if (!sig || sig > AGENT_SIG_MAX)
		return -EINVAL;
	put32(p, sig);
	return put_fixed(w, AGENT_SIGNAL, p, sizeof(p));
}

static bool exit_ok(uint32_t code, uint32_t sig)
{
	return sig ? sig <= AGENT_SIG_MAX && !code : code <= 255;
}

int agent_put_exit(struct agent_wbuf *w, uint32_t code, uint32_t sig)
{
	uint8_t p[8];

	if (!exit_ok(code, sig))
		return -EINVAL;
	put32(p, code);
	put32(p + 4, sig);
	return put_fixed(w, AGENT_EXIT, p, sizeof(p));
}

static bool printable(uint8_t c)
{
	return c >= 0x20 && c != 0x7f;
}

int agent_put_error(struct agent_wbuf *w, int err, const char *msg)
{
	size_t n = strnlen(msg, AGENT_ERROR_MAX - 1);
	uint8_t *p;

	if (err <= 0 || err > 4095)
		return -EINVAL;
	p = wbuf_frame(w, AGENT_ERROR, 4 + n);
	if (!p)
		return -ENOMEM;
	put32(p, err);
	for (size_t i = 0; i < n; i++)
		p[4 + i] = printable(msg[i]) ? msg[i] : '?';
	return 0;
}

int agent_put_info(struct agent_wbuf *w, const struct agent_info *in)
{
	uint8_t p[INFO_SIZE] = { 0 };
	unsigned a[4];
	char end;

	if (in->ipv4[0]) {
		if (sscanf(in->ipv4, "%3u.%3u.%3u.%3u%c", &a[0], &a[1], &a[2], &a[3], &end) != 4 ||
		    a[0] > 255 || a[1] > 255 || a[2] > 255 || a[3] > 255)
			return -EINVAL;
		for (int i = 0; i < 4; i++)
			p[i] = a[i];
	}
	if (in->mem_available_kib > in->mem_total_kib || in->disk_used_kib > in->disk_total_kib)
		return -EINVAL;
	put64(p + 8, in->mem_total_kib);
	put64(p + 16, in->mem_available_kib);
	put64(p + 24, in->disk_total_kib);
	put64(p + 32, in->disk_used_kib);
	for (int i = 0; i < 3; i++) {
		double l = in->load[i] * 100 + 0.5;

		if (!(l >= 0 && l < 4294967296.0))	/* NaN too */
			return -EINVAL;
		put32(p + 40 + 4 * i, (uint32_t)l);
	}
	return put_fixed(w, AGENT_INFO, p, sizeof(p));
}

int agent_put_empty(struct agent_wbuf *w, uint16_t type)
{
	if (type != AGENT_POWEROFF && type != AGENT_GET_INFO && type != AGENT_OK)
		return -EINVAL;
	return wbuf_frame(w, type, 0) ? 0 : -ENOMEM;
}

int agent_wbuf_flush(struct agent_wbuf *w, int fd)
{
	while (w->off < w->len) {
		ssize_t n = send(fd, w->data + w->off, w->len - w->off, MSG_NOSIGNAL);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, w->data + w->off, w->len - w->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		w->off += n;
	}
	w->off = w->len = 0;
	return 0;
}

void agent_wbuf_free(struct agent_wbuf *w)
{
	free(w->data);
	*w = (struct agent_wbuf){ 0 };
}

/* Make room for need more bytes after len (need fits the largest frame). */
static int rbuf_room(struct agent_rbuf *r, size_t need)
{
	size_t cap;
	uint8_t *p;

	if (r->off) {
		memmove(r->data, r->data + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->cap - r->len >= need)
		return 0;
	cap = r->len + need;
	if (cap < RBUF_MIN)
		cap = RBUF_MIN;
	p = realloc(r->data, cap);
	if (!p)
		return -ENOMEM;
	r->data = p;
	r->cap = cap;
	return 0;
}

ssize_t agent_rbuf_fill(struct agent_rbuf *r, int fd)
{
	size_t have = r->len - r->off, need = RBUF_MIN / 2;
	ssize_t n;
	int err;

	/* A frame bigger than the usual buffer (an EXEC) gets room for all
	 * of it, once its header is known to be one a frame may have. */
	if (have >= AGENT_HDR_SIZE) {
		const uint8_t *p = r->data + r->off;
		size_t whole = AGENT_HDR_SIZE + get32(p);

		if (agent_frame_len_ok(get16(p + 4), get32(p), r->exec_max) && whole > have &&
		    whole - have > need)
			need = whole - have;
	}
	err = rbuf_room(r, need);
	if (err)
		return err;
	do
		n = read(fd, r->data + r->len, r->cap - r->len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	r->len += n;
	return n;
}

int agent_rbuf_next(struct agent_rbuf *r, struct agent_frame *f)
{
	const uint8_t *p = r->data + r->off;
	size_t have = r->len - r->off;
	uint32_t len;
	uint16_t type;

	if (have < AGENT_HDR_SIZE)
		return 0;
	len = get32(p);
	type = get16(p + 4);
	if (get16(p + 6) || !agent_frame_len_ok(type, len, r->exec_max))
		return -EPROTO;
	if (have - AGENT_HDR_SIZE < len)
		return 0;
	f->type = type;
	f->len = len;
	f->payload = p + AGENT_HDR_SIZE;
	r->off += AGENT_HDR_SIZE + len;
	return 1;
}

void agent_rbuf_free(struct agent_rbuf *r)
{
	free(r->data);
	r->data = NULL;
	r->off = r->len = r->cap = 0;
}

static bool frame_is(const struct agent_frame *f, uint16_t type)
{
	return f->type == type && agent_frame_len_ok(type, f->len, AGENT_EXEC_MAX);
}

int agent_get_hello(const struct agent_frame *f, uint16_t *min, uint16_t *max)
{
	if (!frame_is(f, AGENT_HELLO) || get32(f->payload) != AGENT_MAGIC)
		return -EPROTO;
	*min = get16(f->payload + 4);
	*max = get16(f->payload + 6);
	if (!*min || *min > *max)
		return -EPROTO;
	return 0;
}

int agent_version_pick(uint16_t min, uint16_t max)
{
	if (min > AGENT_VERSION || max < AGENT_VERSION)
		return -EPROTONOSUPPORT;
	return AGENT_VERSION;
}

/* A bounds-checked reader of a payload. */
struct cursor {
	const uint8_t *p;
	size_t left;
};

static bool take32(struct cursor *c, uint32_t *v)
{
	if (c->left < 4)
		return false;
	*v = get32(c->p);
	c->p += 4;
	c->left -= 4;
	return true;
}

/* A string: its bytes in *s (not NUL-terminated), its length in *len. */
static bool take_str(struct cursor *c, const char **s, uint32_t *len)
{
	if (!take32(c, len) || *len > c->left || !str_ok((const char *)c->p, *len))
		return false;
	*s = (const char *)c->p;
	c->p += *len;
	c->left -= *len;
	return true;
}

/* Walk a list of argc strings, checking each; the bytes they need with
 * their NULs added to *bytes. */
static bool walk_list(struct cursor *c, uint32_t n, bool env, size_t *bytes)
{
	for (uint32_t i = 0; i < n; i++) {
		const char *s;
		uint32_t len;

		if (!take_str(c, &s, &len) || (env && !env_ok(s, len)) || (!env && !i && !len))
			return false;
		*bytes += len + 1;
	}
	return true;
}

static char *copy_str(char **dst, const char *s, uint32_t len)
{
	char *at = *dst;

	memcpy(at, s, len);
	at[len] = '\0';
	*dst += len + 1;
	return at;
}

int agent_get_exec(const struct agent_frame *f, struct agent_exec_msg **out)
{
	struct cursor c = { f->payload, f->len }, list;
	const char *user, *cwd;
	uint32_t flags, ulen, clen, argc, envc;
	struct agent_exec_msg *m;
	size_t bytes = 0, size;
	uint16_t rows, cols;
	char **argv, **env, *str;
	bool tty;

	if (!frame_is(f, AGENT_EXEC))
		return -EPROTO;
	flags = get32(c.p);
	rows = get16(c.p + 12);
	cols = get16(c.p + 14);
	tty = flags & AGENT_EXEC_TTY;
	if (flags & ~(AGENT_EXEC_TTY | AGENT_EXEC_STDIN) || (tty ? !rows || !cols : rows || cols))
		return -EPROTO;
	c.p += 16;
	c.left -= 16;
	if (!take_str(&c, &user, &ulen) || (ulen && !user_ok(user, ulen)) ||
	    !take_str(&c, &cwd, &clen) || (clen && !cwd_ok(cwd, clen)))
		return -EPROTO;
	if (!take32(&c, &argc) || argc > AGENT_ARGC_MAX)
		return -EPROTO;
	list = c;
	if (!walk_list(&c, argc, false, &bytes) || !take32(&c, &envc) || envc > AGENT_ENVC_MAX ||
	    !walk_list(&c, envc, true, &bytes) || c.left)
		return -EPROTO;

	size = sizeof(*m) + (argc + 1 + envc + 1) * sizeof(char *) + ulen + 1 + clen + 1 + bytes;
	m = malloc(size);
	if (!m)
		return -ENOMEM;
	argv = (char **)(m + 1);
	env = argv + argc + 1;
	str = (char *)(env + envc + 1);
	*m = (struct agent_exec_msg){
		.flags = flags,
		.uid = get32(f->payload + 4),
		.gid = get32(f->payload + 8),
		.rows = rows,
		.cols = cols,
		.user = ulen ? copy_str(&str, user, ulen) : NULL,
		.cwd = clen ? copy_str(&str, cwd, clen) : NULL,
		.argv = argc ? argv : NULL,
		.env = env,
	};
	/* Second pass over what walk_list checked. */
	for (uint32_t i = 0; i < argc + envc; i++) {
		const char *s;
		uint32_t len;

		if (i == argc)
			take32(&list, &len);	/* envc */
		take_str(&list, &s, &len);
		if (i < argc)
			argv[i] = copy_str(&str, s, len);
		else
			env[i - argc] = copy_str(&str, s, len);
	}
	argv[argc] = NULL;
	env[envc] = NULL;
	*out = m;
	return 0;
}

int agent_get_eof(const struct agent_frame *f, enum agent_stream *s)
{
	if (!frame_is(f, AGENT_EOF) || f->payload[0] > AGENT_STREAM_STDERR)
		return -EPROTO;
	*s = f->payload[0];
	return 0;
}

int agent_get_resize(const struct agent_frame *f, uint16_t *rows, uint16_t *cols)
{
	if (!frame_is(f, AGENT_RESIZE))
		return -EPROTO;
	*rows = get16(f->payload);
	*cols = get16(f->payload + 2);
	return *rows && *cols ? 0 : -EPROTO;
}

int agent_get_signal(const struct agent_frame *f, uint32_t *sig)
{
	if (!frame_is(f, AGENT_SIGNAL))
		return -EPROTO;
	*sig = get32(f->payload);
	return *sig && *sig <= AGENT_SIG_MAX ? 0 : -EPROTO;
}

int agent_get_exit(const struct agent_frame *f, uint32_t *code, uint32_t *sig)
{
	if (!frame_is(f, AGENT_EXIT))
		return -EPROTO;
	*code = get32(f->payload);
	*sig = get32(f->payload + 4);
	return exit_ok(*code, *sig) ? 0 : -EPROTO;
}

int agent_get_error(const struct agent_frame *f, int *err, char *msg, size_t size)
{
	uint32_t e, n;

	if (!frame_is(f, AGENT_ERROR) || !size)
		return -EPROTO;
	e = get32(f->payload);
	n = f->len - 4;
	if (!e || e > 4095)
		return -EPROTO;
	for (uint32_t i = 0; i < n; i++)
		if (!printable(f->payload[4 + i]))
			return -EPROTO;
	*err = e;
	if (n >= size)
		n = size - 1;
	memcpy(msg, f->payload + 4, n);
	msg[n] = '\0';
	return 0;
}

int agent_get_info(const struct agent_frame *f, struct agent_info *out)
{
	const uint8_t *p = f->payload;
	struct agent_info in = { 0 };

	if (!frame_is(f, AGENT_INFO) || get32(p + 4))
		return -EPROTO;
	if (get32(p))
		snprintf(in.ipv4, sizeof(in.ipv4), "%u.%u.%u.%u", p[0], p[1], p[2], p[3]);
	in.mem_total_kib = get64(p + 8);
	in.mem_available_kib = get64(p + 16);
	in.disk_total_kib = get64(p + 24);
	in.disk_used_kib = get64(p + 32);
	if (in.mem_available_kib > in.mem_total_kib || in.disk_used_kib > in.disk_total_kib)
		return -EPROTO;
	for (int i = 0; i < 3; i++)
		in.load[i] = get32(p + 40 + 4 * i) / 100.0;
	*out = in;
	return 0;
}
