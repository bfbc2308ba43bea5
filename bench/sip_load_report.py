"""What `bench sip_load` measured, and its summary against issue 17's goals (the figures
beside the bare pjsua2 floor and sipp's UAS alone)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.procstat import Idle, load


@dataclass
class Step:
    calls: int
    ok: bool
    peak: int  # sipp's own count of calls up at once
    pss_kb: int
    line: str


@dataclass
class Rate:
    cps: int
    ok: bool
    p50: float
    p99: float
    cpu_ms: float  # CPU per call above idle, all of the target's processes (nan: not measured)
    parts_ms: dict[str, float] = field(default_factory=dict)  # the same, per part of the engine


def best(rates: list[Rate]) -> Rate | None:
    good = [r for r in rates if r.ok]
    return good[-1] if good else None


def mark(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(
    n: int,
    up_s: float,
    replaced: float,
    idle: Idle,
    bare_idle: Idle | None,
    engine_steps: list[Step],
    bare_steps: list[Step],
    engine_rates: list[Rate],
    bare_rates: list[Rate],
    sipp_rates: list[Rate],
) -> int:
    def ceiling(steps: list[Step]) -> Step | None:
        good = [s for s in steps if s.ok]
        return good[-1] if good else None

    def failed_at(steps: list[Step]) -> str:
        bad = [s for s in steps if not s.ok]
        return f"first failing step {bad[0].calls}" if bad else "no step failed"

    slots = 4 * n
    e_conc, b_conc = ceiling(engine_steps), ceiling(bare_steps)
    e_cps, b_cps, s_cps = best(engine_rates), best(bare_rates), best(sipp_rates)
    print(f"== summary ({load()} at the end)")
    print(f"idle worker CPU: {idle.worker_pct:.3f} % of a core (goal <= 0.1): "
          f"{mark(idle.worker_pct <= 0.1)}")  # fmt: skip
    print(f"idle node CPU with {n} workers: {idle.cores:.3f} cores (goal < 0.3 with 250): "
          f"{mark(idle.cores < 0.3)}")  # fmt: skip
    if bare_idle:
        print(f"  bare pjsua2 idle: {bare_idle.worker_pct:.3f} % of a core per process, "
              f"{bare_idle.cores:.3f} cores for {n}")  # fmt: skip
    print(f"{n} workers up in {up_s:.1f}s (goal < 20 s for 250): {mark(up_s < 20)}")
    print(f"killed worker replaced in {replaced:.2f}s (goal < 1 s): {mark(replaced < 1)}")
    e_calls = e_conc.calls if e_conc else 0
    print(f"concurrent IVR calls, zero failures: engine {e_calls} ({failed_at(engine_steps)}) "
          f"(goal >= 1000): {mark(e_calls >= 1000)}")  # fmt: skip
    idle_slot = idle.pss_kb / 1024 / slots
    peak_slot = e_conc.pss_kb / 1024 / slots if e_conc and e_conc.pss_kb else float("nan")
    print(f"PSS per call slot: {idle_slot:.2f} MB idle, {peak_slot:.2f} MB with {e_calls} "
          f"calls up (goal <= 3): {mark(peak_slot <= 3)}")  # fmt: skip
    e_rate = e_cps.cps if e_cps else 0
    e_p99 = e_cps.p99 if e_cps else float("nan")
    print(f"CPS ceiling with media, zero failures: engine {e_rate}, p99 set-up {e_p99:.1f} ms "
          f"(goal >= 200, p99 < 150 ms): {mark(e_rate >= 200 and e_p99 < 150)}")  # fmt: skip
    if bare_steps or bare_rates:
        b_calls = b_conc.calls if b_conc else 0
        b_rate = b_cps.cps if b_cps else 0
        b_slot = b_conc.pss_kb / 1024 / slots if b_conc and b_conc.pss_kb else float("nan")
        print(f"bare pjsua2 floor: {b_calls} concurrent ({failed_at(bare_steps)}), "
              f"CPS {b_rate} (p99 {b_cps.p99 if b_cps else float('nan'):.1f} ms), "
              f"PSS {b_slot:.2f} MB per slot")  # fmt: skip
        c_ratio, r_ratio = ratio(e_calls, b_calls), ratio(e_rate, b_rate)
        print(f"engine / bare pjsua2: concurrency {c_ratio:.2f}, CPS {r_ratio:.2f} "
              f"(goal >= 0.7): {mark(c_ratio >= 0.7 and r_ratio >= 0.7)}")  # fmt: skip
        print("  (the steps stop at the first failure or at the highest step: a ratio of 1.00 "
              "may mean both reached it; inf: the bare floor failed its first step)")  # fmt: skip
        both = [(e, b) for e in engine_rates for b in bare_rates if e.cps == b.cps and e.ok]
        if both:
            e, b = both[-1]
            print(f"CPU per call at {e.cps} CPS (above idle): engine {e.cpu_ms:.1f} ms, bare "
                  f"pjsua2 {b.cpu_ms:.1f} ms; bare / engine {b.cpu_ms / e.cpu_ms:.2f}")  # fmt: skip
            split = ", ".join(f"{k} {v:.1f} ms" for k, v in e.parts_ms.items())
            if split:
                print(f"  engine's CPU per call by part: {split}")
    s_rate = s_cps.cps if s_cps else 0
    print(f"sipp UAS alone (signalling bound): {s_rate} CPS; engine / sipp-UAS "
          f"{e_rate / s_rate if s_rate else float('nan'):.2f}")  # fmt: skip
    return 0 if e_conc and e_cps else 1


def ratio(engine: int, bare: int) -> float:
    """engine / bare; infinite when only the bare floor failed its first step."""
    if bare:
        return engine / bare
    return float("inf") if engine else float("nan")
