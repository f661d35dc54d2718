#include "oci_ref.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* One path component: [a-z0-9]+ joined by '.', '_', "__" or runs of '-'. */
static bool component_valid(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start = i;

		while (i < len && is_lower_alnum(s[i]))
			i++;
		if (i == start)
			return false;
		if (i == len)
			return true;
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < len && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < len && s[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i == len)
			return false;
	}
	return len > 0;
}

static bool tag_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 128 || !(is_alnum(s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!(is_alnum(s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
			return false;
	return true;
}

/* HOST[:PORT] with HOST a DNS name or IPv4 address, or [IPv6][:PORT]. */
static bool registry_valid(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0)
		return false;
	if (s[0] == '[') {
		while (i < len && s[i] != ']') {
			char c = s[i];
			if (i > 0 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
				       (c >= 'A' && c <= 'F') || c == ':'))
				return false;
			i++;
		}
		if (i == len || i < 2)
			return false;
		i++;
	} else {
		while (i < len && s[i] != ':') {
			if (!(is_alnum(s[i]) || s[i] == '.' || s[i] == '-'))
				return false;
			i++;
		}
		if (i == 0 || s[0] == '.' || s[0] == '-' || s[i - 1] == '.' || s[i - 1] == '-')
			return false;
	}
	if (i == len)
		return true;
	if (s[i] != ':' || i + 1 == len || len - i - 1 > 5)
		return false;
	for (i++; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int oci_ref_parse(const char *s, struct oci_ref *r)
{
	char buf[OCI_REF_MAX];
	char *name, *at, *colon, *slash, *path;
	size_t n;

	memset(r, 0, sizeof(*r));
	if (!s || !*s)
		return cove_fail(-EINVAL, "invalid reference: empty");
	if (strlen(s) >= sizeof(buf))
		return cove_fail(-EINVAL, "invalid reference: too long");
	strcpy(buf, s);
	name = buf;

	at = strchr(name, '@');
	if (at) {
		*at = '\0';
		if (!digest_valid(at + 1))
			return cove_fail(-EINVAL, "invalid reference \"%s\": the digest must be "
					 "sha256: and 64 lowercase hex digits", s);
		strcpy(r->digest, at + 1);
	}
	slash = strrchr(name, '/');
	colon = strrchr(name, ':');
	if (colon && (!slash || colon > slash)) {
		*colon = '\0';
		if (!tag_valid(colon + 1))
			return cove_fail(-EINVAL, "invalid reference \"%s\": bad tag \"%s\"", s,
					 colon + 1);
		strcpy(r->tag, colon + 1);
	} else if (!at) {
		strcpy(r->tag, "latest");
	}

	slash = strchr(name, '/');
	if (slash && (memchr(name, '.', slash - name) || memchr(name, ':', slash - name) ||
		      (slash - name == 9 && !strncmp(name, "localhost", 9)) || name[0] == '[')) {
		if (!registry_valid(name, slash - name))
			return cove_fail(-EINVAL, "invalid reference \"%s\": bad registry \"%.*s\"",
					 s, (int)(slash - name), name);
		snprintf(r->registry, sizeof(r->registry), "%.*s", (int)(slash - name), name);
		path = slash + 1;
	} else {
		strcpy(r->registry, "docker.io");
		path = name;
	}
	if (!strcmp(r->registry, "index.docker.io") || !strcmp(r->registry, "registry-1.docker.io"))
		strcpy(r->registry, "docker.io");

	for (const char *p = path; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			return cove_fail(-EINVAL, "invalid reference \"%s\": repository names "
					 "must be lowercase", s);
	for (const char *p = path;;) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (!component_valid(p, len))
			return cove_fail(-EINVAL, "invalid reference \"%s\": bad repository "
					 "name \"%s\"", s, path);
		if (!end)
			break;
		p = end + 1;
	}
	n = snprintf(r->repo, sizeof(r->repo), "%s%s",
		     !strcmp(r->registry, "docker.io") && !strchr(path, '/') ? "library/" : "",
		     path);
	if (n >= sizeof(r->repo) || strlen(r->registry) + 1 + n > 255)
		return cove_fail(-EINVAL, "invalid reference \"%s\": name too long", s);
	return 0;
}

int oci_ref_format(const struct oci_ref *r, char *buf, size_t size)
{
	return snprintf(buf, size, "%s/%s%s%s%s%s", r->registry, r->repo, r->tag[0] ? ":" : "",
			r->tag, r->digest[0] ? "@" : "", r->digest);
}

const char *oci_ref_api_host(const struct oci_ref *r)
{
	return strcmp(r->registry, "docker.io") ? r->registry : "registry-1.docker.io";
}

bool oci_ref_insecure(const struct oci_ref *r)
{
	const char *reg = r->registry, *list = getenv("COVE_INSECURE_REGISTRIES");
	size_t hostlen = strcspn(reg, reg[0] == '[' ? "]" : ":") + (reg[0] == '[');

	char host[256];
	struct in_addr a;

	snprintf(host, sizeof(host), "%.*s", (int)hostlen, reg);
	if (!strcmp(host, "localhost") || !strcmp(host, "[::1]") ||
	    (inet_pton(AF_INET, host, &a) == 1 && ntohl(a.s_addr) >> 24 == 127))
		return true;
	while (list && *list) {
		size_t len = strcspn(list, ",");

		if ((len == strlen(reg) && !strncmp(list, reg, len)) ||
		    (len == hostlen && !strncmp(list, reg, len)))
			return true;
		list += len + (list[len] == ',');
	}
	return false;
}
