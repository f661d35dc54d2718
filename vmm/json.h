/* A small strict JSON reader for one-line request objects, and a string
 * quoter for replies. The reader takes untrusted bytes: it validates the
 * whole input (RFC 8259 grammar, UTF-8, escapes, nesting) without
 * recursion and never reads outside the given length. */
#ifndef COVE_JSON_H
#define COVE_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH	32	/* the top-level object counts as 1 */
#define JSON_KEY_MAX	64	/* decoded key bytes, including a final NUL */

enum json_type {
	JSON_NULL,
	JSON_FALSE,
	JSON_TRUE,
	JSON_NUMBER,
	JSON_STRING,
	JSON_ARRAY,
	JSON_OBJECT,
};

struct json_member {
	char key[JSON_KEY_MAX];		/* decoded, NUL-terminated */
	size_t key_len;			/* may be < strlen if the key holds \u0000 */
	enum json_type type;
	const char *value;		/* the value's text in the input (strings */
	size_t value_len;		/* with their quotes, containers whole) */
};

struct json_error {
	size_t offset;			/* byte where the input went wrong */
	const char *msg;		/* static, e.g. "duplicate key" */
};

/* Parse s[0..len) as exactly one JSON object, whitespace allowed around
 * it, into members[0..max) in input order; nested arrays and objects are
 * validated and left as text. Checks the grammar, UTF-8 in strings, every
 * escape (\uXXXX with paired surrogates), nesting up to JSON_MAX_DEPTH,
 * keys shorter than JSON_KEY_MAX once decoded, no duplicate keys, at most
 * max members, nothing after the object. NUL bytes are errors. Returns the
 * member count, or -EINVAL with *err (if given) saying what and where.
 * Pure; any thread. */
int json_parse_object(const char *s, size_t len, struct json_member *members, int max,
		      struct json_error *err);

/* Decode a string value as json_parse_object left it (text with quotes)
 * into buf, NUL-terminated. Returns the decoded length, -ENOSPC if it does
 * not fit in size - 1 bytes, -EINVAL if the text is not a valid string.
 * Pure; any thread. */
int json_string_decode(const char *text, size_t len, char *buf, size_t size);

/* Write s[0..len) as a JSON string (quotes, escapes for '"', '\\' and
 * control characters; other bytes as they are) into out, truncated to
 * size - 1 bytes and NUL-terminated when size > 0, like snprintf. Returns
 * the untruncated length. Pure; any thread. */
size_t json_quote(char *out, size_t size, const char *s, size_t len);

/* Length of the well-formed UTF-8 sequence at s (avail >= 1 bytes there;
 * no overlongs, no surrogates, at most U+10FFFF), or 0. Pure. */
size_t json_utf8_len(const unsigned char *s, size_t avail);

/* Encode code point cp (at most U+10FFFF) as UTF-8 at out[n], storing
 * only the bytes below size (out may be NULL to measure). Returns its
 * length. Pure. */
size_t json_utf8_put(char *out, size_t size, size_t n, uint32_t cp);

#endif
