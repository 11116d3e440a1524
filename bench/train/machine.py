"""What the machine decides for a training run: its precision, and whether it met its time target.

Precision. bfloat16 pays only where the CPU computes it (AVX512-BF16 or AMX-BF16). Elsewhere
TensorFlow emulates it: on the AVX2-only AMD EPYC this toolkit was also developed on, the airbench
network trained at 3 images/s in mixed_bfloat16 against 26 in float32 (about 9x slower), and a
batch of 1024 asked for 420 GB and was killed. A recipe that asks for mixed_bfloat16 therefore gets
float32 on such CPUs, and its record says why; an explicit `--precision mixed_bfloat16` is obeyed
(with the same warning in the record).

Time targets. A recipe's `time_target_s` is stated for a machine of the development class (2 cores,
about 450 GFLOP/s on a 1024x1024 float32 matmul through TensorFlow: `REFERENCE_RATE`). Every run
measures its own matmul rate at the start; the target for this machine is
time_target_s x REFERENCE_RATE / measured rate (a machine half as fast gets twice the time), and the
record's verdict says whether the training time was within it: "within target for its speed".
The measured rate also reflects other work on a shared machine at that moment, so a busy machine
is judged as the slower machine it then is.
"""
from __future__ import annotations

from typing import Any

from bench.plumbing.environment import BF16_FLAGS, REFERENCE_RATE, cpu_flags, has_bf16_hardware

BF16_EMULATION_NOTE = ("bfloat16 would be emulated: on an AVX2-only AMD EPYC mixed_bfloat16 trained the "
                       "airbench network about 9x slower than float32")


def training_precision(requested: str, explicit: bool = False, flags: list[str] | None = None) -> tuple[str, str]:
    """(policy to train in, why). `requested`: the recipe's (or --precision's, `explicit`) policy;
    `flags`: the CPU's ISA flags (default: this CPU's, bench.plumbing.environment.cpu_flags)."""
    flags = cpu_flags() if flags is None else list(flags)
    if requested != "mixed_bfloat16":
        return requested, f"{requested} as the recipe asks" if not explicit else f"{requested} as --precision asks"
    if has_bf16_hardware(flags):
        found = [f for f in BF16_FLAGS if f in flags]
        return requested, f"mixed_bfloat16: this CPU computes bfloat16 ({', '.join(found)})"
    if explicit:
        return requested, (f"mixed_bfloat16 forced by --precision on a CPU without {' or '.join(BF16_FLAGS)}: "
                           f"{BF16_EMULATION_NOTE}")
    return "float32", (f"float32 instead of the recipe's mixed_bfloat16: this CPU has no {' or '.join(BF16_FLAGS)} "
                       f"(flags: {' '.join(flags) or 'unknown'}), so {BF16_EMULATION_NOTE}")


def scaled_target_s(target_s: float, rate_flops: float) -> float:
    """The dev-class time target scaled to a machine measured at `rate_flops` (matmul FLOP/s)."""
    return float(target_s) * REFERENCE_RATE / float(rate_flops)


def time_verdict(train_time_s: float, target_s: float | None, rate_flops: float | None) -> dict[str, Any] | None:
    """The record's `time_target`: None when the recipe has no target."""
    if not target_s:
        return None
    out: dict[str, Any] = {"target_s_reference": float(target_s), "reference_gflops": REFERENCE_RATE / 1e9,
                           "train_time_s": round(float(train_time_s), 2)}
    if not rate_flops:
        out.update(target_s_here=None, within=None, verdict="no matmul rate measured: target not judged")
        return out
    here = scaled_target_s(target_s, rate_flops)
    within = train_time_s <= here
    out.update(measured_gflops=round(rate_flops / 1e9, 1), target_s_here=round(here, 1), within=within,
               verdict=(f"{'within' if within else 'over'} target for its speed: {train_time_s:.0f} s "
                        f"{'<=' if within else '>'} {here:.0f} s (= {target_s:.0f} s at {REFERENCE_RATE / 1e9:.0f} "
                        f"GFLOP/s, scaled to {rate_flops / 1e9:.0f} GFLOP/s measured here)"))
    return out
