#!/usr/bin/env bash
# Prints the OpenBLAS kernel family (OPENBLAS_CORETYPE) this CPU runs best, from /proc/cpuinfo's
# flags, or nothing where it cannot tell. The same decision as BLASCore.bestCoreType(for:), which
# `diffclass` applies to itself by relaunching; the test runner cannot relaunch, so `make test`
# sets the variable from this script. BLASCoreTests.testBestBLASCoreScriptAgreesWithTheEngine keeps
# the two in step.
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
if has avx512f avx512bw avx512dq avx512vl avx512cd avx2 fma; then
    if has avx512_bf16; then echo Cooperlake; else echo SkylakeX; fi
elif has avx2 fma; then echo Haswell
elif has avx; then echo SandyBridge
fi
