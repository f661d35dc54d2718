#include "guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "arch.h"

int gm_add_region(struct guest_mem *gm, uint64_t gpa, uint64_t size, void *hva)
{
	if (gm->nregions >= GM_MAX_REGIONS)
		return -ENOSPC;
	if (size == 0 || gpa + size < gpa)
		return -EINVAL;
	for (int i = 0; i < gm->nregions; i++) {
		const struct gm_region *r = &gm->regions[i];
		if (gpa < r->gpa + r->size && r->gpa < gpa + size)
			return -EINVAL;
	}
	gm->regions[gm->nregions++] = (struct gm_region){ gpa, size, hva };
	gm->total += size;
	return 0;
}

int gm_alloc(struct guest_mem *gm, uint64_t size)
{
	struct arch_mem_range ranges[GM_MAX_REGIONS];
	int n = arch_mem_layout(size, ranges, GM_MAX_REGIONS);

	memset(gm, 0, sizeof(*gm));
	if (n < 0)
		return n;
	gm->owned = true;
	for (int i = 0; i < n; i++) {
		/* NORESERVE: the guest's untouched memory costs the host nothing. */
		void *p = mmap(NULL, ranges[i].size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED) {
			int err = -errno;
			gm_free(gm);
			return err;
		}
		madvise(p, ranges[i].size, MADV_MERGEABLE);
		gm_add_region(gm, ranges[i].gpa, ranges[i].size, p);
	}
	return 0;
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < gm->nregions; i++) {
		const struct gm_region *r = &gm->regions[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off >= r->size)
			continue;
		if (len > r->size - off)
			return NULL;
		return r->hva + off;
	}
	return NULL;
}

int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = gm_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = gm_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

int gm_discard(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gm_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	if (madvise(p, len, MADV_DONTNEED) < 0)
		return -errno;
	return 0;
}

void gm_free(struct guest_mem *gm)
{
	if (gm->owned)
		for (int i = 0; i < gm->nregions; i++)
			munmap(gm->regions[i].hva, gm->regions[i].size);
	memset(gm, 0, sizeof(*gm));
}
