# Set-up and everyday commands. Each target installs the Debian packages it needs when missing.
SWIFT ?= swift
THREADS ?=
threads_flag = $(if $(THREADS),--threads $(THREADS),)
BIN = .build/release/diffclass

.PHONY: deps build test demo bench clean

deps:
	@tools/install-deps.sh

build: deps
	$(SWIFT) build -c release --product diffclass

# Release mode: the numerical tests run real kernels at realistic sizes.
test: deps
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build --disable-swift-testing

# The main job. Until the classifier lands: the engine's self-check and a short benchmark summary.
demo: build
	$(BIN) selfcheck $(threads_flag)
	$(BIN) bench --quick $(threads_flag)

# Engine benchmarks against PyTorch (when a Python with torch is present) at equal threads.
bench: build
	$(BIN) bench $(threads_flag)
	$(BIN) bench --threads 1

clean:
	rm -rf .build
