# The two front-door commands: `make demo` and `make test`. Both install missing system packages
# first (as root), so they work on a fresh Debian 12 machine with Swift.
SWIFT ?= swift
CONFIG ?= release

.PHONY: setup build demo test bench clean proto fixtures fuzz sanitize

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c $(CONFIG)

# The digits demo ends ahead of time: the trained model and its checkpoint are compiled by
# `kiln compile` into an object file, linked with Examples/DigitsC/main.c by cc alone, and the
# program prints the test accuracy the session printed.
DEMO_DIR := .build/digits-demo
CC ?= cc

demo: build
	$(SWIFT) run -c $(CONFIG) HelloMatmul
	$(SWIFT) run -c $(CONFIG) Counter
	$(SWIFT) run -c $(CONFIG) Digits --export $(DEMO_DIR)
	rm -rf $(DEMO_DIR)/artifact
	$(SWIFT) run -c $(CONFIG) kiln compile $(DEMO_DIR)/digits.meta --checkpoint $(DEMO_DIR)/digits \
		--feed 'images=float32[64,8,8,1]' --fetch eval_logits --name digits --out $(DEMO_DIR)/artifact
	$(CC) -O2 -o $(DEMO_DIR)/digits -I $(DEMO_DIR)/artifact Examples/DigitsC/main.c $(DEMO_DIR)/artifact/digits.o \
		$$(ls $(DEMO_DIR)/artifact/*.a 2>/dev/null) -lm -lpthread
	$(DEMO_DIR)/digits $(DEMO_DIR)/test_images.f32 $(DEMO_DIR)/test_labels.i64

# A short pass of every fuzzer (skipped loudly where the toolchain has no libFuzzer), then the
# suite, so the suite's tally is the last thing printed.
test: setup
	FUZZ_SECONDS=$(TEST_FUZZ_SECONDS) FUZZ_OPTIONAL=1 SWIFT=$(SWIFT) bash scripts/fuzz.sh
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

# libFuzzer targets (Sources/Fuzz), FUZZ_SECONDS each (scripts/fuzz.sh says what a finding is and
# where it is saved). FUZZ_TARGETS="FuzzNPY FuzzTFRecord" runs a subset.
FUZZ_SECONDS ?= 60
TEST_FUZZ_SECONDS ?= 5
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) SWIFT=$(SWIFT) bash scripts/fuzz.sh

# The test suite built with AddressSanitizer (C targets too), in its own scratch path.
ASAN_SCRATCH := .build-asan
sanitize: setup
	$(SWIFT) build --build-tests --scratch-path $(ASAN_SCRATCH) -Xswiftc -sanitize=address -Xcc -fsanitize=address
	ASAN_OPTIONS=detect_leaks=0 SWIFT_BACKTRACE=enable=no \
		$(SWIFT) test --skip-build --scratch-path $(ASAN_SCRATCH) --disable-swift-testing

bench: build
	$(SWIFT) run -c $(CONFIG) kiln bench

clean:
	rm -rf .build .build-fuzz .build-asan .fuzz

# Copies the golden files the tests read from ../shared/golden into Tests/RuntimeTests/Fixtures/golden
# (the list: Tests/RuntimeTests/Fixtures/golden-files.txt). Only needed when ../shared/golden changes.
fixtures:
	@bash scripts/sync-fixtures.sh

# Regenerates the committed Swift for protos/*.proto (Sources/Frontend/Interchange/Proto). Only needed after a
# .proto changes: demo and test use the committed files and need no protoc. protoc-gen-swift is
# built from the pinned swift-protobuf dependency, so the generated code matches its runtime.
PROTO_OUT := Sources/Frontend/Interchange/Proto
PROTO_SCRATCH := .build-proto

proto:
	@if ! command -v protoc >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update && apt-get install -y protobuf-compiler || exit 1; \
		else \
			echo "protoc is missing; install it with: sudo apt-get update && sudo apt-get install -y protobuf-compiler" >&2; \
			exit 1; \
		fi; \
	fi
	$(SWIFT) build -c release --product protoc-gen-swift --scratch-path $(PROTO_SCRATCH)
	mkdir -p $(PROTO_OUT)
	rm -f $(PROTO_OUT)/*.pb.swift
	protoc --plugin=protoc-gen-swift=$(PROTO_SCRATCH)/release/protoc-gen-swift \
		--swift_opt=Visibility=Public --swift_out=$(PROTO_OUT) -I protos protos/*.proto
