"""How much the demo's teacher depends on its seed: stages 1-3 of ``slsdk demo`` for several seeds.

    python benchmarks/demo_teacher_seeds.py [--seeds 0,1,2] [--data-seed N] [--tower-seed N] [--out DIR] [--repeat]
        [--set FIELD=VALUE ...]

For each seed: the synthetic data set, the teacher's CLIP-tower pretraining and the teacher itself, exactly as
the demo runs them. ``--data-seed`` / ``--tower-seed`` fix the data set / the tower for every seed, as a user's
data set and the released CLIP weights are fixed, so that only the teacher's training draws change; by default
each follows the seed, as ``slsdk demo --seed`` does. Data sets and towers are made once and reused (``demo_data``, ``demo_teacher_tower``, ``demo_train_teacher`` of :mod:`slsdk.demos.pipeline`). Each teacher is scored on dev / test_si / test_us
(greedy, the demo's report). ``--repeat`` trains each seed twice and says whether the two checkpoints are
bit-identical (determinism on this machine). Prints one table and writes ``OUT/teacher_seeds.json``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch

from slsdk.data.readers import read_folder
from slsdk.demos.pipeline import demo_data, demo_teacher_tower, demo_train_teacher
from slsdk.models.factory import load_checkpoint, load_model
from rich.console import Console

from slsdk.tables import fit_table, num
from slsdk.train.evaluate import evaluate


def _weights_digest(checkpoint: Path) -> str:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _cpu() -> str:
    """The CPU and the instruction set torch's kernels use (``ATEN_CPU_CAPABILITY=avx2`` on an AVX512 machine
    runs them as an AVX2 machine does; ``MKL_ENABLE_INSTRUCTIONS=AVX2`` / ``ONEDNN_MAX_CPU_ISA=AVX2`` do the same
    for MKL's matmuls and oneDNN's convolutions)."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())
    return f"{name} (torch kernels {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"


def run_one(out: Path, seed: int, data_seed: int, tower_seed: int, tag: str, train: dict) -> dict:
    t0 = time.perf_counter()
    data = out / f"data-{data_seed}"
    if not (data / "annotations.csv").is_file():
        demo_data(data, quick=False, seed=data_seed)
    tower = out / f"tower-{tower_seed}-data-{data_seed}" / "teacher-visual.safetensors"
    if not tower.is_file():
        demo_teacher_tower(data, tower, quick=False, seed=tower_seed)
    name = f"teacher-{seed}-tower-{tower_seed}-data-{data_seed}" + "".join(f"-{k}-{v}" for k, v in train.items())
    teacher = demo_train_teacher(data, out / (name + tag), tower, quick=False, seed=seed, **train)
    model, vocab, _ = load_model(teacher.best_checkpoint)
    row = {"seed": seed, "data_seed": data_seed, "tower_seed": tower_seed, "train": train, "best_epoch": load_checkpoint(teacher.best_checkpoint).get("epoch"),
           "digest": _weights_digest(teacher.best_checkpoint), "seconds": round(time.perf_counter() - t0, 1)}
    for split in ("dev", "test_si", "test_us"):
        row[split] = evaluate(model, read_folder(data, split), split=split, vocab=vocab, device="cpu").wer
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data-seed", type=int, default=None)
    ap.add_argument("--tower-seed", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("teacher_seeds"))
    ap.add_argument("--repeat", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a TrainConfig field to change from the demo's (e.g. ema_decay=0.99); repeatable")
    args = ap.parse_args(argv)
    train = {k: json.loads(v) for k, v in (a.split("=", 1) for a in args.set)}
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        data_seed = seed if args.data_seed is None else args.data_seed
        tower_seed = seed if args.tower_seed is None else args.tower_seed
        rows.append(run_one(args.out, seed, data_seed, tower_seed, "", train))
        if args.repeat:
            again = run_one(args.out, seed, data_seed, tower_seed, "-again", train)
            rows[-1]["repeat_identical"] = again["digest"] == rows[-1]["digest"]
            rows[-1]["repeat_test_si"] = again["test_si"]
        print(json.dumps(rows[-1]), flush=True)
    si = [r["test_si"] for r in rows]
    summary = {"machine": _cpu(), "rows": rows, "test_si_spread": max(si) - min(si)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "teacher_seeds.json").write_text(json.dumps(summary, indent=2))
    head = ["seed", "data seed", "tower seed", "best epoch", "dev", "test_si", "test_us", "s"] + (["repeat identical"] if args.repeat else [])
    body = [[r["seed"], r["data_seed"], r["tower_seed"], r["best_epoch"], num(r["dev"]), num(r["test_si"]), num(r["test_us"]),
             num(r["seconds"])] + ([str(r["repeat_identical"])] if args.repeat else []) for r in rows]
    console = Console()
    console.print(summary["machine"])
    console.print(fit_table(console, None, head, [[str(c) for c in r] for r in body]))
    print(f"test_si spread: {num(summary['test_si_spread'])} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
