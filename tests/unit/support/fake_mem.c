#include "fake_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int fake_mem_init(struct fake_mem *fm, uint64_t gpa, uint64_t size)
{
	int err;

	memset(fm, 0, sizeof(*fm));
	size = (size + 4095) & ~4095ull;
	fm->buf = aligned_alloc(4096, size);
	if (!fm->buf)
		return -ENOMEM;
	memset(fm->buf, 0, size);
	fm->gpa = gpa;
	fm->size = size;
	fm->next = gpa;
	err = gm_add_region(&fm->gm, gpa, size, fm->buf);
	if (err < 0) {
		free(fm->buf);
		fm->buf = NULL;
	}
	return err;
}

void fake_mem_free(struct fake_mem *fm)
{
	free(fm->buf);
	memset(fm, 0, sizeof(*fm));
}

void *fake_mem_ptr(struct fake_mem *fm, uint64_t gpa)
{
	if (gpa < fm->gpa || gpa - fm->gpa >= fm->size)
		return NULL;
	return fm->buf + (gpa - fm->gpa);
}

uint64_t fake_mem_alloc(struct fake_mem *fm, uint64_t size, uint64_t align)
{
	uint64_t at = (fm->next + align - 1) & ~(align - 1);

	if (at < fm->gpa || at - fm->gpa > fm->size || size > fm->size - (at - fm->gpa))
		return 0;
	fm->next = at + size;
	memset(fm->buf + (at - fm->gpa), 0, size);
	return at;
}
