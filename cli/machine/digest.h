/* sha256 content digests in the OCI form "sha256:<64 lowercase hex>". */
#ifndef COVE_DIGEST_H
#define COVE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN	71	/* strlen("sha256:") + 64 */

struct digest_ctx {
	void *md;		/* EVP_MD_CTX */
};

/* True if s is exactly "sha256:" and 64 lowercase hex digits. Pure. */
bool digest_valid(const char *s);

/* Start a running sha256. 0 or -ENOMEM. Any thread; a context is used by
 * one thread. */
int digest_init(struct digest_ctx *c);
/* Hash buf[0..len) into c. */
void digest_update(struct digest_ctx *c, const void *buf, size_t len);
/* Finish into out[DIGEST_LEN + 1] and free the context. */
void digest_final(struct digest_ctx *c, char out[DIGEST_LEN + 1]);
/* Free a context without finishing it (error paths). */
void digest_abort(struct digest_ctx *c);

/* The digest of buf[0..len) into out. 0 or -ENOMEM. Any thread. */
int digest_buf(const void *buf, size_t len, char out[DIGEST_LEN + 1]);

#endif
