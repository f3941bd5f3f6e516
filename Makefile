# Set-up and everyday commands. Each target installs the Debian packages it needs when missing.
SWIFT ?= swift
THREADS ?=
threads_flag = $(if $(THREADS),--threads $(THREADS),)
BIN = .build/release/diffclass
# Vector code: Swift targets baseline x86-64 (SSE2) unless told otherwise. On a CPU with AVX2 and
# FMA, build for it (measured: group norm 2x, the U-Net 5-10% faster). Override: make ARCH_FLAGS=
ARCH_FLAGS ?= $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null && echo "-Xswiftc -target-cpu -Xswiftc haswell -Xcc -march=haswell")
SWIFT_BUILD = $(SWIFT) build -c release $(ARCH_FLAGS)

.PHONY: deps build test fuzz demo bench clean install
PREFIX ?= /usr/local

deps:
	@tools/install-deps.sh

build: deps
	$(SWIFT_BUILD) --product diffclass

# Release mode: the numerical tests run real kernels at realistic sizes. They run on the BLAS
# kernel family this CPU runs best (tools/best-blas-core.sh), whatever OPENBLAS_CORETYPE the
# environment holds: some machines set OPENBLAS_CORETYPE=Haswell on AVX-512 CPUs, and on Haswell's
# kernels batch independence does not hold (docs/engine.md), so its tests would only be skipped.
# Another family: make test BLAS_CORE_FOR_TESTS=Haswell.
BLAS_CORE_FOR_TESTS ?= $(shell tools/best-blas-core.sh)
test: deps
	$(SWIFT_BUILD) --build-tests -Xswiftc -enable-testing
	$(if $(BLAS_CORE_FOR_TESTS),OPENBLAS_CORETYPE=$(BLAS_CORE_FOR_TESTS)) $(SWIFT) test -c release $(ARCH_FLAGS) -Xswiftc -enable-testing --skip-build --disable-swift-testing
	SWIFT=$(SWIFT) Fuzzing/fuzz.sh smoke $(FUZZ_SMOKE_RUNS)

# Coverage-guided fuzzing (libFuzzer + AddressSanitizer, Fuzzing/): every parser's target for
# FUZZ_SECONDS each, one after another; `make fuzz FUZZ_TARGETS="fuzz-png fuzz-jpeg"` picks some.
# A separate sanitizer build in Fuzzing/.build. Findings: Fuzzing/.work/artifacts. See docs/reliability.md.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZ_SMOKE_RUNS ?= 2000
fuzz: deps
	SWIFT=$(SWIFT) Fuzzing/fuzz.sh run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The main job: the engine's self-check, then the diffusion classifier on the first DEMO_N
# Fashion-MNIST test images with the shipped model (the leader-gap rule with Z 3: the accuracy of
# the full 500-timestep grid at about 180 U-Net calls per image, docs/classifier.md; probabilities calibrated with the tau fitted on 200 training images), its HTML
# report, and a sample sheet. Rerunning resumes the evaluation.
DEMO_N ?= 100
demo: build
	$(BIN) selfcheck $(threads_flag)
	$(BIN) eval --model models/fashion-mnist --dataset fashion-mnist --split test --limit $(DEMO_N) --leader-gap --gap 3 \
		--calibration models/fashion-mnist/calibration.json --out runs/demo $(threads_flag)
	$(BIN) report runs/demo
	$(BIN) sample --model models/fashion-mnist --class all --n 8 --steps 25 --guidance 2 --out runs/demo/samples.png $(threads_flag)
	@echo "report: runs/demo/report.html   samples: runs/demo/samples.png"

# Engine benchmarks against PyTorch (when a Python with torch is present) at equal threads; the
# one-thread run adds the classifier end to end at equal accuracy (about 10 more minutes).
bench: build
	$(BIN) bench $(threads_flag)
	$(BIN) bench --threads 1 --end-to-end --cross-image

# Copies the built binary to $(PREFIX)/bin (make install PREFIX=$$HOME/.local for a user install).
install: build
	install -d $(PREFIX)/bin
	install -m 755 $(BIN) $(PREFIX)/bin/diffclass

clean:
	rm -rf .build
