# lemongate: top-level, non-recursive build.
# `make` builds the four binaries into build/; `make check` builds the unit tests twice
# (plain, and with AddressSanitizer + UBSan) and runs every test, root-only testbed ones included.

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   := build
PKGS    := libnetfilter_queue libmnl

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wcast-qual -Wformat=2
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) -fstack-protector-strong -D_FORTIFY_SOURCE=2 \
              -I. -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -MMD -MP
SAN_CFLAGS := -std=gnu11 $(WARN) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
              -fno-sanitize-recover=all -I. -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -MMD -MP
NFQ_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lnetfilter_queue -lnfnetlink -lmnl)
LIBS_DP    := $(NFQ_LIBS) -lpcap -lpthread
LIBS_SRV   := -lssl -lcrypto

POLICY_SRC := $(wildcard policy/*.c)
DP_SRC     := $(filter-out dataplane/main.c,$(wildcard dataplane/*.c))
CTL_SRC    := $(filter-out ctl/main.c,$(wildcard ctl/*.c))
SRVCORE_SRC:= $(wildcard servers/core/*.c)
MAIL_SRC   := $(wildcard servers/mail/*.c servers/imap/*.c)
IMAPD_SRC  := servers/imapd.c
SUBMIT_SRC := $(wildcard servers/submit/*.c)
SUBMITD_SRC:= servers/submitd.c

BINS := $(BUILD)/lemongated $(BUILD)/lemongatectl $(BUILD)/lemongate-imapd $(BUILD)/lemongate-submitd

# obj(VARIANT, SOURCES): object paths of SOURCES in build/VARIANT/
obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -c -o $@ $<

# Component libraries, per variant.
define component_libs
$(BUILD)/$(1)/libpolicy.a: $(call obj,$(1),$(POLICY_SRC))
	@rm -f $$@; ar rcs $$@ $$^
$(BUILD)/$(1)/libdataplane.a: $(call obj,$(1),$(DP_SRC))
	@rm -f $$@; ar rcs $$@ $$^
$(BUILD)/$(1)/libctl.a: $(call obj,$(1),$(CTL_SRC))
	@rm -f $$@; ar rcs $$@ $$^
$(BUILD)/$(1)/libsrvcore.a: $(call obj,$(1),$(SRVCORE_SRC))
	@rm -f $$@; ar rcs $$@ $$^
$(BUILD)/$(1)/libmail.a: $(call obj,$(1),$(MAIL_SRC))
	@rm -f $$@; ar rcs $$@ $$^
$(BUILD)/$(1)/libsubmit.a: $(call obj,$(1),$(SUBMIT_SRC))
	@rm -f $$@; ar rcs $$@ $$^
endef
$(eval $(call component_libs,obj))
$(eval $(call component_libs,asan))

$(BUILD)/lemongated: $(BUILD)/obj/dataplane/main.o $(BUILD)/obj/libdataplane.a $(BUILD)/obj/libpolicy.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS_DP)
$(BUILD)/lemongatectl: $(BUILD)/obj/ctl/main.o $(BUILD)/obj/libctl.a $(BUILD)/obj/libpolicy.a
	$(CC) $(CFLAGS) -o $@ $^
$(BUILD)/lemongate-imapd: $(call obj,obj,$(IMAPD_SRC)) $(BUILD)/obj/libmail.a $(BUILD)/obj/libsrvcore.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS_SRV)
$(BUILD)/lemongate-submitd: $(call obj,obj,$(SUBMITD_SRC)) $(BUILD)/obj/libsubmit.a $(BUILD)/obj/libmail.a $(BUILD)/obj/libsrvcore.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS_SRV)

# Unit tests: COMPONENT/tests/test_NAME.c -> build/VARIANT/tests/COMPONENT_NAME
TEST_SRC := $(wildcard policy/tests/test_*.c dataplane/tests/test_*.c ctl/tests/test_*.c servers/tests/test_*.c)
test_name = $(subst /tests/test_,_,$(basename $(1)))
TESTS_PLAIN := $(foreach t,$(TEST_SRC),$(BUILD)/tests/$(call test_name,$(t)))
TESTS_ASAN  := $(foreach t,$(TEST_SRC),$(BUILD)/asan-tests/$(call test_name,$(t)))

define test_rules
$(BUILD)/tests/$(call test_name,$(1)): $(call obj,obj,$(1)) $(BUILD)/obj/libdataplane.a $(BUILD)/obj/libctl.a $(BUILD)/obj/libsubmit.a $(BUILD)/obj/libmail.a $(BUILD)/obj/libsrvcore.a $(BUILD)/obj/libpolicy.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -o $$@ $$^ $$(LIBS_DP) $$(LIBS_SRV)
$(BUILD)/asan-tests/$(call test_name,$(1)): $(call obj,asan,$(1)) $(BUILD)/asan/libdataplane.a $(BUILD)/asan/libctl.a $(BUILD)/asan/libsubmit.a $(BUILD)/asan/libmail.a $(BUILD)/asan/libsrvcore.a $(BUILD)/asan/libpolicy.a
	@mkdir -p $$(dir $$@)
	$$(CC) -fsanitize=address,undefined -o $$@ $$^ $$(LIBS_DP) $$(LIBS_SRV)
endef
$(foreach t,$(TEST_SRC),$(eval $(call test_rules,$(t))))

# The lock-free table's stress test, once more under ThreadSanitizer: only the modules it
# exercises, since TSan and ASan cannot share a binary.
TSAN_CFLAGS := -std=gnu11 $(WARN) -O1 -g -fsanitize=thread -fno-omit-frame-pointer -I. -Iinclude
TESTS_TSAN  := $(BUILD)/tsan-tests/dataplane_flowtab
$(BUILD)/tsan-tests/dataplane_flowtab: dataplane/tests/test_flowtab.c dataplane/flowtab.c dataplane/qsbr.c dataplane/flowtab.h dataplane/qsbr.h
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) -o $@ $(filter %.c,$^) -lpthread

# libFuzzer targets (clang), run by make check for a bounded number of inputs (tests/run).
FUZZ_DP := $(addprefix dataplane/,packet.c checksum.c engine.c engine6.c nat.c natmap.c flowtab.c qsbr.c \
	timers.c tcpstate.c synhold.c icmpgen.c echomap.c portledger.c observe.c)
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I. -Iinclude
$(BUILD)/fuzz/fuzz_packet: fuzz/fuzz_packet.c $(FUZZ_DP) $(POLICY_SRC) $(wildcard dataplane/*.h policy/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lpthread
$(BUILD)/fuzz/fuzz_policy: fuzz/fuzz_policy.c $(POLICY_SRC) $(wildcard policy/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^)
$(BUILD)/fuzz/fuzz_imap: fuzz/fuzz_imap.c $(IMAPD_SRC) $(MAIL_SRC) servers/core/words.c $(wildcard servers/*/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -Dmain=imapd_main -o $@ $(filter %.c,$^) $(LIBS_SRV)
$(BUILD)/fuzz/fuzz_envelope: fuzz/fuzz_envelope.c servers/submit/envelope.c servers/mail/imapurl.c $(wildcard servers/*/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^)
FUZZERS := $(BUILD)/fuzz/fuzz_packet $(BUILD)/fuzz/fuzz_policy $(BUILD)/fuzz/fuzz_imap $(BUILD)/fuzz/fuzz_envelope

# The servers once more with ASan+UBSan, for their functional tests (servers/tests/*_test.py).
SERVERS_ASAN := $(BUILD)/asan-bin/lemongate-imapd $(BUILD)/asan-bin/lemongate-submitd
$(BUILD)/asan-bin/lemongate-imapd: $(call obj,asan,$(IMAPD_SRC)) $(BUILD)/asan/libmail.a $(BUILD)/asan/libsrvcore.a
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=address,undefined -o $@ $^ $(LIBS_SRV)
$(BUILD)/asan-bin/lemongate-submitd: $(call obj,asan,$(SUBMITD_SRC)) $(BUILD)/asan/libsubmit.a $(BUILD)/asan/libmail.a $(BUILD)/asan/libsrvcore.a
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=address,undefined -o $@ $^ $(LIBS_SRV)

tests: $(TESTS_PLAIN) $(TESTS_ASAN) $(TESTS_TSAN) $(FUZZERS) $(SERVERS_ASAN)

# make bench: figures measured side by side in one run (see README, Performance).
$(BUILD)/bench/bench_flowtab: bench/bench_flowtab.c $(BUILD)/obj/libdataplane.a $(BUILD)/obj/libpolicy.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(filter %.c %.a,$^) $(LIBS_DP) -lurcu-qsbr -lurcu-cds

$(BUILD)/bench/nfq_accept: bench/nfq_accept.c $(BUILD)/obj/libdataplane.a $(BUILD)/obj/libpolicy.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(filter %.c %.a,$^) $(LIBS_DP)

$(BUILD)/bench/connrate: bench/connrate.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< -lpthread

BENCH_BIN := $(BUILD)/bench/bench_flowtab $(BUILD)/bench/nfq_accept $(BUILD)/bench/connrate

# The flow table alone, the whole packet path through the testbed (root), then 10,000 IDLE
# sessions on lemongate-imapd.
bench: all $(BENCH_BIN)
	$(BUILD)/bench/bench_flowtab $(BENCH_FLAGS)
	bench/path.sh
	python3 bench/idle_sessions.py $(BUILD)

check: all tests
	@tests/run $(BUILD)

demo: all
	@testbed/demo

deps:
	scripts/setup.sh

SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system

# The daemon, its command line, their manuals, an example configuration (never over a real
# one) and a systemd unit. The test servers are not installed: they are testbed tools.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSCONFDIR)/lemongate $(DESTDIR)$(SYSTEMDDIR)
	install -m 0755 $(BUILD)/lemongated $(BUILD)/lemongatectl $(DESTDIR)$(SBINDIR)/
	install -m 0644 man/lemongated.8 man/lemongatectl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/lemongate.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 etc/lemongate.conf.example $(DESTDIR)$(SYSCONFDIR)/lemongate/
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' etc/lemongated.service \
		> $(DESTDIR)$(SYSTEMDDIR)/lemongated.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/lemongated.service

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/lemongated $(DESTDIR)$(SBINDIR)/lemongatectl \
		$(DESTDIR)$(MANDIR)/man8/lemongated.8 $(DESTDIR)$(MANDIR)/man8/lemongatectl.8 \
		$(DESTDIR)$(MANDIR)/man5/lemongate.conf.5 \
		$(DESTDIR)$(SYSCONFDIR)/lemongate/lemongate.conf.example \
		$(DESTDIR)$(SYSTEMDDIR)/lemongated.service

clean:
	rm -rf $(BUILD)

.PHONY: all tests check bench demo deps install uninstall clean

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
