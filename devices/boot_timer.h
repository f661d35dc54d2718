/* Boot timer: the guest writes BOOT_TIMER_MAGIC to LAYOUT_BOOT_TIMER when its
 * userspace starts; the monitor records the time since its own start. */
#ifndef COVE_BOOT_TIMER_H
#define COVE_BOOT_TIMER_H

struct vm;

/* Register the MMIO page. 0 or -errno. Setup thread. */
int boot_timer_create(struct vm *vm);

#endif
