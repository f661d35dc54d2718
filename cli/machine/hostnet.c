#include "hostnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* One line of text: [p, eol), next at the byte after its newline. */
struct line {
	const char *p, *eol, *next;
};

static bool next_line(const char **cur, const char *end, struct line *l)
{
	const char *nl;

	if (*cur >= end)
		return false;
	nl = memchr(*cur, '\n', end - *cur);
	l->p = *cur;
	l->eol = nl ? nl : end;
	l->next = nl ? nl + 1 : end;
	*cur = l->next;
	return true;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The next blank-separated word of [*p, eol) into word (cut to size - 1);
 * false at the end of the line. */
static bool next_word(const char **p, const char *eol, char *word, size_t size)
{
	size_t n = 0;

	while (*p < eol && blank(**p))
		(*p)++;
	if (*p >= eol)
		return false;
	while (*p < eol && !blank(**p)) {
		if (n + 1 < size)
			word[n++] = **p;
		(*p)++;
	}
	word[n] = '\0';
	return true;
}

/* Exactly 8 hex digits, as /proc/net/route prints a word. */
static bool hex32(const char *s, uint32_t *out)
{
	if (strlen(s) != 8 || strspn(s, "0123456789abcdefABCDEF") != 8)
		return false;
	*out = strtoul(s, NULL, 16);
	return true;
}

bool hostnet_routed(const char *text, size_t len, uint32_t net, unsigned prefix)
{
	uint32_t want = htonl(prefix ? ~0u << (32 - (prefix > 32 ? 32 : prefix)) : 0);
	const char *cur = text, *end = text + len;
	struct line l;

	while (next_line(&cur, end, &l)) {
		char word[16];
		uint32_t dest = 0, mask = 0, both;
		const char *p = l.p;
		int i;

		/* fields 2 (destination) and 8 (mask) */
		for (i = 1; i <= 8 && next_word(&p, l.eol, word, sizeof(word)); i++) {
			if ((i == 2 && !hex32(word, &dest)) || (i == 8 && !hex32(word, &mask)))
				break;
		}
		if (i <= 8 || !mask)
			continue;	/* not a route line, or a default route */
		both = mask & want;
		if ((dest & both) == (net & both))
			return true;
	}
	return false;
}

int hostnet_dns(const char *text, size_t len, uint32_t *addr)
{
	const char *cur = text, *end = text + len;
	struct line l;

	while (next_line(&cur, end, &l)) {
		char word[64];
		const char *p = l.p;
		struct in_addr a;
		uint32_t h;

		if (!next_word(&p, l.eol, word, sizeof(word)) || strcmp(word, "nameserver") ||
		    !next_word(&p, l.eol, word, sizeof(word)) || inet_pton(AF_INET, word, &a) != 1)
			continue;
		h = ntohl(a.s_addr);
		if (h == 0 || h >> 24 == 127)
			continue;
		*addr = a.s_addr;
		return 0;
	}
	return -ENOENT;
}

/* Whether a line is the marker (trailing blanks aside). */
static bool is_marker(const struct line *l, const char *marker)
{
	size_t n = strlen(marker);
	const char *q = l->p + n;

	if ((size_t)(l->eol - l->p) < n || memcmp(l->p, marker, n))
		return false;
	while (q < l->eol && blank(*q))
		q++;
	return q == l->eol;
}

/* Whether a line of the block is for host, or for addr: its first word is
 * the address, the names follow up to a comment. */
static bool line_matches(const struct line *l, const char *host, const char *addr)
{
	char word[256];
	const char *p = l->p;

	if (!next_word(&p, l->eol, word, sizeof(word)) || word[0] == '#')
		return false;
	if (addr && !strcmp(word, addr))
		return true;
	while (next_word(&p, l->eol, word, sizeof(word)) && word[0] != '#')
		if (!strcmp(word, host))
			return true;
	return false;
}

static int broken(const char *file, const char *why)
{
	return cove_fail(-EINVAL, "%s: cove's block is broken (%s): fix or remove its lines "
			 "by hand", file, why);
}

int hostnet_hosts_edit(const char *text, size_t len, const char *file, const char *host,
		       const char *addr, char **out, size_t *out_len)
{
	const char *cur = text, *end = text + len, *begin = NULL, *inner = NULL, *stop = NULL,
		   *after = end;
	size_t cap, n = 0;
	bool kept = false;
	struct line l;
	char *o;

	if (memchr(text, '\0', len))
		return broken(file, "a NUL byte");
	while (next_line(&cur, end, &l)) {
		if (is_marker(&l, HOSTNET_HOSTS_BEGIN)) {
			if (begin)
				return broken(file, "a second \"" HOSTNET_HOSTS_BEGIN "\"");
			begin = l.p;
			inner = l.next;
		} else if (is_marker(&l, HOSTNET_HOSTS_END)) {
			if (!begin || stop)
				return broken(file, "\"" HOSTNET_HOSTS_END "\" without its begin");
			stop = l.p;
			after = l.next;
		}
	}
	if (begin && !stop)
		return broken(file, "\"" HOSTNET_HOSTS_BEGIN "\" without its end");
	if (!begin)
		begin = inner = stop = after = end;
	/* the old text, the new block (at most as long as the old one plus
	 * markers, a line and newlines), the rest */
	cap = len + sizeof(HOSTNET_HOSTS_BEGIN) + sizeof(HOSTNET_HOSTS_END) +
	      (addr ? strlen(addr) : 0) + strlen(host) + (stop - inner) + 8;
	o = malloc(cap);
	if (!o)
		return cove_fail(-ENOMEM, "out of memory");
	memcpy(o, text, begin - text);
	n = begin - text;
	/* a block added to a file whose last line has no newline */
	if (begin == end && n && o[n - 1] != '\n' && addr)
		o[n++] = '\n';
	n += sprintf(o + n, "%s\n", HOSTNET_HOSTS_BEGIN);
	cur = inner;
	while (next_line(&cur, stop, &l)) {
		if (line_matches(&l, host, addr))
			continue;
		memcpy(o + n, l.p, l.eol - l.p);
		n += l.eol - l.p;
		o[n++] = '\n';
		kept = true;
	}
	if (addr)
		n += sprintf(o + n, "%s\t%s\n", addr, host);
	if (addr || kept) {
		n += sprintf(o + n, "%s\n", HOSTNET_HOSTS_END);
	} else {
		/* empty: no block at all */
		n = begin - text;
	}
	memcpy(o + n, after, end - after);
	n += end - after;
	o[n] = '\0';
	*out = o;
	*out_len = n;
	return 0;
}
