/* Just enough of the PS/2 controller for `reboot=k`: the CPU reset line. */
#ifndef COVE_I8042_H
#define COVE_I8042_H

struct vm;

/* Register ports 0x60 and 0x64; writing 0xfe to 0x64 reboots the VM.
 * 0 or -errno. Setup thread. */
int i8042_create(struct vm *vm);

#endif
