/* Pausing vCPUs (vm_pause, vm_resume, vm_park) without KVM: fake vCPU
 * threads "run" until vcpu_kick's immediate_exit, as KVM_RUN would, and
 * park between runs as vcpu_thread does. */
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "evloop.h"
#include "vcpu.h"
#include "vm.h"

#define NCPUS 3

struct fixture {
	struct vm vm;
	struct vcpu vcpus[NCPUS];
	struct kvm_run runs[NCPUS];
	uint64_t ticks[NCPUS];		/* atomic: "guest" progress */
	bool stubborn;			/* atomic: vCPU 0 does not park */
	pthread_t pauser;
	int pauser_result;
};

static void *fake_vcpu(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	struct fixture *fx = (struct fixture *)((char *)vm - offsetof(struct fixture, vm));

	while (!__atomic_load_n(&vm->exit_reason, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE) &&
		    !(v->index == 0 && __atomic_load_n(&fx->stubborn, __ATOMIC_ACQUIRE))) {
			vm_park(vm);
			continue;
		}
		if (__atomic_load_n(&v->run->immediate_exit, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_RELAXED);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			continue;
		}
		__atomic_fetch_add(&fx->ticks[v->index], 1, __ATOMIC_RELAXED);
		usleep(100);
	}
	pthread_mutex_lock(&vm->pause_lock);
	v->done = true;
	pthread_mutex_unlock(&vm->pause_lock);
	return NULL;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct vm *vm = &fx->vm;

	assert_non_null(fx);
	assert_int_equal(vcpu_init_signals(), 0);
	assert_int_equal(vm_pause_init(vm), 0);
	assert_int_equal(evloop_create(&vm->loop), 0);
	vm->done_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(vm->done_fd >= 0);
	vm->ncpus = NCPUS;
	vm->vcpus = fx->vcpus;
	for (int i = 0; i < NCPUS; i++) {
		struct vcpu *v = &fx->vcpus[i];
		v->vm = vm;
		v->index = i;
		v->fd = -1;
		v->run = &fx->runs[i];
		assert_int_equal(pthread_create(&v->thread, NULL, fake_vcpu, v), 0);
		v->started = true;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	struct timespec deadline;

	vm_request_exit(&fx->vm, COVE_EXIT_STOPPED, 0);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	for (int i = 0; i < NCPUS; i++)
		assert_int_equal(pthread_timedjoin_np(fx->vcpus[i].thread, NULL, &deadline), 0);
	evloop_destroy(fx->vm.loop);
	close(fx->vm.done_fd);
	vm_pause_fini(&fx->vm);
	free(fx);
	return 0;
}

static uint64_t ticks(struct fixture *fx, int i)
{
	return __atomic_load_n(&fx->ticks[i], __ATOMIC_RELAXED);
}

static void wait_ticks(struct fixture *fx)
{
	uint64_t t[NCPUS];

	for (int i = 0; i < NCPUS; i++)
		t[i] = ticks(fx, i);
	for (int i = 0; i < NCPUS; i++)
		while (ticks(fx, i) == t[i])
			usleep(100);
}

static void test_pause_resume(void **state)
{
	struct fixture *fx = *state;
	uint64_t t[NCPUS];

	wait_ticks(fx);
	assert_int_equal(vm_pause(&fx->vm, true), 0);
	assert_true(vm_paused(&fx->vm));
	assert_int_equal(fx->vm.parked, NCPUS);
	for (int i = 0; i < NCPUS; i++)
		t[i] = ticks(fx, i);
	usleep(20000);
	for (int i = 0; i < NCPUS; i++)
		assert_int_equal(ticks(fx, i), t[i]);	/* nobody runs */
	/* Idempotent, also without waiting. */
	assert_int_equal(vm_pause(&fx->vm, true), 0);
	assert_int_equal(vm_pause(&fx->vm, false), 0);
	assert_int_equal(vm_resume(&fx->vm), 0);
	assert_false(vm_paused(&fx->vm));
	wait_ticks(fx);
	assert_int_equal(vm_resume(&fx->vm), 0);
	/* Many rounds, without waiting: the caller polls as the API does. */
	for (int round = 0; round < 50; round++) {
		int err;
		while ((err = vm_pause(&fx->vm, false)) == -EINPROGRESS)
			usleep(50);
		assert_int_equal(err, 0);
		assert_int_equal(vm_resume(&fx->vm), 0);
	}
	wait_ticks(fx);
}

static void test_stop_while_paused(void **state)
{
	struct fixture *fx = *state;
	struct timespec deadline;

	assert_int_equal(vm_pause(&fx->vm, true), 0);
	vm_request_exit(&fx->vm, COVE_EXIT_STOPPED, 0);
	/* Parked vCPUs leave at once. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	for (int i = 0; i < NCPUS; i++) {
		assert_int_equal(pthread_timedjoin_np(fx->vcpus[i].thread, NULL, &deadline), 0);
		fx->vcpus[i].started = false;
		assert_int_equal(pthread_create(&fx->vcpus[i].thread, NULL, fake_vcpu,
						&fx->vcpus[i]), 0);	/* for teardown */
	}
	assert_int_equal(fx->vm.parked, 0);
	assert_int_equal(vm_pause(&fx->vm, true), -ESRCH);
	assert_int_equal(vm_pause(&fx->vm, false), -ESRCH);
	assert_int_equal(vm_resume(&fx->vm), -ESRCH);
}

static void *pauser(void *arg)
{
	struct fixture *fx = arg;

	fx->pauser_result = vm_pause(&fx->vm, true);
	return NULL;
}

static void test_resume_cancels_pause(void **state)
{
	struct fixture *fx = *state;

	__atomic_store_n(&fx->stubborn, true, __ATOMIC_RELEASE);
	assert_int_equal(pthread_create(&fx->pauser, NULL, pauser, fx), 0);
	while (__atomic_load_n(&fx->vm.parked, __ATOMIC_RELAXED) < NCPUS - 1)
		usleep(100);
	assert_int_equal(vm_pause(&fx->vm, false), -EINPROGRESS);
	usleep(30000);		/* the pauser re-kicks a few times meanwhile */
	assert_int_equal(vm_resume(&fx->vm), 0);
	assert_int_equal(pthread_join(fx->pauser, NULL), 0);
	assert_int_equal(fx->pauser_result, -ECANCELED);
	__atomic_store_n(&fx->stubborn, false, __ATOMIC_RELEASE);
	wait_ticks(fx);
}

static void test_stop_ends_waiting_pause(void **state)
{
	struct fixture *fx = *state;

	__atomic_store_n(&fx->stubborn, true, __ATOMIC_RELEASE);
	assert_int_equal(pthread_create(&fx->pauser, NULL, pauser, fx), 0);
	usleep(5000);
	vm_request_exit(&fx->vm, COVE_EXIT_STOPPED, 0);
	assert_int_equal(pthread_join(fx->pauser, NULL), 0);
	assert_int_equal(fx->pauser_result, -ESRCH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_while_paused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_cancels_pause, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_ends_waiting_pause, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
