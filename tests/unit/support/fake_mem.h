/* Fake guest memory for unit tests and fuzzers: one malloc'd, zeroed
 * buffer registered with gm_add_region at a chosen guest address, and a
 * bump allocator to lay rings and buffers out in it. */
#ifndef COVE_TEST_FAKE_MEM_H
#define COVE_TEST_FAKE_MEM_H

#include <stdint.h>

#include "guest_mem.h"

struct fake_mem {
	struct guest_mem gm;
	uint8_t *buf;
	uint64_t gpa, size;
	uint64_t next;		/* next free guest address */
};

/* size bytes (page-aligned, zeroed) at gpa. 0 or -errno. */
int fake_mem_init(struct fake_mem *fm, uint64_t gpa, uint64_t size);
void fake_mem_free(struct fake_mem *fm);

/* Host pointer for gpa, or NULL outside the buffer. */
void *fake_mem_ptr(struct fake_mem *fm, uint64_t gpa);

/* Reserve size bytes aligned to align (a power of two); returns the guest
 * address, or 0 when the buffer is full. The bytes are zeroed. */
uint64_t fake_mem_alloc(struct fake_mem *fm, uint64_t size, uint64_t align);

#endif
