# cove: one Makefile.
#   make              build/cove-vmm, build/libcove.a, build/cove
#   make check-image  cove image against a loopback registry (no KVM)
#   make check-unit   unit tests (cmocka, no KVM)
#   make test         install what is missing, unit + integration tests
#                     (integration runs in the nested-KVM harness when the
#                     machine has no /dev/kvm)
#   make fuzz         each fuzz target for FUZZ_SECONDS, corpus kept
#   make bench        boot, network and file system benchmarks beside QEMU microvm
#   make SAN=1        ASan/UBSan build

ARCH	?= x86_64
CC	?= gcc
BUILD	?= build
VERSION	:= 0.1.0
FUZZ_SECONDS ?= 30

WARN	:= -Wall -Wextra -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
	   -Wshadow -Wpointer-arith -Wvla -Werror
INC	:= -Ivmm -Iarch -Iarch/$(ARCH) -Ivirtio -Idevices
CFLAGS	?= -O2 -g
CFLAGS	+= -std=gnu11 -D_GNU_SOURCE -pthread $(WARN) $(INC) -MMD -MP -DCOVE_VERSION=\"$(VERSION)\"
LDLIBS	:= -luring -lslirp -lpthread

ifeq ($(SAN),1)
CFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS	+= -fsanitize=address,undefined
endif

LIB_SRCS := $(sort $(wildcard vmm/*.c arch/$(ARCH)/*.c virtio/*.c devices/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)

UNIT_SUPPORT := $(sort $(wildcard tests/unit/support/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

# build/cove, the machine manager: cli/cove.c and cli/machine/*.c, with the
# libraries only it needs.
COVE_SRCS := cli/cove.c $(sort $(wildcard cli/machine/*.c))
COVE_OBJS := $(COVE_SRCS:%.c=$(BUILD)/obj/%.o)
COVE_LIB_OBJS := $(filter-out %/cli/cove.o,$(COVE_OBJS))
COVE_LDLIBS := -lcurl -larchive -lext2fs -lcom_err -ljansson -lcrypto

FUZZ_CC	:= clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ_FLAGS := -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/fuzz-obj/%.o)
FUZZ_COVE_OBJS := $(patsubst %,$(BUILD)/fuzz-obj/cli/machine/%.o,digest oci_ref oci_manifest layer_ext4 progress human agent_proto config hostnet)
FUZZ_COVE_BINS := $(BUILD)/fuzz/fuzz_oci_manifest $(BUILD)/fuzz/fuzz_layer $(BUILD)/fuzz/fuzz_agent_proto $(BUILD)/fuzz/fuzz_config \
		  $(BUILD)/fuzz/fuzz_hostnet

# The initrd cove boots machines with: init shim + exec agent, static.
GUEST_MACHINE_SRCS := $(sort $(wildcard guest/machine/*.[ch])) cli/machine/agent_proto.c \
	cli/machine/agent_proto.h guest/machine/build.sh

# Host-side test tools (tests/tools/*.c) on the agent client.
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)

.PHONY: all check-unit check-image test integration fuzz bench clean deps shell
all: $(BUILD)/cove-vmm $(BUILD)/libcove.a $(BUILD)/cove $(BUILD)/guest/machine-initrd.cpio

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libcove.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/cove-vmm: $(BUILD)/obj/cli/cove_vmm.o $(BUILD)/libcove.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(COVE_OBJS) $(FUZZ_COVE_OBJS): INC += -Icli/machine

$(BUILD)/guest/machine-initrd.cpio: $(GUEST_MACHINE_SRCS)
	guest/machine/build.sh $(BUILD)/guest >/dev/null

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/obj/cli/machine/agent_client.o $(BUILD)/obj/cli/machine/agent_proto.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icli/machine $(LDFLAGS) -o $@ $^

$(BUILD)/cove: $(COVE_OBJS) $(BUILD)/libcove.a
	$(CC) $(LDFLAGS) -o $@ $^ $(COVE_LDLIBS) $(LDLIBS)

# Unit tests: each tests/unit/test_X.c with the shared support code.
$(BUILD)/tests/%: tests/unit/%.c $(UNIT_SUPPORT) $(BUILD)/libcove.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit/support $(LDFLAGS) -o $@ $< $(UNIT_SUPPORT) $(BUILD)/libcove.a -lcmocka $(LDLIBS)

# Tests of cove's own code (test_image_*, test_machine_*, test_agent_*) link its objects.
COVE_TEST_BINS := $(filter $(BUILD)/tests/test_image_% $(BUILD)/tests/test_machine_% \
		  $(BUILD)/tests/test_agent_%,$(UNIT_BINS))
$(COVE_TEST_BINS): $(BUILD)/tests/%: tests/unit/%.c $(UNIT_SUPPORT) $(COVE_LIB_OBJS) $(BUILD)/libcove.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icli/machine -Itests/unit/support $(LDFLAGS) -o $@ $< $(UNIT_SUPPORT) $(COVE_LIB_OBJS) $(BUILD)/libcove.a -lcmocka $(COVE_LDLIBS) $(LDLIBS)

# (drives progress bars onto a pty: openpty)
$(BUILD)/tests/test_image_progress: COVE_LDLIBS += -lutil

# (includes the agent's own source, to run its sessions on the host)
$(BUILD)/tests/test_agent_session: guest/machine/agent.c guest/machine/users.c guest/machine/users.h

check-unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# Fuzz targets: library rebuilt with clang and sanitizers.
$(BUILD)/fuzz-obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -pthread $(INC) $(FUZZ_OBJ_FLAGS) -c -o $@ $<

$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -pthread $(INC) -Itests/unit/support $(FUZZ_FLAGS) -o $@ $^ $(LDLIBS)

$(FUZZ_COVE_BINS): $(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJS) $(FUZZ_COVE_OBJS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -D_GNU_SOURCE -pthread $(INC) -Icli/machine $(FUZZ_FLAGS) -o $@ $^ $(COVE_LDLIBS) $(LDLIBS)

fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); \
		mkdir -p tests/fuzz/corpus/$$n; \
		echo "== $$n ($(FUZZ_SECONDS)s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 tests/fuzz/corpus/$$n; done

deps:
	tests/deps.sh

# Integration tests boot real guests: directly with /dev/kvm, else inside
# the nested-KVM harness (one L1 boot for the whole suite).
integration: all $(TOOL_BINS)
	tests/integration/run.sh

# cove image against a registry on loopback; no KVM needed.
check-image: all
	tests/image/run.sh

test: deps
	$(MAKE) all check-unit
	$(MAKE) check-image
	$(MAKE) integration

bench: all
	bench/boot.sh
	bench/net.sh
	bench/fs.sh
	bench/machine.sh

shell: deps all
	tests/shell.sh

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(BUILD)/obj/cli/cove_vmm.d $(UNIT_BINS:=.d) $(COVE_OBJS:.o=.d) $(TOOL_BINS:=.d)
