/* libFuzzer: the split virtqueue. The input becomes guest memory and the
 * queue configuration; the device pops until the queue is empty or broken,
 * pushing every chain back. Must never crash, hang or hand out a buffer
 * outside guest memory.
 *
 * Input: 16-byte header, then the contents of a 64 KiB region.
 *   [0] log2 queue size (low 4 bits), [1] bit0 EVENT_IDX, bit1 INDIRECT_DESC,
 *   [2..7] desc/avail/used offsets (le16) in the region,
 *   [8..9] starting index for the device (to cross the 16-bit wrap),
 *   [10] byte written into guest memory between pops (a driver racing us),
 *   [11..12] its offset. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest_mem.h"
#include "virtq.h"

#define MEM_GPA		0x10000ull
#define MEM_SIZE	0x10000ull
#define MEM2_GPA	(MEM_GPA + MEM_SIZE + 0x1000)	/* a hole, then a page */
#define MEM2_SIZE	0x1000ull

static uint8_t *mem, *mem2;
static struct guest_mem gm;
static struct virtq vq;
static struct virtq_elem elem;

static void init(void)
{
	mem = aligned_alloc(4096, MEM_SIZE);
	mem2 = aligned_alloc(4096, MEM2_SIZE);
	if (!mem || !mem2 || gm_add_region(&gm, MEM_GPA, MEM_SIZE, mem) < 0 ||
	    gm_add_region(&gm, MEM2_GPA, MEM2_SIZE, mem2) < 0)
		abort();
}

static bool inside(const void *p, size_t len)
{
	const uint8_t *b = p;

	if (b >= mem && b <= mem + MEM_SIZE && len <= (size_t)(mem + MEM_SIZE - b))
		return true;
	return b >= mem2 && b <= mem2 + MEM2_SIZE && len <= (size_t)(mem2 + MEM2_SIZE - b);
}

static uint16_t le16(const uint8_t *p)
{
	return p[0] | p[1] << 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t body;
	uint16_t poke_off;

	if (!mem)
		init();
	if (size < 16)
		return 0;
	body = size - 16 < MEM_SIZE ? size - 16 : MEM_SIZE;
	memset(mem, 0, MEM_SIZE);
	memcpy(mem, data + 16, body);
	memset(mem2, 0x5a, MEM2_SIZE);

	virtq_init(&vq, 0, VIRTQ_SIZE_LIMIT);
	vq.size = 1u << (data[0] & 15);
	vq.desc_gpa = MEM_GPA + le16(data + 2);
	vq.avail_gpa = MEM_GPA + le16(data + 4);
	vq.used_gpa = MEM_GPA + le16(data + 6);
	vq.ready = true;
	if (virtq_start(&vq, &gm, data[1] & 1, data[1] & 2) < 0)
		return 0;
	vq.last_avail = vq.used_idx = vq.signalled_used = le16(data + 8);
	poke_off = le16(data + 11);

	/* Bounded: device writes and pokes may move avail->idx under us. */
	for (uint32_t i = 0; i <= vq.size + 1; i++) {
		int r = virtq_pop(&vq, &elem);
		uint64_t rl = 0, wl = 0;

		if (r == 0 || r == -EPROTO)
			break;
		if (r == -E2BIG) {
			virtq_push(&vq, elem.head, 0);
			continue;
		}
		if (r != 1 || elem.head >= vq.size ||
		    elem.nread + elem.nwrite > VIRTQ_MAX_SEGS)
			abort();
		for (unsigned k = 0; k < elem.nread + elem.nwrite; k++) {
			if (!inside(elem.iov[k].iov_base, elem.iov[k].iov_len))
				abort();
			if (k < elem.nread)
				rl += elem.iov[k].iov_len;
			else
				wl += elem.iov[k].iov_len;
		}
		if (rl != elem.read_len || wl != elem.write_len || rl + wl > UINT32_MAX)
			abort();
		/* the device writes what it may write */
		for (unsigned k = elem.nread; k < elem.nread + elem.nwrite; k++)
			memset(elem.iov[k].iov_base, 0xd5, elem.iov[k].iov_len);
		virtq_push(&vq, elem.head, elem.write_len);
		virtq_need_notify(&vq);
		/* the driver scribbles meanwhile */
		mem[poke_off % MEM_SIZE] ^= data[10];
	}
	return 0;
}
