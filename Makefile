# slmd build.  `make help` lists the targets.
#
# Layout of the build (all under $(BUILD)):
#   obj/<src>.o         one object per source file, with a .d dependency file
#   lib/libslmcore.a    every module of common/ engine/ cache/ numa/ dataplane/
#                       daemon/ ctl/ except the program mains (*_main.c)
#   lib/libslmclient.*  the public client library (client/client*.c and the
#                       wire codec it shares with the daemon), its
#                       pkg-config file in lib/pkgconfig/slmclient.pc
#   bin/slmd slmctl slm the programs
#   tests/unit_tests    every CUnit suite in tests/unit/, one runner
#
# Conventions that keep this file from growing with the code:
#   - a new module is picked up by its folder; no list to edit;
#   - a file named *_avx2.c, *_avx512.c or *_amx.c is built with that ISA's
#     flags, every other file for the x86-64-v2 baseline (run-time dispatch
#     chooses the wide kernels);
#   - a program's main lives in <folder>/<program>_main.c;
#   - a file named *_jemalloc.c is built only with jemalloc, one named
#     *_nojemalloc.c only without it (NO_JEMALLOC=1, as `make asan` does):
#     the two implement the same internal interface.

BUILD   ?= build
V       ?= 0
Q        = $(if $(filter 1,$(V)),,@)
say      = $(if $(filter 1,$(V)),,@echo "  $(1) $(2)")
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
DESTDIR ?=
CC      ?= gcc
CLANG   ?= clang

# The Debian packages the project needs: the one list.
DEB_PACKAGES := build-essential pkg-config clang llvm cppcheck clang-format \
	liburing-dev libhwloc-dev libnuma-dev libcunit1-dev libjemalloc-dev \
	libinih-dev libcjson-dev libpcre2-dev libutf8proc-dev libsodium-dev \
	libsystemd-dev libmicrohttpd-dev libxxhash-dev liburcu-dev \
	libdpdk-dev dpdk xz-utils iproute2 ethtool python3 systemd \
	iputils-ping iputils-arping \
	debhelper dpkg-dev fakeroot lintian man-db

PKG_LIBS := inih libcjson cunit liburing hwloc libsodium libsystemd jemalloc \
	libpcre2-8 libpcre2-32 libutf8proc libxxhash libmicrohttpd

ISA_BASE   := -march=x86-64-v2 -mtune=generic
ISA_AVX2   := -mavx2 -mfma -mf16c -mbmi -mbmi2 -mlzcnt -mpopcnt
# The avx512 tier needs exactly these at run time (engine/cpu.c checks the
# same list), so Cascade Lake and Ice Lake servers get it too; a kernel that
# wants BF16 or VBMI asks for it with a target attribute and a CPU check.
ISA_AVX512 := $(ISA_AVX2) -mavx512f -mavx512bw -mavx512vl -mavx512dq \
	-mavx512cd -mavx512vnni
ISA_AMX    := $(ISA_AVX512) -mavx512bf16 -mamx-tile -mamx-int8 -mamx-bf16

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wno-unused-parameter \
	-Wno-format-truncation
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIC
OPT      ?= -O2
SAN      ?=
CFLAGS_COMMON = -std=gnu11 $(OPT) -g -fno-omit-frame-pointer $(WARN) \
	$(HARDEN) $(SAN) -D_GNU_SOURCE -I. -Iinclude -I$(BUILD)/gen \
	$(shell pkg-config --cflags $(PKG_LIBS) 2>/dev/null)
LDFLAGS_COMMON = -pie -Wl,-z,relro,-z,now $(SAN)
LDLIBS_COMMON  = $(shell pkg-config --libs $(PKG_LIBS) 2>/dev/null) -lm -lpthread

ifeq ($(NO_JEMALLOC),1)
LDLIBS_COMMON := $(filter-out -ljemalloc,$(LDLIBS_COMMON))
CFLAGS_COMMON += -DSLM_NO_JEMALLOC
endif

# DPDK.  Only the files that use it see its flags: dataplane/dpdk*.c (the
# DPDK backend) and client/*_plugin.c (the client's memif transport, a
# shared object of its own).  Its -march is dropped: those files build
# for the same baseline as the rest.  Programs that use the backend (slmd,
# the unit tests) link DPDK's shared libraries; EAL loads the drivers
# (PMDs) from its plugin folder at start.  The memif plugin links the few
# static libraries it needs, so a client process loads no PMD folder.
HAVE_DPDK := $(shell pkg-config --exists libdpdk 2>/dev/null && echo 1)
DPDK_CFLAGS := $(filter-out -march=% -mtune=%,$(shell pkg-config --cflags libdpdk 2>/dev/null))
DPDK_LIBS := -Wl,--as-needed -lrte_ethdev -lrte_mbuf -lrte_mempool \
	-lrte_ring -lrte_eal -lrte_kvargs -lrte_net -lrte_bus_vdev \
	-Wl,--no-as-needed
DPDK_STATIC_LIBS := -Wl,--whole-archive -l:librte_net_memif.a \
	-l:librte_bus_vdev.a -l:librte_mempool_ring.a -Wl,--no-whole-archive \
	-l:librte_ethdev.a -l:librte_hash.a -l:librte_rcu.a -l:librte_net.a \
	-l:librte_mbuf.a -l:librte_mempool.a -l:librte_ring.a \
	-l:librte_meter.a -l:librte_eal.a -l:librte_kvargs.a \
	-l:librte_telemetry.a -l:librte_pci.a -lnuma -lbsd -ldl -lpthread -lm
ifeq ($(HAVE_DPDK),1)
LDLIBS_COMMON += $(DPDK_LIBS)
endif

CORE_DIRS  := common engine cache numa dataplane daemon ctl
CORE_SRCS  := $(filter-out %_main.c,$(wildcard $(addsuffix /*.c,$(CORE_DIRS))))
ifeq ($(NO_JEMALLOC),1)
CORE_SRCS  := $(filter-out %_jemalloc.c,$(CORE_SRCS))
else
CORE_SRCS  := $(filter-out %_nojemalloc.c,$(CORE_SRCS))
endif
ifeq ($(HAVE_DPDK),1)
CORE_SRCS  := $(filter-out dataplane/dpdk_none.c,$(CORE_SRCS))
else
CORE_SRCS  := $(filter-out dataplane/dpdk%.c,$(CORE_SRCS)) dataplane/dpdk_none.c
endif
CLIENT_LIB_SRCS := $(wildcard client/client*.c)
# The client library carries the wire codec it shares with the daemon.
# These objects are in libslmcore.a as well; a program linking both
# archives takes each object once.
CLIENT_SHARED_SRCS := dataplane/proto.c dataplane/peer.c dataplane/keys.c \
	common/err.c
SLM_SRCS   := $(filter-out $(CLIENT_LIB_SRCS) client/%_plugin.c,$(wildcard client/*.c))
# Transport plugins of libslmclient, loaded when a URL needs them
# (client/memif_plugin.c: memif:// over DPDK).
MEMIF_PLUGIN := $(if $(HAVE_DPDK),$(BUILD)/lib/slmclient/libslmclient-memif.so)
UNIT_SRCS  := $(wildcard tests/unit/*.c)
# Test-side code: tests/tools/*.c is linked into the unit tests and the
# test tools; a tool's main is tests/tools/<tool>_main.c.
TOOL_SRCS  := $(filter-out %_main.c,$(wildcard tests/tools/*.c))
TOOL_MAINS := $(wildcard tests/tools/*_main.c)
BENCH_SRCS := $(wildcard bench/*.c)
PROGRAMS   := $(patsubst %_main.c,%,$(notdir $(wildcard $(addsuffix /*_main.c,$(CORE_DIRS)))))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CORE_OBJS := $(call obj,$(CORE_SRCS))
CLIENT_OBJS := $(call obj,$(CLIENT_LIB_SRCS) $(CLIENT_SHARED_SRCS))
SLM_OBJS := $(call obj,$(SLM_SRCS))
UNIT_OBJS := $(call obj,$(UNIT_SRCS))
TOOL_OBJS := $(call obj,$(TOOL_SRCS))
TOOL_BINS := $(patsubst tests/tools/%_main.c,$(BUILD)/tests/%,$(TOOL_MAINS))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))

CORE_LIB   := $(BUILD)/lib/libslmcore.a
CLIENT_A   := $(BUILD)/lib/libslmclient.a
CLIENT_SO  := $(BUILD)/lib/libslmclient.so
CLIENT_SO1 := $(BUILD)/lib/libslmclient.so.1
CLIENT_PC  := $(BUILD)/lib/pkgconfig/slmclient.pc
CLIENT_LDLIBS := $(shell pkg-config --libs libsodium 2>/dev/null) -lpthread -ldl
BINS       := $(addprefix $(BUILD)/bin/,$(PROGRAMS)) $(if $(SLM_SRCS),$(BUILD)/bin/slm)
UNIT_BIN   := $(BUILD)/tests/unit_tests
FEATURES_H := $(BUILD)/gen/slm_features.h

.PHONY: all deps testdata test unit asan run install deb bench fuzz lint format clean help
.DEFAULT_GOAL := all
# Program mains are built through a pattern chain, which would make them
# intermediate (deleted after linking); keep them so relinks stay
# incremental.  Only these: a blanket .SECONDARY would let make skip a new
# object whose source is older than the archive.
.SECONDARY: $(call obj,$(wildcard $(addsuffix /*_main.c,$(CORE_DIRS))))

all: $(BINS) $(if $(CLIENT_LIB_SRCS),$(CLIENT_A) $(CLIENT_SO) $(CLIENT_PC)) \
	$(MEMIF_PLUGIN) $(UNIT_BIN) $(TOOL_BINS) $(BENCH_BINS)

help:
	@echo "make deps    install the Debian packages (needs root or sudo)"
	@echo "make         build into $(BUILD)/"
	@echo "make test    deps + build + every unit and integration test"
	@echo "make asan    the tests under AddressSanitizer + UBSan"
	@echo "make run     deps + build + start slmd with configs/slmd.conf"
	@echo "make bench   benchmarks (results in docs/benchmarks.md)"
	@echo "make fuzz    libFuzzer harnesses for a bounded time"
	@echo "make lint    clang-format check and cppcheck"
	@echo "make install PREFIX=... DESTDIR=..."
	@echo "make deb     Debian packages into $(BUILD)/deb/ (dpkg-buildpackage)"

deps:
	@./tools/deps.sh $(DEB_PACKAGES)

# The feature header: probes in one place, no #if in function bodies.
# Rewritten on every run but replaced only when it changes (LIBDIR given
# on the command line), so objects that include it rebuild only then.
$(FEATURES_H): FORCE
	@mkdir -p $(dir $@)
	@./tools/features.sh "$(LIBDIR)" > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

FORCE:

$(BUILD)/obj/%.o: %.c | $(FEATURES_H)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_COMMON) $(ISA_BASE) -MMD -MP -c $< -o $@

DPDK_OBJS := $(call obj,$(filter dataplane/dpdk%.c client/%_plugin.c,\
	$(filter-out dataplane/dpdk_none.c,$(CORE_SRCS)) $(wildcard client/*_plugin.c)))
$(DPDK_OBJS): $(BUILD)/obj/%.o: %.c | $(FEATURES_H)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_COMMON) $(ISA_BASE) $(DPDK_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%_avx2.o: %_avx2.c | $(FEATURES_H)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_COMMON) $(ISA_BASE) $(ISA_AVX2) -MMD -MP -c $< -o $@

$(BUILD)/obj/%_avx512.o: %_avx512.c | $(FEATURES_H)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_COMMON) $(ISA_BASE) $(ISA_AVX512) -MMD -MP -c $< -o $@

$(BUILD)/obj/%_amx.o: %_amx.c | $(FEATURES_H)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_COMMON) $(ISA_BASE) $(ISA_AMX) -MMD -MP -c $< -o $@

$(CORE_LIB): $(CORE_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

$(CLIENT_A): $(CLIENT_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(call say,AR,$@)
	$(Q)ar rcs $@ $^

# Only the slm_client_* API is exported (client/libslmclient.map).
$(CLIENT_SO1): $(CLIENT_OBJS) client/libslmclient.map
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,libslmclient.so.1 \
		-Wl,--version-script=client/libslmclient.map -Wl,-z,relro,-z,now \
		$(SAN) -o $@ $(CLIENT_OBJS) $(CLIENT_LDLIBS)

# The memif transport: its own object with DPDK linked in statically and
# nothing exported but the transport table (client/memif_plugin.map).
$(MEMIF_PLUGIN): $(BUILD)/obj/client/memif_plugin.o $(BUILD)/obj/dataplane/pkt.o \
		client/memif_plugin.map
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) -shared -Wl,--version-script=client/memif_plugin.map \
		-Wl,--exclude-libs,ALL -Wl,-z,relro,-z,now $(SAN) -o $@ \
		$(filter %.o,$^) $(DPDK_STATIC_LIBS)

$(CLIENT_SO): $(CLIENT_SO1)
	$(Q)ln -sf libslmclient.so.1 $@

$(CLIENT_PC): client/slmclient.pc.in Makefile common/version.h
	@mkdir -p $(dir $@)
	$(Q)./tools/gen-pc.sh $(PREFIX) < $< > $@.tmp && mv $@.tmp $@

$(BUILD)/bin/%: $(BUILD)/obj/daemon/%_main.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_COMMON) -o $@ $^ $(LDLIBS_COMMON)

$(BUILD)/bin/%: $(BUILD)/obj/ctl/%_main.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_COMMON) -o $@ $^ $(LDLIBS_COMMON)

$(BUILD)/bin/slm: $(SLM_OBJS) $(CLIENT_A) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_COMMON) -o $@ $^ $(LDLIBS_COMMON)

$(UNIT_BIN): $(UNIT_OBJS) $(TOOL_OBJS) $(filter-out $(BUILD)/obj/client/slm_main.o,$(SLM_OBJS)) $(CLIENT_A) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_COMMON) -o $@ $^ $(LDLIBS_COMMON)

$(BUILD)/tests/%: $(BUILD)/obj/tests/tools/%_main.o $(TOOL_OBJS) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_COMMON) -o $@ $^ $(LDLIBS_COMMON)

# Benchmark programs: one per bench/<name>.c, run by bench/bench_*.sh.
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)
	$(Q)$(CC) $(LDFLAGS_COMMON) -o $@ $^ $(LDLIBS_COMMON)

# Test inputs that are generated rather than stored (see tests/data/README.md).
TESTDATA := $(BUILD)/testdata
VOCAB_XZ := $(wildcard tests/data/vocab/*.gguf.xz)
VOCABS   := $(patsubst tests/data/vocab/%.xz,$(TESTDATA)/vocab/%,$(VOCAB_XZ))

$(TESTDATA)/vocab/%: tests/data/vocab/%.xz
	@mkdir -p $(dir $@)
	$(call say,XZ,$@)
	$(Q)xz -dc $< > $@.tmp && mv $@.tmp $@

# The golden model files (tests/data/golden/README.md): the F32 files are
# regenerated from their recipe (tests/tools/golden.h) and the committed
# tokenizer templates, every other file by `slm quantize` from its F32
# file, as llama-quantize made them.  Each file is accepted under its
# name only if its sha256 equals the manifest's (extra-manifest.json has
# the two F32 files the manifest lacks); a file that differs is kept as
# <name>.mismatch, the step says MISMATCH, and the golden_models
# integration test fails naming it.
GOLDEN_DIR    := tests/data/golden
GOLDEN_REGEN  := $(BUILD)/tests/golden_regen
GOLDEN_MANIFESTS := $(GOLDEN_DIR)/manifest.json $(GOLDEN_DIR)/extra-manifest.json
GOLDEN_TYPES_llama-s  := F16 BF16 Q8_0 Q6_K Q5_K_M Q5_1 Q5_0 Q4_K_M Q4_1 \
	Q4_0 Q3_K_M Q2_K
GOLDEN_TYPES_llama3-s := F16 Q8_0 Q6_K Q5_K_M Q4_K_M Q4_0
GOLDEN_TYPES_qwen2-s  := F16 Q8_0 Q6_K Q5_K_M Q4_K_M Q4_0
GOLDEN_FAMILIES := llama-s llama3-s qwen2-s
GOLDEN_FILES := $(foreach m,$(GOLDEN_FAMILIES),$(TESTDATA)/models/$(m)-F32.gguf \
	$(foreach t,$(GOLDEN_TYPES_$(m)),$(TESTDATA)/models/$(m)-$(t).gguf))

define golden_f32_rule
$(TESTDATA)/models/$(1)-F32.gguf: $(GOLDEN_REGEN) $(GOLDEN_DIR)/template-$(1).gguf $(GOLDEN_MANIFESTS)
	@mkdir -p $$(dir $$@)
	$$(call say,GEN,$$@)
	$(Q)$(GOLDEN_REGEN) f32 $(1) $(GOLDEN_DIR)/template-$(1).gguf $$@.new
	$(Q)$(GOLDEN_REGEN) accept $$@.new $$@ $(GOLDEN_MANIFESTS) || true
endef

define golden_quant_rule
$(TESTDATA)/models/$(1)-$(2).gguf: $(TESTDATA)/models/$(1)-F32.gguf $(BUILD)/bin/slm $(GOLDEN_REGEN)
	$$(call say,QUANT,$$@)
	$(Q)$(BUILD)/bin/slm quantize --quiet $$< $$@.new $(2)
	$(Q)$(GOLDEN_REGEN) accept $$@.new $$@ $(GOLDEN_MANIFESTS) || true
endef

$(foreach m,$(GOLDEN_FAMILIES),$(eval $(call golden_f32_rule,$(m))))
$(foreach m,$(GOLDEN_FAMILIES),$(foreach t,$(GOLDEN_TYPES_$(m)),\
	$(eval $(call golden_quant_rule,$(m),$(t)))))

testdata: $(VOCABS) $(GOLDEN_FILES)

test: deps all testdata
	@SLM_TESTDATA=$(abspath $(TESTDATA)) ./tests/run.sh $(BUILD)

# Tests only, without deps (for a tree whose packages are known present).
unit: all testdata
	@SLM_TESTDATA=$(abspath $(TESTDATA)) ./tests/run.sh $(BUILD)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan NO_JEMALLOC=1 OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" all testdata
	@SLM_TESTDATA=$(abspath build-asan/testdata) ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
		LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		SLM_SANITIZED=1 ./tests/run.sh build-asan

run: deps all $(VOCABS)
	$(BUILD)/bin/slmd -c configs/slmd.conf

bench: all testdata $(BENCH_BINS)
	@./bench/run.sh $(BUILD)

FUZZ_SECONDS ?= 60
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
fuzz: deps
	@./tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_SRCS)

LINT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
lint:
	@clang-format --dry-run --Werror $(LINT_SRCS)
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--inline-suppr --suppress=missingIncludeSystem -I. -Iinclude \
		--std=c11 -D__GNUC__ -D_GNU_SOURCE $(CORE_DIRS) client tests
	@echo "lint: clean"

format:
	@clang-format -i $(LINT_SRCS)

install: all
	@./tools/install.sh "$(DESTDIR)" "$(PREFIX)" "$(BUILD)" "$(LIBDIR)"

# The Debian packages (debian/): slmd, and libslmclient1 + -dev when the
# tree has the client library.  docs/operations.md installs them.
deb: deps
	@./tools/build-deb.sh "$(BUILD)"

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
