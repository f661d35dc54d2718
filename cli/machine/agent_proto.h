/* The wire protocol between cove (host) and the exec agent in a machine
 * (guest), over one vsock stream per request. Compiled into both; each
 * side treats the other as untrusted, so every frame is checked whole
 * before anything in it is used.
 *
 * A frame is an 8-byte header, le32 payload length, le16 type, le16 zero,
 * then the payload; integers are little-endian. A connection is:
 *
 *   host  HELLO(magic, min, max version)   guest HELLO(magic, v, v) or ERROR
 *   host  one request:
 *     EXEC      guest STDOUT/STDERR/EOF ... EXIT    host STDIN/EOF/RESIZE/SIGNAL
 *     POWEROFF  guest OK or ERROR
 *     GET_INFO  guest INFO or ERROR
 *
 * Payloads:
 *   HELLO     u32 magic AGENT_MAGIC, u16 min version, u16 max version
 *   EXEC      u32 flags (AGENT_EXEC_*), u32 uid, u32 gid, u16 rows, u16 cols,
 *             str user, str cwd, u32 argc, argc x str, u32 envc, envc x str
 *             (str = u32 length + bytes, no NUL; user "" = by uid/gid;
 *             cwd "" = the user's home; argc 0 = the user's login shell;
 *             rows and cols are 0 unless AGENT_EXEC_TTY)
 *   STDIN, STDOUT, STDERR   1..AGENT_DATA_MAX bytes
 *   EOF       u8 stream (0 stdin, 1 stdout, 2 stderr)
 *   RESIZE    u16 rows, u16 cols (both >= 1)
 *   SIGNAL    u32 signal (1..AGENT_SIG_MAX)
 *   EXIT      u32 code, u32 signal: signal 0 = exited with code (<= 255),
 *             else killed by that signal (code 0)
 *   ERROR     u32 errno (1..4095), message (printable, < AGENT_ERROR_MAX)
 *   INFO      u8[4] eth0 IPv4 (0.0.0.0: none), u32 zero, u64 memory total,
 *             u64 memory available, u64 root fs size, u64 root fs used
 *             (all KiB), u32 load average x 100 for 1, 5 and 15 minutes
 *   POWEROFF, GET_INFO, OK: empty
 */
#ifndef COVE_AGENT_PROTO_H
#define COVE_AGENT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AGENT_PORT		1024		/* vsock port the agent listens on */
#define AGENT_MAGIC		0x45564f43u	/* "COVE" */
#define AGENT_VERSION		1
#define AGENT_HDR_SIZE		8
#define AGENT_DATA_MAX		(32u << 10)	/* bytes in one STDIN/STDOUT/STDERR */
#define AGENT_EXEC_MAX		(1u << 20)	/* payload of one EXEC */
#define AGENT_ARG_MAX		(128u << 10)	/* one argv or env string (Linux's
						   MAX_ARG_STRLEN, NUL included) */
#define AGENT_ARGC_MAX		65536
#define AGENT_ENVC_MAX		4096
#define AGENT_USER_MAX		32		/* user name length */
#define AGENT_PATH_MAX		4096		/* cwd length, NUL included */
#define AGENT_ERROR_MAX		256		/* ERROR message, NUL included */
#define AGENT_SIG_MAX		64

enum agent_type {
	AGENT_HELLO = 1,
	AGENT_EXEC,
	AGENT_POWEROFF,
	AGENT_GET_INFO,
	AGENT_INFO,
	AGENT_STDIN,
	AGENT_STDOUT,
	AGENT_STDERR,
	AGENT_EOF,
	AGENT_RESIZE,
	AGENT_SIGNAL,
	AGENT_EXIT,
	AGENT_OK,
	AGENT_ERROR,
};

enum agent_stream {
	AGENT_STREAM_STDIN,
	AGENT_STREAM_STDOUT,
	AGENT_STREAM_STDERR,
};

#define AGENT_EXEC_TTY		1u	/* a PTY in the guest */
#define AGENT_EXEC_STDIN	2u	/* STDIN frames follow; else stdin is /dev/null */

/* An exec request. Encoded from the caller's pointers; decoded into one
 * allocation (free() it) where user and cwd are NULL when not given, argv
 * is NULL for the login shell and env is always a (maybe empty) list. */
struct agent_exec_msg {
	uint32_t flags;
	uint32_t uid, gid;		/* used when user is NULL */
	uint16_t rows, cols;		/* window size with AGENT_EXEC_TTY */
	const char *user;
	const char *cwd;
	char *const *argv;		/* NULL-terminated */
	char *const *env;		/* NULL-terminated "K=V", or NULL: none */
};

/* What the host shows about a running machine. */
struct agent_info {
	char ipv4[16];			/* eth0's IPv4 address, dotted, or "" */
	uint64_t mem_total_kib, mem_available_kib;
	uint64_t disk_total_kib, disk_used_kib;	/* the root filesystem */
	double load[3];			/* 1, 5 and 15 minute load averages */
};

/* Frames to send, appended to a growing buffer and written out by
 * agent_wbuf_flush. */
struct agent_wbuf {
	uint8_t *data;
	size_t off, len, cap;		/* unsent bytes are [off, len) */
};

/* Received bytes, cut into frames by agent_rbuf_next. */
struct agent_rbuf {
	uint8_t *data;
	size_t off, len, cap;		/* unparsed bytes are [off, len) */
	uint32_t exec_max;		/* the largest EXEC payload accepted: 0
					   (the host side) or AGENT_EXEC_MAX */
};

struct agent_frame {
	uint16_t type;			/* enum agent_type */
	uint32_t len;
	const uint8_t *payload;		/* valid until the next agent_rbuf_* call */
};

/* Whether a frame of this type may carry len payload bytes. Pure. */
bool agent_frame_len_ok(uint16_t type, uint32_t len, uint32_t exec_max);

/* Unsent bytes in w. */
static inline size_t agent_wbuf_pending(const struct agent_wbuf *w)
{
	return w->len - w->off;
}

/* Encoders: append one frame to w. 0, -EINVAL for a value the decoder
 * would refuse (same rules), -E2BIG for an EXEC over AGENT_EXEC_MAX, or
 * -ENOMEM. Any thread; a buffer is used by one thread. */
int agent_put_hello(struct agent_wbuf *w, uint16_t min, uint16_t max);
int agent_put_exec(struct agent_wbuf *w, const struct agent_exec_msg *m);
/* type STDIN, STDOUT or STDERR with 1..AGENT_DATA_MAX bytes */
int agent_put_data(struct agent_wbuf *w, uint16_t type, const void *buf, size_t len);
int agent_put_eof(struct agent_wbuf *w, enum agent_stream s);
int agent_put_resize(struct agent_wbuf *w, uint16_t rows, uint16_t cols);
int agent_put_signal(struct agent_wbuf *w, uint32_t sig);
/* exited with code (sig 0) or killed by sig (code 0) */
int agent_put_exit(struct agent_wbuf *w, uint32_t code, uint32_t sig);
/* err is a positive errno; msg is cut to fit and its unprintable bytes
 * replaced by '?' */
int agent_put_error(struct agent_wbuf *w, int err, const char *msg);
int agent_put_info(struct agent_wbuf *w, const struct agent_info *in);
/* type POWEROFF, GET_INFO or OK */
int agent_put_empty(struct agent_wbuf *w, uint16_t type);

/* Write what w holds to fd (non-blocking or not; a socket gets no
 * SIGPIPE) until done or the fd would block. 0 (check agent_wbuf_pending),
 * or -errno from the write (never -EAGAIN or -EINTR). */
int agent_wbuf_flush(struct agent_wbuf *w, int fd);
void agent_wbuf_free(struct agent_wbuf *w);

/* Read what fd has (one read). >0 bytes read, 0 at end of stream, or
 * -errno (-EAGAIN when a non-blocking fd has nothing). -ENOMEM when the
 * buffer cannot grow. Any thread; one thread per buffer. */
ssize_t agent_rbuf_fill(struct agent_rbuf *r, int fd);
/* Take the next whole frame: 1 with *f set (payload valid until the next
 * call on r), 0 when more bytes are needed, -EPROTO for a header no frame
 * may have (unknown type, reserved bits, a length out of bounds for the
 * type). Checks the header only: the agent_get_* decoders check payloads. */
int agent_rbuf_next(struct agent_rbuf *r, struct agent_frame *f);
void agent_rbuf_free(struct agent_rbuf *r);

/* Decoders: check f's type and its whole payload. 0 or -EPROTO. Pure. */
int agent_get_hello(const struct agent_frame *f, uint16_t *min, uint16_t *max);
/* *out is one allocation (free()); -ENOMEM too */
int agent_get_exec(const struct agent_frame *f, struct agent_exec_msg **out);
int agent_get_eof(const struct agent_frame *f, enum agent_stream *s);
int agent_get_resize(const struct agent_frame *f, uint16_t *rows, uint16_t *cols);
int agent_get_signal(const struct agent_frame *f, uint32_t *sig);
int agent_get_exit(const struct agent_frame *f, uint32_t *code, uint32_t *sig);
/* msg gets the NUL-terminated message, cut to size */
int agent_get_error(const struct agent_frame *f, int *err, char *msg, size_t size);
int agent_get_info(const struct agent_frame *f, struct agent_info *out);

/* The version both speak, from the peer's [min, max] and AGENT_VERSION:
 * it, or -EPROTONOSUPPORT. Pure. */
int agent_version_pick(uint16_t min, uint16_t max);

#endif
