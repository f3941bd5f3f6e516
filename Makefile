# Set-up and everyday commands. Each target installs the Debian packages it needs when missing.
SWIFT ?= swift
THREADS ?=
threads_flag = $(if $(THREADS),--threads $(THREADS),)
BIN = .build/release/diffclass
# Vector code: Swift targets baseline x86-64 (SSE2) unless told otherwise. On a CPU with AVX2 and
# FMA, build for it (measured: group norm 2x, the U-Net 5-10% faster). Override: make ARCH_FLAGS=
ARCH_FLAGS ?= $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null && echo "-Xswiftc -target-cpu -Xswiftc haswell -Xcc -march=haswell")
SWIFT_BUILD = $(SWIFT) build -c release $(ARCH_FLAGS)

.PHONY: deps build test demo bench clean

deps:
	@tools/install-deps.sh

build: deps
	$(SWIFT_BUILD) --product diffclass

# Release mode: the numerical tests run real kernels at realistic sizes.
test: deps
	$(SWIFT_BUILD) --build-tests -Xswiftc -enable-testing
	$(SWIFT) test -c release $(ARCH_FLAGS) -Xswiftc -enable-testing --skip-build --disable-swift-testing

# The main job. Until the classifier lands: the engine's self-check, a short benchmark summary,
# and a sample sheet of the shipped Fashion-MNIST model (runs/demo/samples.png).
demo: build
	$(BIN) selfcheck $(threads_flag)
	$(BIN) bench --quick $(threads_flag)
	mkdir -p runs/demo
	$(BIN) sample --model models/fashion-mnist --class all --n 8 --steps 25 --guidance 2 --out runs/demo/samples.png $(threads_flag)

# Engine benchmarks against PyTorch (when a Python with torch is present) at equal threads.
bench: build
	$(BIN) bench $(threads_flag)
	$(BIN) bench --threads 1

clean:
	rm -rf .build
