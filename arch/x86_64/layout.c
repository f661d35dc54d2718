/* x86_64 guest RAM layout: low RAM up to the 32-bit MMIO gap, the rest
 * above 4 GiB. */
#include <errno.h>

#include "arch.h"

#define MEM_MIN		(64ULL << 20)
#define PAGE_SIZE	4096ULL

int arch_mem_layout(uint64_t size, struct arch_mem_range *out, int max)
{
	uint64_t low;

	if (size < MEM_MIN || size % PAGE_SIZE)
		return -EINVAL;
	low = size < LAYOUT_MEM32_END ? size : LAYOUT_MEM32_END;
	if (max < 1)
		return -EINVAL;
	out[0] = (struct arch_mem_range){ 0, low };
	if (size == low)
		return 1;
	if (max < 2 || size - low > UINT64_MAX - LAYOUT_HIGH_MEM_START)
		return -EINVAL;
	out[1] = (struct arch_mem_range){ LAYOUT_HIGH_MEM_START, size - low };
	return 2;
}
