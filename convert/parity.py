"""Parity between the torch model and a converted file, measured the way phones run it.

Every video is cut into fixed chunks (the last one zero-padded), each chunk
runs with the state the previous chunk returned, and the per-chunk log-probs are concatenated and
trimmed to ``ceil(T / output_stride)``. The reference is always the fp32 torch model run the same
way, so int8 figures are against fp32. Figures: max / mean absolute log-prob error, per-frame cosine
of the centred log-probs (= centred logits), argmax agreement and, with gloss references, the greedy
CTC WER of both (percent) and their difference.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

__all__ = ["prepare_video", "chunk_video", "TorchRunner", "load_runner", "run_streaming", "run_offline",
           "greedy_ids", "wer_percent", "compare_log_probs", "measure_fidelity", "INT8_WER_BUDGET"]

INT8_WER_BUDGET = 0.5  # absolute WER points int8 may lose against fp32 torch

Runner = Callable[[Sequence], list]


def prepare_video(frames, image_size: int | None = None, mean=None, std=None):
    """frames -> float32 tensor [T, 3, S, S] as the model expects.

    uint8 frames ([T,3,H,W] or [T,H,W,3]) go through the evaluation transform the model was trained
    and is served with (shorter side to round(S*256/224), centre crop S, normalise with mean/std: the
    manifest's ``input`` section), so fidelity and calibration see exactly what the runtime feeds.
    Float frames are taken as already normalised (resized bilinearly if their size differs).
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if x.dim() == 5 and x.shape[0] == 1:
        x = x[0]
    if x.dim() != 4:
        raise ValueError(f"a video must be [T, 3, H, W] or [T, H, W, 3], got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        if mean is None or std is None or image_size is None:
            raise ValueError("uint8 frames need the model's input size and mean/std to be preprocessed")
        if x.shape[-1] != 3 and x.shape[1] == 3:
            x = x.permute(0, 2, 3, 1)
        if x.shape[-1] != 3:
            raise ValueError(f"a video must have 3 colour channels, got shape {tuple(x.shape)}")
        from slsdk.data.transforms import eval_transform

        return eval_transform(int(image_size), mean, std)(x.contiguous().numpy()).contiguous()
    if x.shape[1] != 3 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] != 3:
        raise ValueError(f"a video must have 3 colour channels, got shape {tuple(x.shape)}")
    x = x.float()
    if image_size is not None and tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x.contiguous()


def chunk_video(video, chunk_frames: int) -> list:
    """[T,3,S,S] -> list of [1, C, 3, S, S] chunks; the last is zero-padded (as the runtime and
    ``StreamingStudent.forward`` pad it)."""
    import torch

    t = video.shape[0]
    if t == 0:
        raise ValueError("empty video (0 frames)")
    n = math.ceil(t / chunk_frames)
    pad = n * chunk_frames - t
    if pad:
        video = torch.cat([video, video.new_zeros(pad, *video.shape[1:])], 0)
    return [video[i * chunk_frames:(i + 1) * chunk_frames].unsqueeze(0) for i in range(n)]


class TorchRunner:
    """The torch export module behind the same interface as the runtime runners (numpy out)."""

    runtime = "torch"

    def __init__(self, module):
        self.module = module.eval()

    def __call__(self, inputs: Sequence) -> list:
        import numpy as np
        import torch

        ts = [x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, dtype=np.float32)) for x in inputs]
        with torch.no_grad():
            out = self.module(*ts)
        if isinstance(out, torch.Tensor):
            out = (out,)
        return [o.detach().float().numpy() for o in out]


def load_runner(target: str, path: str | os.PathLike) -> Runner | None:
    """A runner for ``path`` in ``target``'s runtime here, or None where none runs on this machine."""
    from slsdk.convert.targets import get_target

    t = get_target(target)
    if t.runtime_here == "onnxruntime":
        from slsdk.convert.onnx import OnnxRunner

        return OnnxRunner(path)
    if t.name == "executorch":
        from slsdk.convert.executorch import ExecuTorchRunner

        return ExecuTorchRunner(path)
    if t.name == "executorch-coreml":
        from slsdk.convert.executorch import ExecuTorchRunner, coreml_backend_available

        return ExecuTorchRunner(path) if coreml_backend_available() else None
    if t.name == "coreml":
        from slsdk.convert.coreml import CoreMLRunner, prediction_available

        return CoreMLRunner(path) if prediction_available() else None
    raise ValueError(f"no runner for target {t.name!r}")


def run_streaming(runner: Runner, video, *, chunk_frames: int, init_state: Sequence, output_stride: int):
    """Run a prepared video [T,3,S,S] chunk by chunk carrying state; returns log-probs [T', V] (numpy)."""
    import numpy as np

    state = [np.asarray(s, dtype=np.float32) for s in init_state]
    outs = []
    for chunk in chunk_video(video, chunk_frames):
        res = runner([chunk.numpy(), *state])
        if len(res) != 1 + len(state):
            raise RuntimeError(f"model returned {len(res)} outputs, expected log_probs + {len(state)} states")
        lp, state = res[0], list(res[1:])
        outs.append(np.asarray(lp, dtype=np.float32).reshape(-1, lp.shape[-1]))
    lp = np.concatenate(outs, 0)
    return lp[: math.ceil(video.shape[0] / output_stride)]


def run_offline(runner: Runner, video):
    """Run a whole prepared video [T,3,S,S] at once (offline models); returns log-probs [T', V]."""
    import numpy as np

    lp = runner([video.unsqueeze(0).numpy()])[0]
    return np.asarray(lp, dtype=np.float32).reshape(-1, lp.shape[-1])


def greedy_ids(log_probs, blank_id: int = 0) -> list[int]:
    """Greedy CTC decode [T, V] -> ids (slsdk.decode.greedy when available)."""
    import numpy as np

    try:
        from slsdk.decode import greedy  # type: ignore[attr-defined]

        return [int(i) for i in greedy(np.asarray(log_probs))]
    except ImportError:
        pass
    best = np.asarray(log_probs).argmax(-1)
    out, prev = [], None
    for i in best.tolist():
        if i != prev and i != blank_id:
            out.append(int(i))
        prev = i
    return out


def wer_percent(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
    """Corpus WER in percent over token sequences (slsdk.eval.wer when available, else jiwer)."""
    try:
        from slsdk.eval import wer as _wer  # type: ignore[attr-defined]
    except ImportError:
        _wer = None
    if _wer is not None:
        res = _wer([[str(t) for t in r] for r in refs], [[str(t) for t in h] for h in hyps])
        return 100.0 * float(res.wer)
    import jiwer

    r = [" ".join(str(t) for t in ref) for ref in refs]
    h = [" ".join(str(t) for t in hyp) for hyp in hyps]
    n_ref = sum(len(ref) for ref in refs)
    if n_ref == 0:
        raise ValueError("WER needs at least one non-empty reference")
    # jiwer refuses empty strings; score empty references/hypotheses by hand
    errs = 0
    pairs_r, pairs_h = [], []
    for ref, hyp, rs, hs in zip(refs, hyps, r, h):
        if not ref or not hyp:
            errs += max(len(ref), len(hyp))
        else:
            pairs_r.append(rs)
            pairs_h.append(hs)
    if pairs_r:
        out = jiwer.process_words(pairs_r, pairs_h)
        errs += out.substitutions + out.deletions + out.insertions
    return 100.0 * errs / n_ref


def compare_log_probs(ref: Sequence, got: Sequence) -> dict:
    """Error figures between two lists of [T', V] log-prob arrays (same shapes)."""
    import numpy as np

    a = np.concatenate([np.asarray(x, dtype=np.float64) for x in ref], 0)
    b = np.concatenate([np.asarray(x, dtype=np.float64) for x in got], 0)
    if a.shape != b.shape:
        raise ValueError(f"log-prob shapes differ: reference {a.shape}, converted {b.shape}")
    if not np.isfinite(b).all():
        return {"max_abs_err": float("inf"), "mean_abs_err": float("inf"), "cosine": 0.0, "min_cosine": 0.0,
                "argmax_agreement": 0.0, "frames": int(a.shape[0]), "finite": False}
    err = np.abs(a - b)
    ac = a - a.mean(-1, keepdims=True)
    bc = b - b.mean(-1, keepdims=True)
    cos = (ac * bc).sum(-1) / np.maximum(np.linalg.norm(ac, axis=-1) * np.linalg.norm(bc, axis=-1), 1e-12)
    return {"max_abs_err": float(err.max()), "mean_abs_err": float(err.mean()), "cosine": float(cos.mean()),
            "min_cosine": float(cos.min()), "argmax_agreement": float((a.argmax(-1) == b.argmax(-1)).mean()),
            "frames": int(a.shape[0]), "finite": True}


def measure_fidelity(reference: Runner, converted: Runner, videos: Iterable, *, refs: Sequence | None = None,
                     mode: str = "streaming", chunk_frames: int | None = None, init_state: Sequence = (),
                     output_stride: int = 4, precision: str = "fp32", blank_id: int = 0,
                     wer_budget: float = INT8_WER_BUDGET) -> dict:
    """Run both over the prepared videos and report the figures that go into ``manifest.fidelity``."""
    videos = list(videos)
    if not videos:
        raise ValueError("parity needs at least one video")
    ref_lps, got_lps = [], []
    for v in videos:
        if mode == "streaming":
            kw = dict(chunk_frames=chunk_frames, init_state=init_state, output_stride=output_stride)
            ref_lps.append(run_streaming(reference, v, **kw))
            got_lps.append(run_streaming(converted, v, **kw))
        else:
            ref_lps.append(run_offline(reference, v))
            got_lps.append(run_offline(converted, v))
    fid = compare_log_probs(ref_lps, got_lps)
    fid["videos"] = len(videos)
    fid["reference"] = "torch fp32"
    fid["mode"] = mode
    if refs is not None:
        ref_hyps = [greedy_ids(x, blank_id) for x in ref_lps]
        got_hyps = [greedy_ids(x, blank_id) for x in got_lps]
        fid["wer_torch"] = wer_percent(refs, ref_hyps)
        fid["wer"] = wer_percent(refs, got_hyps)
        fid["wer_delta"] = fid["wer"] - fid["wer_torch"]
        fid["hyp_agreement"] = float(sum(a == b for a, b in zip(ref_hyps, got_hyps)) / len(videos))
        if precision == "int8":
            fid["wer_budget"] = wer_budget
            fid["meets_int8_budget"] = bool(fid["wer_delta"] <= wer_budget)
    elif precision == "int8":
        fid["meets_int8_budget"] = None  # no held-out glosses: WER not measured
    return fid
