#include "serial_8250.h"

#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "evloop.h"
#include "log.h"
#include "vm.h"

/* Registers (offset from the base port) */
#define UART_RBR 0	/* read: receive buffer; write: THR; DLAB: DLL */
#define UART_IER 1	/* DLAB: DLM */
#define UART_IIR 2	/* read: interrupt id; write: FCR */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI  0x01	/* received data available */
#define IER_THRI 0x02	/* transmitter holding register empty */
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI  0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define MCR_OUT2 0x08	/* gates the IRQ line on a PC: set when the port opens */
#define MCR_LOOP 0x10
#define LSR_DR   0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_DCD  0x80
#define MSR_DSR  0x20
#define MSR_CTS  0x10

#define RX_SIZE 4096	/* input held for the guest */
#define FIFO_SIZE 16	/* what the guest sees of it at a time, as a 16550A */
#define CTRL_A 0x01

struct serial {
	struct vm *vm;
	pthread_mutex_t lock;
	int out_fd, in_fd;
	struct evloop_watch in_watch;

	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thr_int;		/* THR-empty interrupt pending until IIR read */
	int irq_level;
	/* Input waits in rx; the first rx_fifo bytes of it are in the UART's
	 * FIFO, visible to the guest. Bytes enter the FIFO only while the
	 * guest listens (port opened: OUT2 and RDI), so the FIFO clears of
	 * the driver's probe and start-up lose nothing typed early. */
	uint8_t rx[RX_SIZE];
	unsigned rx_head, rx_len, rx_fifo;
	bool escape;		/* last input byte was Ctrl-A */
};

/* Caller holds the lock. */
static void update_irq(struct serial *s)
{
	int level = ((s->ier & IER_RDI) && s->rx_fifo) || ((s->ier & IER_THRI) && s->thr_int);

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	struct kvm_irq_level irq = { .irq = LAYOUT_COM1_IRQ, .level = level };
	ioctl(s->vm->vm_fd, KVM_IRQ_LINE, &irq);
}

static uint8_t iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & 1) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDI) && s->rx_fifo)
		return IIR_RDI | fifo;
	if ((s->ier & IER_THRI) && s->thr_int)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

static void emit(struct serial *s, uint8_t c)
{
	if (s->out_fd < 0)
		return;
	/* A slow reader of the console slows the guest, like a real UART. */
	while (write(s->out_fd, &c, 1) < 0 && errno == EINTR)
		;
}

/* Move waiting input into the FIFO while the guest listens. */
static void rx_fill(struct serial *s)
{
	bool listening = (s->ier & IER_RDI) && (s->mcr & MCR_OUT2) && !(s->mcr & MCR_LOOP);

	if (listening)
		s->rx_fifo = s->rx_len < FIFO_SIZE ? s->rx_len : FIFO_SIZE;
}

static void rx_push(struct serial *s, uint8_t c)
{
	if (s->rx_len == RX_SIZE)
		return;		/* overrun: drop, as hardware does */
	s->rx[(s->rx_head + s->rx_len) % RX_SIZE] = c;
	s->rx_len++;
}

static void serial_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct serial *s = opaque;
	uint8_t v = 0;

	pthread_mutex_lock(&s->lock);
	switch (off) {
	case UART_RBR:
		if (s->lcr & LCR_DLAB) {
			v = s->dll;
		} else if (s->rx_fifo) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % RX_SIZE;
			s->rx_len--;
			s->rx_fifo--;
		}
		break;
	case UART_IER:
		v = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
		break;
	case UART_IIR:
		v = iir(s);
		if ((v & 0x0f) == IIR_THRI)
			s->thr_int = false;
		break;
	case UART_LCR:
		v = s->lcr;
		break;
	case UART_MCR:
		v = s->mcr;
		break;
	case UART_LSR:
		v = LSR_THRE | LSR_TEMT | (s->rx_fifo ? LSR_DR : 0);
		break;
	case UART_MSR:
		v = (s->mcr & MCR_LOOP) ? 0 : (MSR_DCD | MSR_DSR | MSR_CTS);
		break;
	case UART_SCR:
		v = s->scr;
		break;
	}
	rx_fill(s);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	memset(data, 0, len);
	*(uint8_t *)data = v;
}

static void serial_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct serial *s = opaque;
	uint8_t v = *(const uint8_t *)data;

	(void)len;
	pthread_mutex_lock(&s->lock);
	switch (off) {
	case UART_RBR:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
		} else {
			/* In loopback mode the byte goes nowhere: Linux's probe
			 * only checks the modem lines. */
			if (!(s->mcr & MCR_LOOP))
				emit(s, v);
			/* Transmission is instant: THR is empty again. */
			s->thr_int = true;
		}
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			/* Enabling THRI with an empty THR raises it at once. */
			if (!(s->ier & IER_THRI) && (v & IER_THRI))
				s->thr_int = true;
			s->ier = v & 0x0f;
		}
		break;
	case UART_IIR:
		s->fcr = v;
		if (v & 0x02) {		/* clear receive FIFO: only what is in it */
			s->rx_head = (s->rx_head + s->rx_fifo) % RX_SIZE;
			s->rx_len -= s->rx_fifo;
			s->rx_fifo = 0;
		}
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	}
	rx_fill(s);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static const struct bus_ops serial_ops = {
	.read = serial_read,
	.write = serial_write,
};

static void input_cb(struct evloop_watch *w, uint32_t revents)
{
	struct serial *s = w->arg;
	uint8_t buf[256];
	ssize_t n;

	(void)revents;
	n = read(s->in_fd, buf, sizeof(buf));
	if (n <= 0) {
		/* EOF or error on input: the guest just stops getting input. */
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			evloop_watch_stop(w);
		return;
	}
	pthread_mutex_lock(&s->lock);
	for (ssize_t i = 0; i < n; i++) {
		if (s->escape) {
			s->escape = false;
			if (buf[i] == 'x') {
				pthread_mutex_unlock(&s->lock);
				vm_request_exit(s->vm, COVE_EXIT_STOPPED, 0);
				return;
			}
			if (buf[i] != CTRL_A)
				rx_push(s, CTRL_A);
		} else if (buf[i] == CTRL_A) {
			s->escape = true;
			continue;
		}
		rx_push(s, buf[i]);
	}
	rx_fill(s);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

int serial_create(struct vm *vm, int out_fd, int in_fd, struct serial **out)
{
	struct serial *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->vm = vm;
	s->out_fd = out_fd;
	s->in_fd = in_fd;
	s->lcr = 0x03;		/* 8N1 */
	s->mcr = 0;		/* reset value: the guest's driver sets OUT2 when it opens the port */
	s->dll = 0x0c;		/* 9600 baud */
	pthread_mutex_init(&s->lock, NULL);
	err = bus_register(&vm->pio, LAYOUT_COM1_PORT, 8, &serial_ops, s);
	if (err < 0) {
		free(s);
		return cove_fail(err, "serial: cannot register port 0x%x", LAYOUT_COM1_PORT);
	}
	if (in_fd >= 0) {
		s->in_watch.fd = in_fd;
		s->in_watch.events = POLLIN;
		s->in_watch.cb = input_cb;
		s->in_watch.arg = s;
		evloop_watch_start(vm->loop, &s->in_watch);
	}
	*out = s;
	return 0;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}
