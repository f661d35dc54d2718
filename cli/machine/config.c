#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "json.h"
#include "libcove.h"
#include "log.h"

#define CONFIG_FILE_MAX	(1 << 20)

void config_defaults(struct config *c)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	struct sysinfo si;
	uint64_t ram = 0;

	if (cores < 1)
		cores = 1;
	if (!sysinfo(&si))
		ram = (uint64_t)si.totalram * si.mem_unit;
	memset(c, 0, sizeof(*c));
	c->cpus = cores / 2 > (cores < 4 ? cores : 4) ? cores / 2 : (cores < 4 ? cores : 4);
	if (c->cpus > CONFIG_CPUS_MAX)
		c->cpus = CONFIG_CPUS_MAX;
	c->memory = (ram / 2) & ~((1ull << 20) - 1);
	if (c->memory < (1ull << 30))
		c->memory = 1ull << 30;
	c->disk_size = 64ull << 30;
	c->home = CONFIG_HOME_RW;
	c->network = CONFIG_NET_AUTO;
}

int config_parse_cpus(const char *what, const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || errno || v < 1 || v > CONFIG_CPUS_MAX)
		return cove_fail(-EINVAL, "%s \"%s\": not a number of CPUs from 1 to %d", what, s,
				 CONFIG_CPUS_MAX);
	*out = v;
	return 0;
}

/* A size in whole MiB, at least min. */
static int parse_mib_size(const char *what, const char *s, uint64_t min, uint64_t *out)
{
	uint64_t v;
	int err = cove_parse_size(s, &v);

	if (err == -ERANGE)
		return cove_fail(-EINVAL, "%s \"%s\": too large", what, s);
	if (err)
		return cove_fail(-EINVAL, "%s \"%s\": not a size (MiB as a number, or with a "
				 "suffix: 512M, 8G)", what, s);
	if (v % (1 << 20))
		return cove_fail(-EINVAL, "%s \"%s\": not a whole number of MiB", what, s);
	if (v < min)
		return cove_fail(-EINVAL, "%s \"%s\": at least %" PRIu64 "M", what, s, min >> 20);
	*out = v;
	return 0;
}

int config_parse_memory(const char *what, const char *s, uint64_t *out)
{
	return parse_mib_size(what, s, CONFIG_MEMORY_MIN, out);
}

int config_parse_disk(const char *what, const char *s, uint64_t *out)
{
	return parse_mib_size(what, s, CONFIG_DISK_MIN, out);
}

static const char *const home_names[] = {
	[CONFIG_HOME_RW] = "rw",
	[CONFIG_HOME_RO] = "ro",
	[CONFIG_HOME_NONE] = "none",
};

/* The index of s in names[n], or -1. */
static int word_index(const char *const *names, unsigned n, const char *s)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

int config_parse_home(const char *what, const char *s, enum config_home *out)
{
	int i = word_index(home_names, sizeof(home_names) / sizeof(home_names[0]), s);

	if (i < 0)
		return cove_fail(-EINVAL, "%s \"%s\": use rw, ro or none", what, s);
	*out = i;
	return 0;
}

const char *config_home_name(enum config_home h)
{
	return home_names[h];
}

static const char *const network_names[] = {
	[CONFIG_NET_AUTO] = "auto",
	[CONFIG_NET_USER] = "user",
	[CONFIG_NET_BRIDGE] = "bridge",
};

int config_parse_network(const char *what, const char *s, enum config_network *out)
{
	int i = word_index(network_names, sizeof(network_names) / sizeof(network_names[0]), s);

	if (i < 0)
		return cove_fail(-EINVAL, "%s \"%s\": use auto, user or bridge", what, s);
	*out = i;
	return 0;
}

const char *config_network_name(enum config_network n)
{
	return network_names[n];
}

/* ---- the TOML subset ---- */

enum tval_type { TV_STRING, TV_INTEGER };

struct tval {
	enum tval_type type;
	char str[PATH_MAX];	/* the string, or the integer's decimal text */
};

struct parser {
	const char *file;
	unsigned line;
	const char *p, *end;	/* the rest of the current line */
	bool in_machine;	/* inside [machine] */
	bool machine_seen;
	unsigned keys_seen;	/* bit per key of keys[] */
};

static int __attribute__((format(printf, 2, 3))) perr(struct parser *ps, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cove_fail(-EINVAL, "%s:%u: %s", ps->file, ps->line, msg);
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
		ps->p++;
}

/* After a header or a value: only blanks and a comment may follow. */
static int line_end(struct parser *ps)
{
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p != '#')
		return perr(ps, "unexpected \"%c\" after the value (one key = value per line)",
			    *ps->p);
	return 0;
}

static bool bare_key_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* A bare key (the subset has no quoted or dotted keys) into buf. */
static int parse_key(struct parser *ps, char *buf, size_t size, const char *what)
{
	size_t n = 0;

	if (ps->p < ps->end && (*ps->p == '"' || *ps->p == '\''))
		return perr(ps, "quoted %ss are not supported", what);
	while (ps->p < ps->end && bare_key_char(*ps->p)) {
		if (n + 1 >= size)
			return perr(ps, "%s too long", what);
		buf[n++] = *ps->p++;
	}
	buf[n] = '\0';
	if (!n)
		return perr(ps, "expected a %s", what);
	if (ps->p < ps->end && *ps->p == '.')
		return perr(ps, "dotted %ss are not supported", what);
	return 0;
}

static int hex_digits(struct parser *ps, unsigned n, uint32_t *out)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < n; i++) {
		char c = ps->p < ps->end ? *ps->p : '\0';

		if (c >= '0' && c <= '9')
			v = v << 4 | (c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = v << 4 | (c - 'A' + 10);
		else
			return perr(ps, "bad \\%c escape: %u hex digits needed", n == 4 ? 'u' : 'U', n);
		ps->p++;
	}
	*out = v;
	return 0;
}

/* "basic" (with escapes) or 'literal', on one line. */
static int parse_string(struct parser *ps, struct tval *v)
{
	char quote = *ps->p++;
	size_t n = 0;

	if (ps->end - ps->p >= 2 && ps->p[0] == quote && ps->p[1] == quote)
		return perr(ps, "multi-line strings are not supported");
	v->type = TV_STRING;
	for (;;) {
		unsigned char c;
		uint32_t cp = 0;
		size_t len;

		if (ps->p >= ps->end)
			return perr(ps, "unterminated string");
		c = *ps->p;
		if (c == (unsigned char)quote) {
			ps->p++;
			break;
		}
		if (quote == '"' && c == '\\') {
			char e = ps->p + 1 < ps->end ? ps->p[1] : '\0';

			if (!e)
				return perr(ps, "unknown escape in a string");
			ps->p += 2;
			switch (e) {
			case 'b': cp = '\b'; break;
			case 't': cp = '\t'; break;
			case 'n': cp = '\n'; break;
			case 'f': cp = '\f'; break;
			case 'r': cp = '\r'; break;
			case '"': cp = '"'; break;
			case '\\': cp = '\\'; break;
			case 'u':
			case 'U':
				if (hex_digits(ps, e == 'u' ? 4 : 8, &cp))
					return -EINVAL;
				if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
					return perr(ps, "\\%c%0*" PRIX32 " is not a Unicode scalar value",
						    e, e == 'u' ? 4 : 8, cp);
				break;
			default:
				ps->p--;
				return perr(ps, "unknown escape in a string");
			}
			len = json_utf8_put(NULL, 0, 0, cp);
			if (cp == 0)
				return perr(ps, "a NUL character in a string");
			if (n + len >= sizeof(v->str))
				return perr(ps, "string too long");
			json_utf8_put(v->str, sizeof(v->str), n, cp);
			n += len;
			continue;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return perr(ps, "a control character in a string (write it as an escape)");
		len = c < 0x80 ? 1 : json_utf8_len((const unsigned char *)ps->p, ps->end - ps->p);
		if (!len)
			return perr(ps, "invalid UTF-8");
		if (n + len >= sizeof(v->str))
			return perr(ps, "string too long");
		memcpy(v->str + n, ps->p, len);
		n += len;
		ps->p += len;
	}
	v->str[n] = '\0';
	return 0;
}

/* A decimal integer: optional sign, no leading zeros, "_" only between
 * digits; kept as its plain decimal text. */
static int parse_integer(struct parser *ps, struct tval *v)
{
	size_t n = 0, digits = 0;
	bool prev_digit = false;

	v->type = TV_INTEGER;
	if (*ps->p == '+' || *ps->p == '-') {
		if (*ps->p == '-')
			v->str[n++] = '-';
		ps->p++;
	}
	if (ps->end - ps->p >= 2 && ps->p[0] == '0' && (ps->p[1] == 'x' || ps->p[1] == 'o' ||
							 ps->p[1] == 'b'))
		return perr(ps, "only decimal integers are supported");
	while (ps->p < ps->end) {
		char c = *ps->p;

		if (c >= '0' && c <= '9') {
			if (digits == 1 && v->str[n - 1] == '0')
				return perr(ps, "leading zeros are not allowed in an integer");
			if (digits >= 18)
				return perr(ps, "integer too large");
			v->str[n++] = c;
			digits++;
			prev_digit = true;
		} else if (c == '_') {
			if (!prev_digit || ps->p + 1 >= ps->end || ps->p[1] < '0' || ps->p[1] > '9')
				return perr(ps, "\"_\" in an integer must be between digits");
			prev_digit = false;
		} else {
			break;
		}
		ps->p++;
	}
	v->str[n] = '\0';
	if (!digits)
		return perr(ps, "expected a value");
	if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E' || *ps->p == ':' ||
				*ps->p == '-'))
		return perr(ps, "floats and dates are not supported");
	return 0;
}

static int parse_value(struct parser *ps, struct tval *v)
{
	char c = ps->p < ps->end ? *ps->p : '\0';

	if (c == '"' || c == '\'')
		return parse_string(ps, v);
	if ((c >= '0' && c <= '9') || c == '+' || c == '-')
		return parse_integer(ps, v);
	if (ps->end - ps->p >= 4 && (!strncmp(ps->p, "true", 4) || !strncmp(ps->p, "fals", 4)))
		return perr(ps, "booleans are not supported here");
	if (c == '[' || c == '{')
		return perr(ps, "arrays and inline tables are not supported");
	if (!c || c == '#')
		return perr(ps, "expected a value after \"=\"");
	return perr(ps, "expected a value: a \"string\" or an integer");
}

/* Check a value of key (one of keys[]) and store it in c. */
static int set_value(struct parser *ps, const char *key, const struct tval *v, struct config *c)
{
	const char *home = getenv("HOME");
	int err;

	if (!strcmp(key, "cpus")) {
		if (v->type != TV_INTEGER)
			return perr(ps, "cpus must be an integer");
		err = config_parse_cpus(key, v->str, &c->cpus);
	} else if (!strcmp(key, "memory")) {
		err = config_parse_memory(key, v->str, &c->memory);
	} else if (!strcmp(key, "diskSize")) {
		err = config_parse_disk(key, v->str, &c->disk_size);
	} else if (!strcmp(key, "homeMount")) {
		if (v->type != TV_STRING)
			return perr(ps, "homeMount must be a string: \"rw\", \"ro\" or \"none\"");
		err = config_parse_home(key, v->str, &c->home);
	} else if (!strcmp(key, "network")) {
		if (v->type != TV_STRING)
			return perr(ps, "network must be a string: \"auto\", \"user\" or \"bridge\"");
		err = config_parse_network(key, v->str, &c->network);
	} else if (v->type != TV_STRING) {
		return perr(ps, "kernel must be a string (a path)");
	} else if (v->str[0] == '~' && v->str[1] == '/') {
		if (!home || home[0] != '/')
			return perr(ps, "kernel \"%s\": $HOME is not set", v->str);
		if ((size_t)snprintf(c->kernel, sizeof(c->kernel), "%s%s", home, v->str + 1) >=
		    sizeof(c->kernel))
			return perr(ps, "kernel \"%s\": path too long", v->str);
		return 0;
	} else if (v->str[0] != '/') {
		return perr(ps, "kernel \"%s\": an absolute path (or ~/...) is needed", v->str);
	} else {
		snprintf(c->kernel, sizeof(c->kernel), "%s", v->str);
		return 0;
	}
	if (err) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", cove_last_error());
		return perr(ps, "%s", msg);
	}
	return 0;
}

static const char *const keys[] = { "cpus", "memory", "diskSize", "homeMount", "network",
				     "kernel" };

static int parse_line(struct parser *ps, struct config *c)
{
	char name[64];
	struct tval *v;
	unsigned k;
	int err;

	skip_ws(ps);
	if (ps->p >= ps->end || *ps->p == '#')
		return 0;
	if (*ps->p == '[') {
		ps->p++;
		if (ps->p < ps->end && *ps->p == '[')
			return perr(ps, "arrays of tables are not supported");
		skip_ws(ps);
		if (parse_key(ps, name, sizeof(name), "section name"))
			return -EINVAL;
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != ']')
			return perr(ps, "expected \"]\" after the section name");
		ps->p++;
		if (strcmp(name, "machine"))
			return perr(ps, "unknown section [%s] (cove knows [machine])", name);
		if (ps->machine_seen)
			return perr(ps, "section [machine] given twice");
		ps->machine_seen = ps->in_machine = true;
		return line_end(ps);
	}
	if (parse_key(ps, name, sizeof(name), "key"))
		return -EINVAL;
	for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		if (!strcmp(name, keys[k]))
			break;
	if (!ps->in_machine || k == sizeof(keys) / sizeof(keys[0]))
		return perr(ps, "unknown key \"%s\"%s", name,
			    ps->in_machine ? " in [machine] (cove knows cpus, memory, diskSize, "
					     "homeMount, network, kernel)" : " outside [machine]");
	if (ps->keys_seen & (1u << k))
		return perr(ps, "key \"%s\" given twice", name);
	ps->keys_seen |= 1u << k;
	skip_ws(ps);
	if (ps->p >= ps->end || *ps->p != '=')
		return perr(ps, "expected \"=\" after \"%s\"", name);
	ps->p++;
	skip_ws(ps);
	v = malloc(sizeof(*v));
	if (!v)
		return cove_fail(-ENOMEM, "out of memory");
	err = parse_value(ps, v);
	if (!err)
		err = line_end(ps);
	if (!err)
		err = set_value(ps, name, v, c);
	free(v);
	return err;
}

int config_parse(const char *buf, size_t len, const char *file, struct config *c)
{
	struct parser ps = { .file = file };
	const char *p = buf, *end = buf + len;

	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
		p += 3;
	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		const char *eol = nl ? nl : end;

		ps.line++;
		if (eol > p && eol[-1] == '\r')
			eol--;
		/* Bytes outside strings: no control characters, valid UTF-8
		 * (strings check their own, comments are checked here). */
		for (const char *q = p; q < eol; q++) {
			unsigned char ch = *q;

			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return perr(&ps, "a control character (0x%02x)", ch);
			if (ch >= 0x80) {
				size_t l = json_utf8_len((const unsigned char *)q, eol - q);

				if (!l)
					return perr(&ps, "invalid UTF-8");
				q += l - 1;
			}
		}
		ps.p = p;
		ps.end = eol;
		if (parse_line(&ps, c))
			return -EINVAL;
		p = nl ? nl + 1 : end;
	}
	return 0;
}

int config_load(struct config *c)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char path[PATH_MAX];
	struct stat st;
	char *buf;
	ssize_t n;
	int fd, err;

	config_defaults(c);
	if (xdg && xdg[0] == '/')
		snprintf(path, sizeof(path), "%s/cove/config.toml", xdg);
	else if (home && home[0] == '/')
		snprintf(path, sizeof(path), "%s/.config/cove/config.toml", home);
	else
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > CONFIG_FILE_MAX) {
		close(fd);
		return cove_fail(-EINVAL, "%s: not a regular file of at most 1 MiB", path);
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		close(fd);
		return cove_fail(-ENOMEM, "out of memory");
	}
	n = read(fd, buf, st.st_size);
	err = -errno;
	close(fd);
	if (n < 0) {
		free(buf);
		return cove_fail(err, "%s: %s", path, strerror(-err));
	}
	err = config_parse(buf, n, path, c);
	free(buf);
	return err;
}
