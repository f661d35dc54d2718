/* Fuzz the agent protocol decoder: the input is a byte stream from the
 * peer (the guest, seen from the host, or the host, seen from the guest).
 * The first byte picks the side (whether EXEC may come). Nothing may
 * crash, leak, or read outside the input, and every frame that decodes
 * encodes back to the same bytes (the encoding is canonical). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Re-encode a decoded frame; returns 1 if it decoded. */
static int reencode(const struct agent_frame *f, struct agent_wbuf *w)
{
	struct agent_exec_msg *m;
	struct agent_info info;
	enum agent_stream s;
	char msg[AGENT_ERROR_MAX];
	uint16_t a, b;
	uint32_t x, y;
	int err;

	switch (f->type) {
	case AGENT_HELLO:
		if (agent_get_hello(f, &a, &b))
			return 0;
		agent_version_pick(a, b);
		return !agent_put_hello(w, a, b);
	case AGENT_EXEC:
		if (agent_get_exec(f, &m))
			return 0;
		err = agent_put_exec(w, m);
		free(m);
		return !err;
	case AGENT_STDIN:
	case AGENT_STDOUT:
	case AGENT_STDERR:
		return !agent_put_data(w, f->type, f->payload, f->len);
	case AGENT_EOF:
		return !agent_get_eof(f, &s) && !agent_put_eof(w, s);
	case AGENT_RESIZE:
		return !agent_get_resize(f, &a, &b) && !agent_put_resize(w, a, b);
	case AGENT_SIGNAL:
		return !agent_get_signal(f, &x) && !agent_put_signal(w, x);
	case AGENT_EXIT:
		return !agent_get_exit(f, &x, &y) && !agent_put_exit(w, x, y);
	case AGENT_ERROR:
		return !agent_get_error(f, &err, msg, sizeof(msg)) && !agent_put_error(w, err, msg);
	case AGENT_INFO:
		return !agent_get_info(f, &info) && !agent_put_info(w, &info);
	default:
		return !agent_put_empty(w, f->type);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_rbuf r = { 0 };
	struct agent_frame f;
	int p[2], rc = 0;

	if (size < 1 || size > 60000)
		return 0;
	r.exec_max = data[0] & 1 ? AGENT_EXEC_MAX : 0;
	if (pipe2(p, O_NONBLOCK))
		return 0;
	if (write(p[1], data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	close(p[1]);
	for (;;) {
		ssize_t n = agent_rbuf_fill(&r, p[0]);

		while ((rc = agent_rbuf_next(&r, &f)) == 1) {
			struct agent_wbuf w = { 0 };

			if (reencode(&f, &w) &&
			    (w.len != AGENT_HDR_SIZE + f.len ||
			     memcmp(w.data + AGENT_HDR_SIZE, f.payload, f.len)))
				abort();
			agent_wbuf_free(&w);
		}
		if (n <= 0 || rc < 0)
			break;
	}
	close(p[0]);
	agent_rbuf_free(&r);
	return 0;
}
