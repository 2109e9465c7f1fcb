"""The run folder of a training run: what may be written there (``--resume`` / ``--overwrite``, files slsdk
wrote), the metrics log, and putting ``best.pt`` back in step with ``last.pt`` after a kill."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from slsdk.fileio import OutputExistsError, append_text, atomic_copy, atomic_write_text, is_ours, remove
from slsdk.models.torchfile import load_torch_file
from slsdk.train.checkpoint import is_checkpoint_file

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "curves.png", "vocab.json", "report.json")


def config_diff(a: Mapping, b: Mapping) -> list[str]:
    """One line per key whose value differs between ``a`` (the checkpoint's) and ``b`` (now)."""
    keys = sorted(set(a) | set(b))
    return [f"{k}: {a.get(k)!r} (checkpoint) vs {b.get(k)!r} (now)" for k in keys
            if json.dumps(a.get(k), sort_keys=True, default=str) != json.dumps(b.get(k), sort_keys=True, default=str)]


def write_jsonl(path: Path, rows: Sequence[dict], append: bool) -> None:
    """Write (or append to) a JSON-lines log, one row a line."""
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if append:
        append_text(path, text)
    else:
        atomic_write_text(path, text)


def checkpoint_epoch(path: Path, want: str = "epoch"):
    """The epoch (or ``want``: "kind") an slsdk checkpoint records, read lazily; None if it is not one."""
    try:
        ckpt = load_torch_file(path, mmap=True)      # bounded checks first
    except Exception:  # noqa: BLE001 - unreadable / not a torch zip / refused: not a usable checkpoint
        return None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "slsdk-checkpoint":
        return None
    return int(ckpt.get("epoch", -1)) if want == "epoch" else ckpt.get(want)


def check_run_folder(out: Path, resume: bool, overwrite: bool, kind: str | None = None) -> None:
    """Refuse to write a run into a folder that holds another one unless --resume / --overwrite says how, and
    refuse in every case when a run file there is not one slsdk wrote (a user's vocab.json, metrics.jsonl)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise OutputExistsError(f"{out}: is a file or a link, not a folder; choose another --out folder for the run")
    present = [n for n in RUN_FILES if (out / n).exists() or (out / n).is_symlink()]
    foreign = [n for n in present if not is_ours(out / n, is_checkpoint_file if n.endswith(".pt") else None)]
    if foreign:
        raise OutputExistsError(f"{out}: holds {', '.join(foreign)}, which slsdk did not write; slsdk never replaces "
                                "them: move them away or choose another --out folder")
    if not present or resume:
        return
    if not overwrite:
        last = out / "last.pt"
        done = checkpoint_epoch(last) if last.is_file() else None
        what = f"a run ({last}, {done} epoch(s) done)" if done is not None else f"run files ({', '.join(present)})"
        raise OutputExistsError(f"{out} already holds {what}; pass --resume to continue it, "
                                f"--overwrite to start over (replaces {', '.join(present)} only), "
                                "or choose another --out folder")
    for n in ("last.pt", "best.pt"):   # an overwritten run must never be resumed by mistake
        p = out / n
        if p.exists():
            if not p.is_file() or checkpoint_epoch(p) is None:
                raise OutputExistsError(f"{p}: is not an slsdk checkpoint; slsdk does not overwrite it (move it "
                                        "away or choose another --out folder)")
            other = checkpoint_epoch(p, "kind")
            if kind is not None and other != kind:
                raise OutputExistsError(f"{p}: is a {other} checkpoint (another run); --overwrite replaces only a "
                                        f"{kind} run: choose another --out folder")
    for n in ("last.pt", "best.pt"):
        remove(out / n, owned=is_checkpoint_file)


def reconcile_best(ckpt: dict, last_path: Path, best_path: Path, console) -> None:
    """Make best.pt agree with what last.pt records (best.pt is written before last.pt at each new best)."""
    want, done = ckpt.get("best_epoch"), int(ckpt.get("epoch", 0))
    if want is None:
        return
    have = checkpoint_epoch(best_path) if best_path.is_file() else None
    if have == want:
        return
    if have is not None and have > done:
        console.print(f"[yellow]note[/]: {best_path} is from epoch {have}, ahead of {last_path} (epoch {done}): the "
                      "run stopped between the two writes; that epoch is trained again and both are rewritten")
        return
    if want == done:
        atomic_copy(last_path, best_path)
        console.print(f"[yellow]note[/]: {best_path} was {'stale' if have is not None else 'missing'}; rebuilt from "
                      f"{last_path} (epoch {done} is the best epoch {last_path} records)")
        return
    console.print(f"[yellow]warning[/]: {best_path} ({'epoch ' + str(have) if have is not None else 'missing'}) is not "
                  f"the best epoch {want} that {last_path} records, and its weights are gone; best.pt is rewritten "
                  "at the next improvement (or holds the last epoch when the run ends)")


__all__ = ["RUN_FILES", "check_run_folder", "checkpoint_epoch", "config_diff", "reconcile_best", "write_jsonl"]
