"""The machine a benchmark ran on, named in every table it prints: CPU model, vector instruction sets, cores."""

from __future__ import annotations

import os
import platform

# The instruction sets that decide XLA:CPU's and MKL's kernels (AVX-512 runs the 1B model 2-3x faster than AVX2).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def cpu_info() -> dict:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return dict(cpu=model, isa=[f for f in ISA_FLAGS if f in flags], cores=len(os.sched_getaffinity(0)))


def machine_line() -> str:
    info = cpu_info()
    return f"machine: {info['cpu']}, {info['cores']} cores, {'+'.join(info['isa']) or 'no AVX2'}"
