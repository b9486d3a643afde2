# The two front-door commands: `make demo` and `make test`. Both install missing system packages
# first (as root), so they work on a fresh Debian 12 machine with Swift.
SWIFT ?= swift
CONFIG ?= release

.PHONY: setup build demo test bench clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c $(CONFIG)

demo: build
	$(SWIFT) run -c $(CONFIG) HelloMatmul
	$(SWIFT) run -c $(CONFIG) Counter

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing

bench: build
	$(SWIFT) run -c $(CONFIG) kiln bench

clean:
	rm -rf .build
