# SPDX-License-Identifier: MIT
# spkd: `make` builds into build/, `make run` sets up and runs the main
# job, `make test` sets up and runs every test.

CC      ?= cc
CFLAGS  ?= -O3 -g -fno-math-errno
WARN    := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
           -Wstrict-prototypes -Wno-missing-field-initializers
DEPS    := libmicrohttpd jansson sqlite3 libuv zlib gnutls
PKGCFG  = $(shell pkg-config --cflags $(DEPS) 2>/dev/null)
PKGLIBS = $(shell pkg-config --libs $(DEPS) 2>/dev/null)
BLAS_CFLAGS := -I/usr/include/x86_64-linux-gnu/openblas-pthread
BLAS_LIBS   := -lopenblas
ALL_CFLAGS = $(WARN) $(CFLAGS) $(PKGCFG) $(BLAS_CFLAGS) -pthread -MMD -MP \
             -DSPK_WEB_DIR='"$(CURDIR)/web"'
LIBS = $(PKGLIBS) $(BLAS_LIBS) -lm -pthread

# spkctl's modules sit in the library too, so unit tests can link them;
# only client/spkctl.c is its main.
LIB_SRC  := $(wildcard engine/*.c) $(wildcard storage/*.c) \
            $(filter-out server/main.c,$(wildcard server/*.c)) \
            $(filter-out client/spkctl.c,$(wildcard client/*.c))
TEST_SRC := $(wildcard tests/unit/test_*.c)

B   := build
SAN := build/san
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=undefined

LIB_OBJ   := $(LIB_SRC:%.c=$(B)/obj/%.o)
SAN_OBJ   := $(LIB_SRC:%.c=$(SAN)/obj/%.o)
TESTS     := $(TEST_SRC:tests/unit/%.c=$(B)/tests/%)
SAN_TESTS := $(TEST_SRC:tests/unit/%.c=$(SAN)/tests/%)

# The dashboard's chart library, copied from node_modules (`make setup`)
# to where the daemon serves it.
VENDOR := web/vendor/uPlot.iife.min.js web/vendor/uPlot.min.css

.PHONY: all setup run test unit unit-san api web-test lint bench clean \
        format results
all: $(B)/spkd $(B)/spkctl $(VENDOR)

setup:
	@./scripts/setup.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(SAN)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c $< -o $@

$(B)/libspk.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SAN)/libspk.a: $(SAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/spkd: $(B)/obj/server/main.o $(B)/libspk.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# The client needs only jansson of the dependencies.
$(B)/spkctl: $(B)/obj/client/spkctl.o $(B)/libspk.a
	$(CC) $(CFLAGS) -o $@ $^ $(shell pkg-config --libs jansson)

$(B)/tests/%: tests/unit/%.c $(B)/libspk.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libspk.a $(LIBS) -lcmocka

$(SAN)/tests/%: tests/unit/%.c $(SAN)/libspk.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $< $(SAN)/libspk.a $(LIBS) -lcmocka

web/vendor/%: node_modules/uplot/dist/%
	@mkdir -p web/vendor
	cp $< $@

$(B)/spkbench: tests/bench/bench.c $(B)/libspk.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libspk.a $(LIBS)

$(B)/spkrecbench: tests/bench/records_bench.c $(B)/libspk.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libspk.a $(LIBS)

# Speed as ratios to this machine's limits, measured in one run; not a
# test (see README, "Speed").
bench: setup all $(B)/spkbench $(B)/spkrecbench
	./scripts/bench.sh

# Every examples/*-auto.json over three seeds on full Fashion-MNIST (a few
# hours on 2 cores; resumes where it stopped) -> docs/results.md.
results: setup all
	/usr/bin/python3 scripts/results.py

run: setup all
	./scripts/run.sh

unit: $(TESTS)
	@set -e; for t in $(TESTS); do echo "== $$t"; $$t; done

unit-san: $(SAN_TESTS)
	@set -e; for t in $(SAN_TESTS); do echo "== $$t"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $$t; done

api: all
	/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/api

# The dashboard in Debian's headless chromium against a live daemon;
# screenshots land in build/web-test/.
web-test: all
	node --test tests/web/

# The OpenAPI description must pass the linter before tests trust it.
lint:
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
	  ./node_modules/.bin/redocly lint --skip-rule=no-unused-components \
	  api-spec/openapi.yaml

test: setup
	$(MAKE) all
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) unit-san
	$(MAKE) api
	$(MAKE) web-test

format:
	clang-format -i $(wildcard */*.c */*.h tests/unit/*.c)

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(SAN_OBJ:.o=.d) $(B)/obj/server/main.d \
         $(B)/obj/client/spkctl.d
