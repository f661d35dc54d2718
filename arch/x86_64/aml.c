/* ACPI Machine Language encoding (ACPI 6.x, chapter 20) for the few
 * constructs a DSDT for virtio-mmio, a UART and pvpanic needs. */
#include "aml.h"

#include <errno.h>
#include <string.h>

#define ZERO_OP		0x00
#define ONE_OP		0x01
#define NAME_OP		0x08
#define BYTE_PREFIX	0x0a
#define WORD_PREFIX	0x0b
#define DWORD_PREFIX	0x0c
#define STRING_PREFIX	0x0d
#define QWORD_PREFIX	0x0e
#define SCOPE_OP	0x10
#define BUFFER_OP	0x11
#define PACKAGE_OP	0x12
#define METHOD_OP	0x14
#define DUAL_NAME	0x2e
#define MULTI_NAME	0x2f
#define EXT_OP		0x5b
#define DEVICE_OP	0x82		/* after EXT_OP */
#define NOTIFY_OP	0x86
#define ROOT_CHAR	'\\'

#define PKGLEN_MAX	0x0fffffff

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->cap = cap;
}

int aml_finish(const struct aml *a)
{
	if (a->err)
		return a->err;
	if (a->depth)
		return -EINVAL;
	return (int)a->len;
}

static void fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->err)
		return;
	if (n > a->cap - a->len) {
		fail(a, -ENOSPC);
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void le(struct aml *a, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		byte(a, (uint8_t)(v >> (8 * i)));
}

static int lead_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static int name_char(char c)
{
	return lead_char(c) || (c >= '0' && c <= '9');
}

void aml_namestring(struct aml *a, const char *path)
{
	char segs[255][4];
	int n = 0;

	if (*path == ROOT_CHAR) {
		byte(a, ROOT_CHAR);
		path++;
	}
	while (*path) {
		int i = 0;

		if (n == 255) {
			fail(a, -EINVAL);
			return;
		}
		for (; i < 4 && *path && *path != '.'; i++, path++) {
			if (i == 0 ? !lead_char(*path) : !name_char(*path)) {
				fail(a, -EINVAL);
				return;
			}
			segs[n][i] = *path;
		}
		if (i == 0 || (*path && *path != '.')) {
			fail(a, -EINVAL);
			return;
		}
		for (; i < 4; i++)
			segs[n][i] = '_';
		n++;
		if (*path == '.' && !*++path) {
			fail(a, -EINVAL);
			return;
		}
	}
	if (n == 0) {
		byte(a, 0x00);		/* NullName */
		return;
	}
	if (n == 2) {
		byte(a, DUAL_NAME);
	} else if (n > 2) {
		byte(a, MULTI_NAME);
		byte(a, (uint8_t)n);
	}
	aml_bytes(a, segs, (size_t)n * 4);
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		byte(a, ZERO_OP);
	} else if (v == 1) {
		byte(a, ONE_OP);
	} else if (v <= 0xff) {
		byte(a, BYTE_PREFIX);
		le(a, v, 1);
	} else if (v <= 0xffff) {
		byte(a, WORD_PREFIX);
		le(a, v, 2);
	} else if (v <= 0xffffffff) {
		byte(a, DWORD_PREFIX);
		le(a, v, 4);
	} else {
		byte(a, QWORD_PREFIX);
		le(a, v, 8);
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7) {
		fail(a, -EINVAL);
		return;
	}
	/* Three letters in 5 bits each, then four hex digits; big-endian. */
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			fail(a, -EINVAL);
			return;
		}
		v = (v << 5) | (uint32_t)(id[i] - 0x40);
	}
	for (int i = 3; i < 7; i++) {
		int h = hexval(id[i]);

		if (h < 0) {
			fail(a, -EINVAL);
			return;
		}
		v = (v << 4) | (uint32_t)h;
	}
	aml_integer(a, __builtin_bswap32(v));
}

void aml_string(struct aml *a, const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x01 || (unsigned char)*p > 0x7f) {
			fail(a, -EINVAL);
			return;
		}
	byte(a, STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

void aml_name(struct aml *a, const char *path)
{
	byte(a, NAME_OP);
	aml_namestring(a, path);
}

static void open_pkg(struct aml *a, int is_buffer)
{
	if (a->depth == AML_MAX_DEPTH) {
		fail(a, -EINVAL);
		return;
	}
	a->open[a->depth].start = a->len;
	a->open[a->depth].is_buffer = is_buffer;
	a->depth++;
}

void aml_scope(struct aml *a, const char *path)
{
	byte(a, SCOPE_OP);
	open_pkg(a, 0);
	aml_namestring(a, path);
}

void aml_device(struct aml *a, const char *path)
{
	byte(a, EXT_OP);
	byte(a, DEVICE_OP);
	open_pkg(a, 0);
	aml_namestring(a, path);
}

void aml_method(struct aml *a, const char *name, uint8_t nargs)
{
	if (nargs > 7) {
		fail(a, -EINVAL);
		return;
	}
	byte(a, METHOD_OP);
	open_pkg(a, 0);
	aml_namestring(a, name);
	byte(a, nargs);		/* MethodFlags: not serialized, SyncLevel 0 */
}

void aml_notify(struct aml *a, const char *path, uint64_t value)
{
	byte(a, NOTIFY_OP);
	aml_namestring(a, path);
	aml_integer(a, value);
}

void aml_package(struct aml *a, uint8_t nelems)
{
	byte(a, PACKAGE_OP);
	open_pkg(a, 0);
	byte(a, nelems);
}

void aml_buffer(struct aml *a)
{
	byte(a, BUFFER_OP);
	open_pkg(a, 1);
}

int aml_pkglen_size(size_t n)
{
	for (int k = 1; k <= 4; k++) {
		size_t limit = k == 1 ? 0x3f : ((size_t)1 << (4 + 8 * (k - 1))) - 1;

		if (n <= limit - k)
			return k;
	}
	return 0;
}

void aml_close(struct aml *a)
{
	uint8_t prefix[4 + 9], size_enc[9];
	size_t start, body, plen = 0, slen = 0, total;
	int k;

	if (a->depth == 0) {
		fail(a, -EINVAL);
		return;
	}
	if (a->err)
		return;
	a->depth--;
	start = a->open[a->depth].start;
	body = a->len - start;

	/* A buffer's body starts with its size, an integer. */
	if (a->open[a->depth].is_buffer) {
		struct aml t;

		aml_init(&t, size_enc, sizeof(size_enc));
		aml_integer(&t, body);
		slen = t.len;
	}
	total = body + slen;
	k = aml_pkglen_size(total);
	if (k == 0 || total > PKGLEN_MAX) {
		fail(a, -EINVAL);
		return;
	}
	total += (size_t)k;	/* PkgLength counts its own bytes */
	if (k == 1) {
		prefix[plen++] = (uint8_t)total;
	} else {
		prefix[plen++] = (uint8_t)(((k - 1) << 6) | (total & 0x0f));
		for (int i = 1; i < k; i++)
			prefix[plen++] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	memcpy(prefix + plen, size_enc, slen);
	plen += slen;

	if (plen > a->cap - a->len) {
		fail(a, -ENOSPC);
		return;
	}
	memmove(a->buf + start + plen, a->buf + start, body);
	memcpy(a->buf + start, prefix, plen);
	a->len += plen;
}

void aml_res_memory32_fixed(struct aml *a, int writable, uint32_t base, uint32_t size)
{
	byte(a, 0x86);			/* large item, Memory32Fixed */
	le(a, 9, 2);
	byte(a, writable ? 1 : 0);
	le(a, base, 4);
	le(a, size, 4);
}

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	byte(a, 0x47);			/* small item, IO, 7 bytes */
	byte(a, 0x01);			/* 16-bit decode */
	le(a, min, 2);
	le(a, max, 2);
	byte(a, align);
	byte(a, len);
}

void aml_res_irq_edge_high(struct aml *a, uint32_t irq)
{
	byte(a, 0x89);			/* large item, Extended Interrupt */
	le(a, 6, 2);
	byte(a, 0x03);			/* consumer, edge, active high, exclusive */
	byte(a, 1);			/* one interrupt */
	le(a, irq, 4);
}

void aml_res_end(struct aml *a)
{
	byte(a, 0x79);			/* End Tag */
	byte(a, 0x00);			/* checksum 0: treated as valid */
}
