/* Guest physical memory: a few contiguous regions of anonymous host memory.
 * Every guest address the monitor dereferences goes through gm_ptr(). */
#ifndef COVE_GUEST_MEM_H
#define COVE_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GM_MAX_REGIONS 4

struct gm_region {
	uint64_t gpa;	/* guest physical start */
	uint64_t size;	/* bytes */
	uint8_t *hva;	/* host mapping */
};

struct guest_mem {
	struct gm_region regions[GM_MAX_REGIONS];
	int nregions;
	uint64_t total;		/* sum of region sizes */
	bool owned;		/* regions were mmap'ed by gm_alloc() */
};

/* Map `size` bytes of anonymous memory laid out as the arch wants
 * (arch_mem_layout). Returns 0 or -errno. Setup thread only. */
int gm_alloc(struct guest_mem *gm, uint64_t size);

/* Add a region backed by caller memory (tests, fuzzers). Regions must not
 * overlap. Returns 0, -EINVAL on overlap/overflow, -ENOSPC when full. */
int gm_add_region(struct guest_mem *gm, uint64_t gpa, uint64_t size, void *hva);

/* Host pointer for [gpa, gpa+len) or NULL if any byte of it lies outside a
 * single region, or gpa+len overflows. len 0 is valid inside a region.
 * Safe from any thread (the layout never changes after setup). */
void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* Copy in/out with the same checks; return 0 or -EFAULT. */
int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);
int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);

/* Give host pages of [gpa, gpa+len) back (MADV_DONTNEED); 0 or -errno. */
int gm_discard(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* Unmap what gm_alloc mapped. */
void gm_free(struct guest_mem *gm);

#endif
