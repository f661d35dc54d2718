#include "registry.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "human.h"
#include "log.h"
#include "oci_manifest.h"
#include "progress.h"

#define ERR_BODY_MAX	4096
#define TOKEN_MAX	(64u << 10)

static const char accept_manifests[] =
	"Accept: " OCI_MT_INDEX ", " OCI_MT_MANIFEST ", " DOCKER_MT_LIST ", " DOCKER_MT_MANIFEST;

struct reg {
	CURL *curl;
	const struct oci_ref *ref;
	char base[1024];		/* scheme://host/v2/repo */
	char *token;
	char errbuf[CURL_ERROR_SIZE];
};

/* One response: headers we care about, and the body into memory (up to
 * max) or into a file with a running digest. */
struct resp {
	long status;			/* of the response being received */
	char www_auth[1024];
	char docker_digest[DIGEST_LEN + 1];
	char *body;
	size_t len, max;
	int fd;				/* >= 0: body of a 200 goes here */
	struct progress *bar;		/* moved by the bytes going to fd */
	struct digest_ctx dc;
	uint64_t total, limit;
	int werr;
	char err_body[ERR_BODY_MAX];
	size_t err_len;
};

static void header_value(const char *line, size_t len, const char *name, char *out,
			 size_t size)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n))
		return;
	line += n;
	len -= n;
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n' || line[len - 1] == ' '))
		len--;
	if (len < size) {
		memcpy(out, line, len);
		out[len] = '\0';
	}
}

static size_t on_header(char *line, size_t sz, size_t n, void *priv)
{
	struct resp *r = priv;
	size_t len = sz * n;

	if (len > 5 && !strncmp(line, "HTTP/", 5)) {
		const char *sp = memchr(line, ' ', len);

		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		r->www_auth[0] = r->docker_digest[0] = '\0';
		return len;
	}
	header_value(line, len, "WWW-Authenticate:", r->www_auth, sizeof(r->www_auth));
	header_value(line, len, "Docker-Content-Digest:", r->docker_digest,
		     sizeof(r->docker_digest));
	return len;
}

static size_t on_body(char *buf, size_t sz, size_t n, void *priv)
{
	struct resp *r = priv;
	size_t len = sz * n;

	if (r->status != 200) {
		size_t room = sizeof(r->err_body) - 1 - r->err_len;
		size_t k = len < room ? len : room;

		memcpy(r->err_body + r->err_len, buf, k);
		r->err_len += k;
		r->err_body[r->err_len] = '\0';
		return len;
	}
	if (r->fd >= 0) {
		r->total += len;
		if (r->total > r->limit) {
			r->werr = -EFBIG;
			return 0;
		}
		digest_update(&r->dc, buf, len);
		for (size_t done = 0; done < len;) {
			ssize_t w = write(r->fd, buf + done, len - done);

			if (w < 0) {
				r->werr = -errno;
				return 0;
			}
			done += w;
		}
		progress_advance(r->bar, len);
		return len;
	}
	if (r->len + len > r->max) {
		r->werr = -EFBIG;
		return 0;
	}
	if (!r->body && !(r->body = malloc(r->max + 1))) {
		r->werr = -ENOMEM;
		return 0;
	}
	memcpy(r->body + r->len, buf, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

static int transport_error(struct reg *g, CURLcode rc)
{
	const char *reg = g->ref->registry;
	long oserr = 0;

	curl_easy_getinfo(g->curl, CURLINFO_OS_ERRNO, &oserr);
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return cove_fail(-ECONNREFUSED, "cannot reach registry %s: %s", reg,
				 oserr ? strerror(oserr) : "connection failed");
	case CURLE_COULDNT_RESOLVE_HOST:
		return cove_fail(-EHOSTUNREACH, "cannot reach registry %s: unknown host", reg);
	case CURLE_OPERATION_TIMEDOUT:
		return cove_fail(-ETIMEDOUT, "cannot reach registry %s: timed out", reg);
	default:
		return cove_fail(-EIO, "registry %s: %s", reg, g->errbuf[0] ? g->errbuf :
				 curl_easy_strerror(rc));
	}
}

/* A param="value" from a WWW-Authenticate challenge into out. */
static bool challenge_param(const char *ch, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);

	for (const char *p = ch; (p = strstr(p, key)); p++) {
		const char *v, *end;

		if ((p != ch && p[-1] != ' ' && p[-1] != ',') || p[klen] != '=' ||
		    p[klen + 1] != '"')
			continue;
		v = p + klen + 2;
		end = strchr(v, '"');
		if (!end || (size_t)(end - v) >= size)
			return false;
		memcpy(out, v, end - v);
		out[end - v] = '\0';
		return true;
	}
	return false;
}

static int get(struct reg *g, const char *url, const char *accept, struct resp *r);

/* Fetch an anonymous bearer token as the challenge asks. */
static int fetch_token(struct reg *g, const char *challenge)
{
	char realm[512], service[256] = "", scope[512], url[2048];
	struct resp r = { .fd = -1, .max = TOKEN_MAX };
	char *esc_service, *esc_scope;
	const char *tok;
	json_t *j;
	int err;

	if (strncasecmp(challenge, "Bearer ", 7) || !challenge_param(challenge, "realm", realm,
								     sizeof(realm)))
		return cove_fail(-EACCES, "registry %s: authentication required (only anonymous "
				 "pulls are supported)", g->ref->registry);
	challenge_param(challenge, "service", service, sizeof(service));
	if (!challenge_param(challenge, "scope", scope, sizeof(scope)))
		snprintf(scope, sizeof(scope), "repository:%s:pull", g->ref->repo);
	esc_service = curl_easy_escape(g->curl, service, 0);
	esc_scope = curl_easy_escape(g->curl, scope, 0);
	if (!esc_service || !esc_scope) {
		curl_free(esc_service);
		curl_free(esc_scope);
		return cove_fail(-ENOMEM, "out of memory");
	}
	snprintf(url, sizeof(url), "%s%sservice=%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?",
		 esc_service, esc_scope);
	curl_free(esc_service);
	curl_free(esc_scope);
	err = get(g, url, NULL, &r);
	if (!err && r.status != 200)
		err = cove_fail(-EACCES, "registry %s: the token service answered HTTP %ld",
				g->ref->registry, r.status);
	if (err) {
		free(r.body);
		return err;
	}
	j = json_loadb(r.body ?: "", r.len, 0, NULL);
	free(r.body);
	tok = json_string_value(json_object_get(j, "token"));
	if (!tok)
		tok = json_string_value(json_object_get(j, "access_token"));
	free(g->token);
	g->token = tok && !strpbrk(tok, "\r\n") ? strdup(tok) : NULL;
	json_decref(j);
	if (!g->token)
		return cove_fail(-EACCES, "registry %s: the token service gave no token",
				 g->ref->registry);
	return 0;
}

/* One GET; r->status tells how it went. Transport errors are errors. */
static int get(struct reg *g, const char *url, const char *accept, struct resp *r)
{
	struct curl_slist *h = NULL, *h2;
	char auth[TOKEN_MAX + 32];
	CURLcode rc;

	if (accept && !(h = curl_slist_append(h, accept)))
		return cove_fail(-ENOMEM, "out of memory");
	if (g->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", g->token);
		h2 = curl_slist_append(h, auth);
		if (!h2) {
			curl_slist_free_all(h);
			return cove_fail(-ENOMEM, "out of memory");
		}
		h = h2;
	}
	curl_easy_setopt(g->curl, CURLOPT_URL, url);
	curl_easy_setopt(g->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(g->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(g->curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(g->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(g->curl, CURLOPT_WRITEDATA, r);
	g->errbuf[0] = '\0';
	rc = curl_easy_perform(g->curl);
	curl_easy_setopt(g->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	if (r->werr == -EFBIG)
		return cove_fail(-EFBIG, "registry %s: %s is larger than announced",
				 g->ref->registry, url);
	if (r->werr)
		return cove_fail(r->werr, "writing %s: %s", url, strerror(-r->werr));
	if (rc != CURLE_OK)
		return transport_error(g, rc);
	return 0;
}

/* GET with one retry after fetching a token when the registry asks. */
static int get_auth(struct reg *g, const char *url, const char *accept, struct resp *r)
{
	int err = get(g, url, accept, r);

	if (err || r->status != 401 || g->token)
		return err;
	err = fetch_token(g, r->www_auth);
	if (err)
		return err;
	r->err_len = 0;
	return get(g, url, accept, r);
}

static int http_error(struct reg *g, const struct resp *r, const char *what)
{
	char ref[OCI_REF_MAX];

	oci_ref_format(g->ref, ref, sizeof(ref));
	if (r->status == 404)
		return cove_fail(-ENOENT, "%s: %s not found in the registry", ref, what);
	if (r->status == 401 || r->status == 403)
		return cove_fail(-EACCES, "%s: access denied (the image is private or does not "
				 "exist)", ref);
	return cove_fail(-EIO, "%s: registry %s answered HTTP %ld for the %s", ref,
			 g->ref->registry, r->status, what);
}

/* The manifest named by reference (tag or digest) into *body; its digest
 * must be want when given. */
static int get_manifest(struct reg *g, const char *reference, const char *want,
			char **body, size_t *len, char digest[DIGEST_LEN + 1])
{
	struct resp r = { .fd = -1, .max = OCI_MANIFEST_MAX };
	char url[2048];
	int err;

	snprintf(url, sizeof(url), "%s/manifests/%s", g->base, reference);
	err = get_auth(g, url, accept_manifests, &r);
	if (!err && r.status != 200)
		err = http_error(g, &r, "manifest");
	if (!err)
		err = digest_buf(r.body ?: "", r.len, digest);
	if (!err && ((want && strcmp(digest, want)) ||
		     (!strncmp(r.docker_digest, "sha256:", 7) && strcmp(digest, r.docker_digest))))
		err = cove_fail(-EINVAL, "registry %s: digest mismatch for the manifest: "
				"expected %s, got %s", g->ref->registry,
				want ?: r.docker_digest, digest);
	if (err) {
		free(r.body);
		return err;
	}
	*body = r.body;
	*len = r.len;
	return 0;
}

/* Store buf as blob digest (already checked). */
static int put_blob(struct store *s, const char *digest, const char *buf, size_t len)
{
	char tmp[PATH_MAX];
	int fd = store_blob_tmp(s, tmp, sizeof(tmp)), err = 0;

	if (fd < 0)
		return fd;
	if (write(fd, buf, len) != (ssize_t)len || fsync(fd) < 0)
		err = cove_fail(-EIO, "%s: write failed", tmp);
	close(fd);
	if (err) {
		unlink(tmp);
		return err;
	}
	return store_blob_commit(s, tmp, digest);
}

static int fetch_blob(struct reg *g, struct store *s, const struct oci_desc *d, FILE *progress)
{
	struct resp r = { .fd = -1, .limit = d->size };
	char url[2048], tmp[PATH_MAX], got[DIGEST_LEN + 1], hs[32], done[48];
	struct progress bar;
	int err;

	if (store_blob_has(s, d->digest)) {
		if (progress)
			fprintf(progress, "%.19s: already exists\n", d->digest);
		return 0;
	}
	r.fd = store_blob_tmp(s, tmp, sizeof(tmp));
	if (r.fd < 0)
		return r.fd;
	progress_init(&bar, progress);
	progress_begin(&bar, d->digest, "downloading", NULL, d->size);
	r.bar = &bar;
	err = digest_init(&r.dc);
	if (err)
		goto out;
	snprintf(url, sizeof(url), "%s/blobs/%s", g->base, d->digest);
	err = get_auth(g, url, NULL, &r);
	if (!err && r.status != 200)
		err = http_error(g, &r, "blob");
	if (err) {
		digest_abort(&r.dc);
		goto out;
	}
	digest_final(&r.dc, got);
	if (strcmp(got, d->digest) || r.total != d->size)
		err = cove_fail(-EINVAL, "registry %s: digest mismatch for blob %s: got %s "
				"(%llu bytes, expected %llu): refused", g->ref->registry, d->digest,
				got, (unsigned long long)r.total, (unsigned long long)d->size);
	else if (fsync(r.fd) < 0)
		err = cove_fail(-errno, "%s: %s", tmp, strerror(errno));
out:
	close(r.fd);
	snprintf(done, sizeof(done), "downloaded %s", human_size(d->size, hs, sizeof(hs)));
	progress_end(&bar, err ? NULL : done);
	if (err) {
		unlink(tmp);
		return err;
	}
	return store_blob_commit(s, tmp, d->digest);
}

static int pull(struct reg *g, struct store *s, FILE *progress, char digest[DIGEST_LEN + 1])
{
	const struct oci_ref *ref = g->ref;
	struct oci_manifest *m = NULL;
	struct oci_desc sel;
	size_t len;
	char *body;
	int kind, err;

	err = get_manifest(g, ref->digest[0] ? ref->digest : ref->tag,
			   ref->digest[0] ? ref->digest : NULL, &body, &len, digest);
	if (err)
		return err;
	kind = oci_manifest_kind(body, len);
	if (kind == OCI_KIND_INDEX) {
		err = oci_index_select(body, len, "linux", "amd64", &sel);
		free(body);
		if (err)
			return err;
		err = get_manifest(g, sel.digest, sel.digest, &body, &len, digest);
		if (err)
			return err;
		kind = oci_manifest_kind(body, len);
	}
	if (kind != OCI_KIND_MANIFEST) {
		err = kind < 0 ? kind : cove_fail(-EINVAL, "registry %s: an index inside an index",
						  ref->registry);
		goto out;
	}
	m = malloc(sizeof(*m));
	err = m ? oci_manifest_parse(body, len, m) : cove_fail(-ENOMEM, "out of memory");
	if (err)
		goto out;
	err = fetch_blob(g, s, &m->config, NULL);
	for (unsigned i = 0; !err && i < m->n_layers; i++)
		err = fetch_blob(g, s, &m->layers[i], progress);
	if (!err && !store_blob_has(s, digest))
		err = put_blob(s, digest, body, len);
out:
	free(m);
	free(body);
	return err;
}

/* Whether the registry answers TLS: an insecure registry is tried with
 * HTTPS first, like docker does, and spoken to in plain HTTP only when
 * the TLS handshake fails. */
static bool speaks_tls(struct reg *g)
{
	struct resp r = { .fd = -1 };
	char url[512];
	CURLcode rc;

	snprintf(url, sizeof(url), "https://%s/v2/", oci_ref_api_host(g->ref));
	curl_easy_setopt(g->curl, CURLOPT_URL, url);
	curl_easy_setopt(g->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(g->curl, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(g->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(g->curl, CURLOPT_WRITEDATA, &r);
	rc = curl_easy_perform(g->curl);
	free(r.body);
	return rc != CURLE_SSL_CONNECT_ERROR && rc != CURLE_RECV_ERROR;
}

int registry_pull(struct store *s, const struct oci_ref *ref, FILE *progress,
		  char digest[DIGEST_LEN + 1])
{
	static bool curl_ready;
	struct reg g = { .ref = ref };
	int err;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT))
			return cove_fail(-ENOMEM, "libcurl failed to initialise");
		curl_ready = true;
	}
	g.curl = curl_easy_init();
	if (!g.curl)
		return cove_fail(-ENOMEM, "libcurl failed to initialise");
	if (getenv("SSL_CERT_FILE"))
		curl_easy_setopt(g.curl, CURLOPT_CAINFO, getenv("SSL_CERT_FILE"));
	curl_easy_setopt(g.curl, CURLOPT_ERRORBUFFER, g.errbuf);
	curl_easy_setopt(g.curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(g.curl, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(g.curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(g.curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(g.curl, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(g.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(g.curl, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(g.curl, CURLOPT_USERAGENT, "cove/" COVE_VERSION);
	curl_easy_setopt(g.curl, CURLOPT_NOSIGNAL, 1L);
	snprintf(g.base, sizeof(g.base), "%s://%s/v2/%s",
		 oci_ref_insecure(ref) && !speaks_tls(&g) ? "http" : "https",
		 oci_ref_api_host(ref), ref->repo);
	err = pull(&g, s, progress, digest);
	curl_easy_cleanup(g.curl);
	free(g.token);
	return err;
}
