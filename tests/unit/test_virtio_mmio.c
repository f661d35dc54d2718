/* The virtio-mmio transport and the device core, with a fake device:
 * register semantics, feature negotiation, queue configuration, status
 * transitions, interrupts, reset, and the thread hand-off to the loop. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "evloop.h"
#include "fake_mem.h"
#include "guest_vq.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"

#define MEM_GPA		0x40000000ull
#define MEM_SIZE	(1ull << 20)
#define FAKE_FEATURE	3		/* a device bit */
#define CFG_SIZE	12
#define V1		(1ull << VIRTIO_F_VERSION_1)

struct fake_dev {
	struct virtio_dev dev;		/* first */
	uint8_t config[CFG_SIZE];
	int activated, resets, notified, destroyed;
	int activate_ret;
	bool activate_on_loop, reset_on_loop, notify_on_loop;
	uint32_t last_q;
	bool echo;			/* queue_notify answers every chain */
};

struct fixture {
	struct fake_mem fm;
	struct fake_dev *fd;
	struct virtio_mmio *m;
	struct guest_vq g[2];
	struct evloop *loop;
	bool running;
};

static struct fixture *cur;

static void fake_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, ((struct fake_dev *)d)->config + off, len);
}

static void fake_config_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
	memcpy(((struct fake_dev *)d)->config + off, data, len);
}

static int fake_activate(struct virtio_dev *d)
{
	struct fake_dev *f = (struct fake_dev *)d;

	f->activated++;
	f->activate_on_loop = d->loop && evloop_on_loop(d->loop);
	return f->activate_ret;
}

static void fake_notify(struct virtio_dev *d, uint32_t q)
{
	struct fake_dev *f = (struct fake_dev *)d;
	struct virtq_elem e;

	f->notified++;
	f->last_q = q;
	f->notify_on_loop = d->loop && evloop_on_loop(d->loop);
	if (!f->echo)
		return;
	while (virtio_dev_pop(d, &d->vqs[q], &e) > 0)
		virtq_push(&d->vqs[q], e.head, e.write_len);
	virtio_dev_notify(d, &d->vqs[q]);
}

static void fake_reset(struct virtio_dev *d)
{
	struct fake_dev *f = (struct fake_dev *)d;

	f->resets++;
	f->reset_on_loop = d->loop && evloop_on_loop(d->loop);
}

static int destroyed;

static void fake_destroy(struct virtio_dev *d)
{
	destroyed++;
	free(d);
}

static const struct virtio_dev_ops fake_ops = {
	.kind = "fake",
	.device_id = 42,
	.num_queues = 2,
	.queue_max = 64,
	.config_size = CFG_SIZE,
	.features = 1ull << FAKE_FEATURE,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.activate = fake_activate,
	.queue_notify = fake_notify,
	.reset = fake_reset,
	.destroy = fake_destroy,
};

static int setup_common(void **state, bool with_loop)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(fake_mem_init(&f->fm, MEM_GPA, MEM_SIZE), 0);
	for (int q = 0; q < 2; q++)
		assert_int_equal(gvq_init(&f->g[q], &f->fm, 16), 0);
	f->fd = calloc(1, sizeof(*f->fd));
	f->fd->dev.ops = &fake_ops;
	f->fd->echo = true;
	for (int i = 0; i < CFG_SIZE; i++)
		f->fd->config[i] = 0xa0 + i;
	if (with_loop)
		assert_int_equal(evloop_create(&f->loop), 0);
	assert_int_equal(virtio_mmio_create(&f->fd->dev, "vfake0", &f->fm.gm, f->loop, &f->m), 0);
	if (with_loop) {
		assert_int_equal(evloop_start(f->loop, NULL, NULL), 0);
		f->running = true;
	}
	destroyed = 0;
	cur = f;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false);
}

static int setup_loop(void **state)
{
	return setup_common(state, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->running)
		evloop_join(f->loop);
	virtio_mmio_destroy(f->m);
	assert_int_equal(destroyed, 1);
	evloop_destroy(f->loop);
	fake_mem_free(&f->fm);
	free(f);
	return 0;
}

static uint32_t status(struct fixture *f)
{
	return mmio_rd(f->m, VIRTIO_MMIO_STATUS);
}

static uint64_t irq_count(struct fixture *f)
{
	uint64_t v = 0;

	if (read(f->fd->dev.irqfd, &v, sizeof(v)) < 0)
		return 0;
	return v;
}

static uint64_t offered(struct fixture *f)
{
	mmio_wr(f->m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t lo = mmio_rd(f->m, VIRTIO_MMIO_DEVICE_FEATURES);
	mmio_wr(f->m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return lo | (uint64_t)mmio_rd(f->m, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static void test_identity(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_DEVICE_ID), 42);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_VENDOR_ID), 0x45564f43);
	assert_int_equal(status(f), 0);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_SHM_LEN_HIGH), 0xffffffff);
	assert_int_equal(mmio_rd(f->m, 0x0f0), 0);	/* unknown */
	assert_string_equal(f->fd->dev.name, "vfake0");
}

static void test_device_features(void **state)
{
	struct fixture *f = *state;
	uint64_t feat = offered(f);

	assert_true(feat & (1ull << FAKE_FEATURE));
	assert_true(feat & V1);
	assert_true(feat & (1ull << VIRTIO_F_EVENT_IDX));
	assert_true(feat & (1ull << VIRTIO_F_INDIRECT_DESC));
	mmio_wr(f->m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_DEVICE_FEATURES), 0);
}

static void begin(struct fixture *f)
{
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
}

static void write_features(struct fixture *f, uint64_t feat)
{
	mmio_wr(f->m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mmio_wr(f->m, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)feat);
	mmio_wr(f->m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mmio_wr(f->m, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(feat >> 32));
}

static bool features_ok(struct fixture *f)
{
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					  VIRTIO_STATUS_FEATURES_OK);
	return status(f) & VIRTIO_STATUS_FEATURES_OK;
}

static void test_features_accepted(void **state)
{
	struct fixture *f = *state;

	begin(f);
	write_features(f, V1 | (1ull << FAKE_FEATURE) | (1ull << VIRTIO_F_EVENT_IDX));
	assert_true(features_ok(f));
	assert_true(virtio_has_feature(&f->fd->dev, FAKE_FEATURE));
	assert_true(virtio_has_feature(&f->fd->dev, VIRTIO_F_EVENT_IDX));
	assert_false(virtio_has_feature(&f->fd->dev, VIRTIO_F_INDIRECT_DESC));
	/* no changes after FEATURES_OK */
	write_features(f, V1);
	assert_true(virtio_has_feature(&f->fd->dev, FAKE_FEATURE));
}

static void test_features_unoffered(void **state)
{
	struct fixture *f = *state;

	begin(f);
	write_features(f, V1 | (1ull << 7));
	assert_false(features_ok(f));
	assert_int_equal(f->fd->dev.driver_features, 0);
	/* the driver may try again with a subset */
	write_features(f, V1);
	assert_true(features_ok(f));
}

static void test_features_no_version1(void **state)
{
	struct fixture *f = *state;

	begin(f);
	write_features(f, 1ull << FAKE_FEATURE);
	assert_false(features_ok(f));
	assert_false(status(f) & VIRTIO_STATUS_FEATURES_OK);
	assert_true(status(f) & VIRTIO_STATUS_DRIVER);
}

static void test_features_high_select(void **state)
{
	struct fixture *f = *state;

	begin(f);
	write_features(f, V1);
	mmio_wr(f->m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	mmio_wr(f->m, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	assert_false(features_ok(f));
}

static void test_status_order(void **state)
{
	struct fixture *f = *state;
	uint64_t errs = f->fd->dev.stats.guest_errors;

	/* DRIVER without ACKNOWLEDGE */
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_DRIVER);
	assert_int_equal(status(f), 0);
	begin(f);
	write_features(f, V1);
	/* DRIVER_OK without FEATURES_OK */
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					  VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(status(f), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	assert_int_equal(f->fd->activated, 0);
	/* clearing a bit without a reset */
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	assert_int_equal(status(f), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	assert_int_equal(f->fd->dev.stats.guest_errors, errs + 3);
	/* FAILED is accepted at any time */
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
					  VIRTIO_STATUS_FAILED);
	assert_true(status(f) & VIRTIO_STATUS_FAILED);
}

static void test_queue_registers(void **state)
{
	struct fixture *f = *state;
	struct virtq *vq = &f->fd->dev.vqs[1];

	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_NUM_MAX), 64);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_READY), 0);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NUM, 32);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x2);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_DRIVER_LOW, 0x3000);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, 0x4);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_DEVICE_LOW, 0x5000);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0x6);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_int_equal(vq->size, 32);
	assert_int_equal(vq->desc_gpa, 0x200001000ull);
	assert_int_equal(vq->avail_gpa, 0x400003000ull);
	assert_int_equal(vq->used_gpa, 0x600005000ull);
	assert_true(vq->ready);
	/* queue 0 untouched */
	assert_false(f->fd->dev.vqs[0].ready);

	/* a queue that does not exist */
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_READY), 0);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_READY, 1);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_SEL, 0xffffffff);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NUM, 8);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_READY), 0);
}

static void test_activate(void **state)
{
	struct fixture *f = *state;
	uint32_t s = gvq_mmio_init(f->m, V1, f->g, 2);

	assert_int_equal(s, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->fd->activated, 1);
	assert_true(f->fd->dev.active);
	assert_true(f->fd->dev.vqs[0].started);
	assert_true(f->fd->dev.vqs[1].started);

	/* queue registers are frozen now */
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_SEL, 0);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NUM, 4);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_DESC_LOW, 0);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_READY, 0);
	assert_int_equal(f->fd->dev.vqs[0].size, 16);
	assert_int_equal(f->fd->dev.vqs[0].desc_gpa, f->g[0].desc_gpa);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_READY), 1);
}

static void test_activate_bad_queue(void **state)
{
	struct fixture *f = *state;
	uint32_t s;

	f->g[1].used_gpa = MEM_GPA + MEM_SIZE;	/* outside memory */
	s = gvq_mmio_init(f->m, V1, f->g, 2);
	assert_true(s & VIRTIO_STATUS_NEEDS_RESET);
	assert_true(s & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(f->fd->activated, 0);
	assert_false(f->fd->dev.active);
	assert_int_equal(f->fd->dev.stats.guest_errors, 1);
	/* the driver was told by a config interrupt */
	assert_true(mmio_rd(f->m, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_ISR_CONFIG);
	assert_true(irq_count(f) >= 1);
}

static void test_activate_bad_size(void **state)
{
	struct fixture *f = *state;

	f->g[0].size = 128;	/* above QueueNumMax 64 */
	assert_true(gvq_mmio_init(f->m, V1, f->g, 2) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(f->fd->activated, 0);
}

static void test_activate_fails(void **state)
{
	struct fixture *f = *state;

	f->fd->activate_ret = -ENOMEM;
	assert_true(gvq_mmio_init(f->m, V1, f->g, 2) & VIRTIO_STATUS_NEEDS_RESET);
	assert_false(f->fd->dev.active);
}

static void test_only_ready_queues_start(void **state)
{
	struct fixture *f = *state;

	assert_true(gvq_mmio_init(f->m, V1, f->g, 1) & VIRTIO_STATUS_DRIVER_OK);
	assert_true(f->fd->dev.vqs[0].started);
	assert_false(f->fd->dev.vqs[1].started);
	/* a kick for the queue that is not ready is ignored */
	f->fd->notified = 0;
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(f->fd->notified, 0);
}

static void test_kick_and_interrupt(void **state)
{
	struct fixture *f = *state;
	uint64_t buf = fake_mem_alloc(&f->fm, 64, 8);
	struct gvq_buf wr = { buf, 64 };
	uint32_t id, len;

	gvq_mmio_init(f->m, V1, f->g, 2);
	irq_count(f);
	f->fd->notified = 0;
	gvq_add(&f->g[1], NULL, 0, &wr, 1);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(f->fd->notified, 1);
	assert_int_equal(f->fd->last_q, 1);
	assert_true(gvq_get_used(&f->g[1], &id, &len));
	assert_int_equal(len, 64);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_QUEUE);
	assert_int_equal(irq_count(f), 1);
	mmio_wr(f->m, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_ISR_QUEUE);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_INTERRUPT_STATUS), 0);

	/* a notify for a queue that does not exist */
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 7);
	assert_int_equal(f->fd->notified, 1);

	/* NO_INTERRUPT: used entry, no interrupt */
	gvq_set_avail_flags(&f->g[1], VRING_AVAIL_F_NO_INTERRUPT);
	gvq_add(&f->g[1], NULL, 0, &wr, 1);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_true(gvq_get_used(&f->g[1], &id, &len));
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(irq_count(f), 0);
}

static void test_kick_before_driver_ok(void **state)
{
	struct fixture *f = *state;

	begin(f);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(f->fd->notified, 0);
}

static void test_event_idx_interrupts(void **state)
{
	struct fixture *f = *state;
	uint64_t buf = fake_mem_alloc(&f->fm, 64, 8);
	struct gvq_buf wr = { buf, 8 };
	uint32_t id, len;

	gvq_mmio_init(f->m, V1 | (1ull << VIRTIO_F_EVENT_IDX), f->g, 2);
	irq_count(f);
	gvq_set_used_event(&f->g[0], 0);
	gvq_add(&f->g[0], NULL, 0, &wr, 1);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(irq_count(f), 1);
	assert_true(gvq_get_used(&f->g[0], &id, &len));
	/* the device asked for a kick at avail index 1 */
	assert_int_equal(gvq_avail_event(&f->g[0]), 1);
	/* the driver wants an interrupt after used entry 5 only */
	gvq_set_used_event(&f->g[0], 5);
	gvq_add(&f->g[0], NULL, 0, &wr, 1);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_int_equal(irq_count(f), 0);
}

static void test_protocol_error(void **state)
{
	struct fixture *f = *state;

	gvq_mmio_init(f->m, V1, f->g, 2);
	irq_count(f);
	gvq_set_desc(&f->g[0], 0, 0, 8, 0, 0);		/* outside memory */
	gvq_publish(&f->g[0], 0);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(f->fd->dev.stats.guest_errors, 1);
	assert_true(mmio_rd(f->m, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_ISR_CONFIG);
	assert_true(irq_count(f) >= 1);
	/* no more processing until reset, on any queue */
	f->fd->notified = 0;
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(f->fd->notified, 0);
	/* a status write keeps NEEDS_RESET */
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, status(f) | VIRTIO_STATUS_FAILED);
	assert_true(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	/* reset brings it back */
	memset(f->g[0].desc, 0, 16 * 16);
	f->g[0].avail_idx = f->g[0].last_used = f->g[0].next_desc = 0;
	f->g[0].avail->idx = 0;
	assert_true(gvq_mmio_init(f->m, V1, f->g, 2) & VIRTIO_STATUS_DRIVER_OK);
	assert_false(status(f) & VIRTIO_STATUS_NEEDS_RESET);
	f->fd->notified = 0;
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(f->fd->notified, 1);
}

static void test_reset(void **state)
{
	struct fixture *f = *state;
	struct virtio_dev *d = &f->fd->dev;

	gvq_mmio_init(f->m, V1 | (1ull << FAKE_FEATURE), f->g, 2);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_SEL, 1);
	mmio_wr(f->m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	virtio_dev_config_changed(d);
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(f->fd->resets, 2);	/* gvq_mmio_init resets first */
	assert_int_equal(status(f), 0);
	assert_false(d->active);
	assert_int_equal(d->driver_features, 0);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	for (int q = 0; q < 2; q++) {
		assert_false(d->vqs[q].started);
		assert_false(d->vqs[q].ready);
		assert_int_equal(d->vqs[q].size, 64);
		assert_int_equal(d->vqs[q].desc_gpa, 0);
	}
	/* selectors back to 0 */
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_DEVICE_FEATURES),
			 (uint32_t)d->device_features);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_true(d->vqs[0].ready);
	/* the generation keeps counting */
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_CONFIG_GENERATION), 1);
}

static void test_config_space(void **state)
{
	struct fixture *f = *state;
	uint8_t b = 0;
	uint16_t w = 0;
	uint32_t l = 0;
	uint64_t q = 0;

	virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + 1, &b, 1);
	assert_int_equal(b, 0xa1);
	virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + 2, &w, 2);
	assert_int_equal(w, 0xa3a2);
	virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + 4, &l, 4);
	assert_int_equal(l, 0xa7a6a5a4);
	virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + 4, &q, 8);
	assert_int_equal(q, 0xabaaa9a8a7a6a5a4ull);
	/* beyond the end reads 0, partial overlap too */
	virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + 8, &q, 8);
	assert_int_equal(q, 0);
	virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + 0xe00, &l, 4);
	assert_int_equal(l, 0);
	virtio_mmio_read(f->m, UINT64_MAX - 1, &w, 2);
	assert_int_equal(w, 0);
	/* writes reach the device inside, nowhere outside */
	l = 0x11223344;
	virtio_mmio_write(f->m, VIRTIO_MMIO_CONFIG + 8, &l, 4);
	assert_int_equal(f->fd->config[8], 0x44);
	l = 0x55667788;
	virtio_mmio_write(f->m, VIRTIO_MMIO_CONFIG + 10, &l, 4);
	assert_int_equal(f->fd->config[10], 0x22);
}

static void test_config_generation(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_CONFIG_GENERATION), 0);
	virtio_dev_config_changed(&f->fd->dev);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_CONFIG_GENERATION), 1);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_ISR_CONFIG);
	assert_int_equal(irq_count(f), 1);
}

static void test_bad_widths(void **state)
{
	struct fixture *f = *state;
	uint16_t w = 0xffff;
	uint32_t l = 0xffffffff;

	virtio_mmio_read(f->m, VIRTIO_MMIO_MAGIC_VALUE, &w, 2);
	assert_int_equal(w, 0);
	virtio_mmio_read(f->m, VIRTIO_MMIO_MAGIC_VALUE + 1, &l, 4);
	assert_int_equal(l, 0);
	w = VIRTIO_STATUS_ACKNOWLEDGE;
	virtio_mmio_write(f->m, VIRTIO_MMIO_STATUS, &w, 2);
	assert_int_equal(status(f), 0);
	/* writes to read-only registers do nothing */
	mmio_wr(f->m, VIRTIO_MMIO_MAGIC_VALUE, 0);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NUM_MAX, 1);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_NUM_MAX), 64);
}

static void test_create_checks(void **state)
{
	struct fixture *f = *state;
	static const struct virtio_dev_ops bad = {
		.kind = "bad", .num_queues = 2, .queue_max = 48,
	};
	struct virtio_dev d = { .ops = &bad };
	struct virtio_mmio *m;

	assert_int_equal(virtio_mmio_create(&d, "vbad0", &f->fm.gm, NULL, &m), -EINVAL);
}

/* With a running loop: transitions and kicks run on the loop thread. */
static void test_loop_thread(void **state)
{
	struct fixture *f = *state;
	uint64_t buf = fake_mem_alloc(&f->fm, 64, 8);
	struct gvq_buf wr = { buf, 16 };
	uint32_t id, len;

	assert_true(gvq_mmio_init(f->m, V1, f->g, 2) & VIRTIO_STATUS_DRIVER_OK);
	assert_true(f->fd->reset_on_loop);
	assert_true(f->fd->activate_on_loop);
	gvq_add(&f->g[0], NULL, 0, &wr, 1);
	/* the trapped-notify path signals the kick eventfd the loop watches */
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(gvq_wait_used(&f->g[0], &id, &len, 2000));
	assert_int_equal(len, 16);
	assert_true(f->fd->notify_on_loop);
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(status(f), 0);
}

/* Several "vCPUs" hammer the registers while the loop serves kicks. */
struct hammer {
	struct fixture *f;
	int id;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;

	for (int i = 0; i < 2000; i++) {
		mmio_rd(h->f->m, VIRTIO_MMIO_STATUS);
		mmio_rd(h->f->m, VIRTIO_MMIO_INTERRUPT_STATUS);
		mmio_wr(h->f->m, VIRTIO_MMIO_QUEUE_SEL, h->id & 1);
		mmio_rd(h->f->m, VIRTIO_MMIO_QUEUE_NUM_MAX);
		mmio_wr(h->f->m, VIRTIO_MMIO_INTERRUPT_ACK, 1);
		mmio_wr(h->f->m, VIRTIO_MMIO_QUEUE_NOTIFY, h->id & 1);
	}
	return NULL;
}

static void test_concurrent_registers(void **state)
{
	struct fixture *f = *state;
	pthread_t t[4];
	struct hammer h[4];

	f->fd->echo = false;
	gvq_mmio_init(f->m, V1, f->g, 2);
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){ f, i };
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_true(status(f) & VIRTIO_STATUS_DRIVER_OK);
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(status(f), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TL(fn) cmocka_unit_test_setup_teardown(fn, setup_loop, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_device_features),
		T(test_features_accepted),
		T(test_features_unoffered),
		T(test_features_no_version1),
		T(test_features_high_select),
		T(test_status_order),
		T(test_queue_registers),
		T(test_activate),
		T(test_activate_bad_queue),
		T(test_activate_bad_size),
		T(test_activate_fails),
		T(test_only_ready_queues_start),
		T(test_kick_and_interrupt),
		T(test_kick_before_driver_ok),
		T(test_event_idx_interrupts),
		T(test_protocol_error),
		T(test_reset),
		T(test_config_space),
		T(test_config_generation),
		T(test_bad_widths),
		T(test_create_checks),
		TL(test_loop_thread),
		TL(test_activate),
		TL(test_concurrent_registers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
