#include "json.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct jp {
	const unsigned char *s;
	size_t len, pos;
	const char *msg;
	size_t at;
};

/* A syntax error at the current position; at the end of the input that
 * is always a truncation. */
static int fail(struct jp *p, const char *msg)
{
	p->msg = p->pos >= p->len ? "unexpected end of input" : msg;
	p->at = p->pos;
	return -EINVAL;
}

static int fail_at(struct jp *p, size_t at, const char *msg)
{
	p->msg = msg;
	p->at = at;
	return -EINVAL;
}

static int peek(const struct jp *p)
{
	return p->pos < p->len ? p->s[p->pos] : -1;
}

static void skip_ws(struct jp *p)
{
	while (p->pos < p->len) {
		unsigned char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

size_t json_utf8_len(const unsigned char *s, size_t avail)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (avail < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Store byte c at out[n] if it fits in size. */
static void put(char *out, size_t size, size_t n, unsigned char c)
{
	if (out && n < size)
		out[n] = (char)c;
}

size_t json_utf8_put(char *out, size_t size, size_t n, uint32_t cp)
{
	if (cp < 0x80) {
		put(out, size, n, cp);
		return 1;
	}
	if (cp < 0x800) {
		put(out, size, n, 0xc0 | cp >> 6);
		put(out, size, n + 1, 0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		put(out, size, n, 0xe0 | cp >> 12);
		put(out, size, n + 1, 0x80 | ((cp >> 6) & 0x3f));
		put(out, size, n + 2, 0x80 | (cp & 0x3f));
		return 3;
	}
	put(out, size, n, 0xf0 | cp >> 18);
	put(out, size, n + 1, 0x80 | ((cp >> 12) & 0x3f));
	put(out, size, n + 2, 0x80 | ((cp >> 6) & 0x3f));
	put(out, size, n + 3, 0x80 | (cp & 0x3f));
	return 4;
}

/* Four hex digits at p->pos. */
static int hex4(struct jp *p, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		int c = peek(p);
		if (c >= '0' && c <= '9')
			v = v << 4 | (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = v << 4 | (c - 'A' + 10);
		else
			return fail(p, "invalid \\u escape");
		p->pos++;
	}
	*out = v;
	return 0;
}

/* At a backslash: one escape, as a code point. */
static int scan_escape(struct jp *p, uint32_t *cp)
{
	size_t at = p->pos;
	uint32_t lo;
	int c, err;

	p->pos++;
	c = peek(p);
	switch (c) {
	case '"': case '\\': case '/':
		*cp = c;
		break;
	case 'b':
		*cp = '\b';
		break;
	case 'f':
		*cp = '\f';
		break;
	case 'n':
		*cp = '\n';
		break;
	case 'r':
		*cp = '\r';
		break;
	case 't':
		*cp = '\t';
		break;
	case 'u':
		p->pos++;
		err = hex4(p, cp);
		if (err)
			return err;
		if (*cp >= 0xdc00 && *cp <= 0xdfff)
			return fail_at(p, at, "unpaired surrogate in \\u escape");
		if (*cp >= 0xd800 && *cp <= 0xdbff) {
			if (peek(p) != '\\')
				return p->pos >= p->len ? fail(p, "") :
					fail_at(p, at, "unpaired surrogate in \\u escape");
			p->pos++;
			if (peek(p) != 'u')
				return p->pos >= p->len ? fail(p, "") :
					fail_at(p, at, "unpaired surrogate in \\u escape");
			p->pos++;
			err = hex4(p, &lo);
			if (err)
				return err;
			if (lo < 0xdc00 || lo > 0xdfff)
				return fail_at(p, at, "unpaired surrogate in \\u escape");
			*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		return 0;
	default:
		return fail(p, "invalid escape in string");
	}
	p->pos++;
	return 0;
}

/* At an opening quote: check the string through its closing quote,
 * decoding it into out[0..size) when out is given. *n is the decoded
 * length, which may exceed size (the excess is not stored). */
static int scan_string(struct jp *p, char *out, size_t size, size_t *n)
{
	size_t len = 0;

	p->pos++;
	for (;;) {
		int c = peek(p);

		if (c < 0)
			return fail(p, "");
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20)
			return fail(p, "control character in string");
		if (c == '\\') {
			uint32_t cp;
			int err = scan_escape(p, &cp);
			if (err)
				return err;
			len += json_utf8_put(out, size, len, cp);
		} else if (c < 0x80) {
			put(out, size, len++, c);
			p->pos++;
		} else {
			size_t l = json_utf8_len(p->s + p->pos, p->len - p->pos);
			if (!l)
				return fail(p, "invalid UTF-8 in string");
			for (size_t i = 0; i < l; i++)
				put(out, size, len++, p->s[p->pos + i]);
			p->pos += l;
		}
	}
	*n = len;
	return 0;
}

static int scan_number(struct jp *p)
{
	if (peek(p) == '-')
		p->pos++;
	if (peek(p) == '0') {
		p->pos++;
	} else if (is_digit(peek(p))) {
		while (is_digit(peek(p)))
			p->pos++;
	} else {
		return fail(p, "invalid number");
	}
	if (peek(p) == '.') {
		p->pos++;
		if (!is_digit(peek(p)))
			return fail(p, "invalid number");
		while (is_digit(peek(p)))
			p->pos++;
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		p->pos++;
		if (peek(p) == '+' || peek(p) == '-')
			p->pos++;
		if (!is_digit(peek(p)))
			return fail(p, "invalid number");
		while (is_digit(peek(p)))
			p->pos++;
	}
	return 0;
}

static int scan_literal(struct jp *p, const char *word)
{
	for (; *word; word++) {
		if (peek(p) != *word)
			return fail(p, "invalid literal");
		p->pos++;
	}
	return 0;
}

/* A string, number or literal at p->pos. */
static int scan_scalar(struct jp *p)
{
	size_t n;

	switch (peek(p)) {
	case '"':
		return scan_string(p, NULL, 0, &n);
	case 't':
		return scan_literal(p, "true");
	case 'f':
		return scan_literal(p, "false");
	case 'n':
		return scan_literal(p, "null");
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return scan_number(p);
	default:
		return fail(p, "expected a value");
	}
}

/* Inside an object, at what should be a member: its key and the colon. */
static int scan_member_key(struct jp *p)
{
	size_t n;
	int err;

	if (peek(p) != '"')
		return fail(p, "expected a string key");
	err = scan_string(p, NULL, 0, &n);
	if (err)
		return err;
	skip_ws(p);
	if (peek(p) != ':')
		return fail(p, "expected ':'");
	p->pos++;
	skip_ws(p);
	return 0;
}

static enum json_type type_of(int c)
{
	switch (c) {
	case '"':
		return JSON_STRING;
	case '{':
		return JSON_OBJECT;
	case '[':
		return JSON_ARRAY;
	case 't':
		return JSON_TRUE;
	case 'f':
		return JSON_FALSE;
	case 'n':
		return JSON_NULL;
	default:
		return JSON_NUMBER;
	}
}

/* One value at p->pos inside a container at `depth`. Nested containers are
 * walked with an explicit stack, never by recursion. */
static int scan_value(struct jp *p, int depth)
{
	char stack[JSON_MAX_DEPTH];
	int sp = 0, err;

	for (;;) {
		/* Expecting a value. */
		int c = peek(p);
		if (c == '{' || c == '[') {
			if (depth + sp + 1 > JSON_MAX_DEPTH)
				return fail(p, "nesting too deep");
			stack[sp++] = (char)c;
			p->pos++;
			skip_ws(p);
			if (peek(p) == (c == '{' ? '}' : ']')) {
				p->pos++;
				sp--;
			} else {
				if (c == '{' && (err = scan_member_key(p)))
					return err;
				continue;
			}
		} else {
			err = scan_scalar(p);
			if (err)
				return err;
		}
		/* After a complete value: close containers or go to the next. */
		for (;;) {
			if (sp == 0)
				return 0;
			skip_ws(p);
			c = peek(p);
			if (c == ',') {
				p->pos++;
				skip_ws(p);
				if (stack[sp - 1] == '{' && (err = scan_member_key(p)))
					return err;
				break;
			}
			if (c != (stack[sp - 1] == '{' ? '}' : ']'))
				return fail(p, stack[sp - 1] == '{' ? "expected ',' or '}'" :
					    "expected ',' or ']'");
			p->pos++;
			sp--;
		}
	}
}

int json_parse_object(const char *s, size_t len, struct json_member *members, int max,
		      struct json_error *err)
{
	struct jp p = { .s = (const unsigned char *)s, .len = len };
	int n = 0, r;

	skip_ws(&p);
	if (peek(&p) != '{') {
		r = fail(&p, "expected '{'");
		goto out;
	}
	p.pos++;
	skip_ws(&p);
	if (peek(&p) == '}') {
		p.pos++;
		goto end;
	}
	for (;;) {
		char key[JSON_KEY_MAX];
		size_t key_at = p.pos, key_len, value_at;

		if (peek(&p) != '"') {
			r = fail(&p, "expected a string key");
			goto out;
		}
		r = scan_string(&p, key, sizeof(key) - 1, &key_len);
		if (r)
			goto out;
		if (key_len >= JSON_KEY_MAX) {
			r = fail_at(&p, key_at, "key too long");
			goto out;
		}
		key[key_len] = '\0';
		for (int i = 0; i < n; i++)
			if (members[i].key_len == key_len && !memcmp(members[i].key, key, key_len)) {
				r = fail_at(&p, key_at, "duplicate key");
				goto out;
			}
		if (n >= max) {
			r = fail_at(&p, key_at, "too many members");
			goto out;
		}
		skip_ws(&p);
		if (peek(&p) != ':') {
			r = fail(&p, "expected ':'");
			goto out;
		}
		p.pos++;
		skip_ws(&p);
		value_at = p.pos;
		r = scan_value(&p, 1);
		if (r)
			goto out;
		memcpy(members[n].key, key, key_len + 1);
		members[n].key_len = key_len;
		members[n].type = type_of(p.s[value_at]);
		members[n].value = s + value_at;
		members[n].value_len = p.pos - value_at;
		n++;
		skip_ws(&p);
		if (peek(&p) == ',') {
			p.pos++;
			skip_ws(&p);
			continue;
		}
		if (peek(&p) == '}') {
			p.pos++;
			break;
		}
		r = fail(&p, "expected ',' or '}'");
		goto out;
	}
end:
	skip_ws(&p);
	if (p.pos != p.len) {
		r = fail(&p, "trailing characters after the object");
		goto out;
	}
	return n;
out:
	if (err) {
		err->offset = p.at;
		err->msg = p.msg;
	}
	return r;
}

int json_string_decode(const char *text, size_t len, char *buf, size_t size)
{
	struct jp p = { .s = (const unsigned char *)text, .len = len };
	size_t n;

	if (!len || text[0] != '"' || scan_string(&p, buf, size ? size - 1 : 0, &n) || p.pos != len)
		return -EINVAL;
	if (n >= size || n > INT_MAX) {
		if (size)
			buf[size - 1] = '\0';
		return -ENOSPC;
	}
	buf[n] = '\0';
	return (int)n;
}

size_t json_quote(char *out, size_t size, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

#define PUT(ch) do { if (n + 1 < size) out[n] = (ch); n++; } while (0)
	PUT('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		switch (c) {
		case '"': case '\\':
			PUT('\\');
			PUT(c);
			break;
		case '\n':
			PUT('\\');
			PUT('n');
			break;
		case '\r':
			PUT('\\');
			PUT('r');
			break;
		case '\t':
			PUT('\\');
			PUT('t');
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				PUT('\\');
				PUT('u');
				PUT('0');
				PUT('0');
				PUT(hex[c >> 4]);
				PUT(hex[c & 15]);
			} else {
				PUT(c);
			}
		}
	}
	PUT('"');
#undef PUT
	if (size)
		out[n < size ? n : size - 1] = '\0';
	return n;
}
