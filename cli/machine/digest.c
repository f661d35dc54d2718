#include "digest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

bool digest_valid(const char *s)
{
	if (strncmp(s, "sha256:", 7))
		return false;
	for (int i = 7; i < DIGEST_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[DIGEST_LEN] == '\0';
}

int digest_init(struct digest_ctx *c)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md)
		return -ENOMEM;
	if (!EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(md);
		return -ENOMEM;
	}
	c->md = md;
	return 0;
}

void digest_update(struct digest_ctx *c, const void *buf, size_t len)
{
	EVP_DigestUpdate(c->md, buf, len);
}

void digest_final(struct digest_ctx *c, char out[DIGEST_LEN + 1])
{
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_DigestFinal_ex(c->md, h, &n);
	memcpy(out, "sha256:", 7);
	for (unsigned int i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", h[i]);
	digest_abort(c);
}

void digest_abort(struct digest_ctx *c)
{
	EVP_MD_CTX_free(c->md);
	c->md = NULL;
}

int digest_buf(const void *buf, size_t len, char out[DIGEST_LEN + 1])
{
	struct digest_ctx c;
	int err = digest_init(&c);

	if (err)
		return err;
	digest_update(&c, buf, len);
	digest_final(&c, out);
	return 0;
}
