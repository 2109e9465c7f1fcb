"""Decoder cost per output step vs beam width, and streaming chunk overhead (not a test).

    python benchmarks/bench_decoder.py [--V 400] [--T 500] [--repeats 3]

Log probs are synthetic but peaky like a trained CTC model (blank-dominated, a few competing
glosses per step), since the beam cost depends on how many prefixes survive.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from slsdk.decode import BeamStream, GreedyStream


def peaky_log_probs(T: int, V: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, size=(T, V))
    # a gloss every ~6 steps, held 1-3 steps, blank elsewhere, with a runner-up gloss
    t = 0
    while t < T:
        t += int(rng.integers(2, 8))
        g = int(rng.integers(1, V))
        for k in range(int(rng.integers(1, 4))):
            if t + k < T:
                logits[t + k, g] += 8.0
                logits[t + k, int(rng.integers(1, V))] += 6.0
        t += 3
    logits[:, 0] += 6.0
    logits -= logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def run(make, x: np.ndarray, chunk: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        s = make()
        t0 = time.perf_counter()
        for a in range(0, x.shape[0], chunk):
            s.accept(x[a : a + chunk])
            s.result()
        s.finalize()
        best = min(best, time.perf_counter() - t0)
    return best / x.shape[0] * 1e6  # microseconds per step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--V", type=int, default=400)
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    x = peaky_log_probs(a.T, a.V)
    print(f"V={a.V}, T={a.T} steps, best of {a.repeats}; us per output step (result() polled per chunk)")
    print(f"{'decoder':<16}{'whole':>10}{'chunk 8':>10}{'chunk 1':>10}{'overhead 1':>12}")
    rows = [("greedy", lambda: GreedyStream())]
    rows += [(f"beam {b}", (lambda b=b: BeamStream(beam=b))) for b in (1, 4, 8, 16, 32)]
    # candidate pruning: only ids with log prob >= -5 (p >= 6.7e-3; ~8 ids per step on this data) extend a prefix
    rows += [(f"beam {b} prune", (lambda b=b: BeamStream(beam=b, prune_logp=-5.0))) for b in (8, 16, 32)]
    for name, make in rows:
        whole = run(make, x, a.T, a.repeats)
        c8 = run(make, x, 8, a.repeats)
        c1 = run(make, x, 1, a.repeats)
        print(f"{name:<16}{whole:>10.1f}{c8:>10.1f}{c1:>10.1f}{c1 - whole:>12.1f}")


if __name__ == "__main__":
    main()
