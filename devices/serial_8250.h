/* A 16550A-compatible UART (COM1) for the guest console. */
#ifndef COVE_SERIAL_8250_H
#define COVE_SERIAL_8250_H

struct vm;
struct serial;

/* Create COM1 on the port-I/O bus. Guest output goes to out_fd (-1: dropped);
 * when in_fd >= 0 the event loop reads it and feeds the guest. Ctrl-A x on
 * input ends the VM. 0 or -errno. Setup thread. */
int serial_create(struct vm *vm, int out_fd, int in_fd, struct serial **out);

/* Free it; the loop and vCPUs have stopped. */
void serial_destroy(struct serial *s);

#endif
