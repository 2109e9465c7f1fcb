"""Fidelity of a written bundle, measured by the code that serves it.

The converted file is opened from the bundle on disk through ``slsdk.runtime.backends.open_backend`` (the
backend ``slsdk.Recognizer`` uses) and fed the same named tensors as the fp32 torch reference (a
``TorchBackend`` over the model's export module): every video is cut into fixed chunks (the last one
zero-padded), each chunk runs with the state the previous chunk returned, and the per-chunk log-probs are
concatenated and trimmed to ``ceil(T / output_stride)`` (``slsdk.runtime.backends.run_video``); offline models
take the whole video. Videos are preprocessed by ``slsdk.preprocess``, as the runtime does. Figures: max / mean
absolute log-prob error, per-frame cosine of the centred log-probs (= centred logits), argmax agreement and,
with gloss references, the greedy CTC WER of both (percent) and their difference. Where the target cannot run
on this machine the figure says why (the targets table's ``not_here``). A file that takes a batch
(``streaming.max_batch``) also runs the videos stacked as ``Recognizer.decode_streams`` stacks streams
(:func:`run_videos_batched`): ``batch_max_abs_err`` is its largest difference from running each video alone.
"""
from __future__ import annotations

import json
from typing import Iterable, Sequence

import numpy as np

from slsdk.decode import greedy
from slsdk.errors import ConfigError
from slsdk.eval import wer
from slsdk.preprocess import Preprocess, chunk_video, output_frames, prepare_video
from slsdk.quantize.calibration import video_of
from slsdk.runtime.backends import Backend, StreamingStep, open_backend, run_video, streaming_spec
from slsdk.runtime.chunks import batch_plan, num_frames, run_stacked
from slsdk.targets import get_target

__all__ = ["fidelity_videos", "fidelity_landmarks", "fidelity_fusion", "greedy_ids", "wer_percent", "compare_log_probs",
           "measure_fidelity", "bundle_fidelity", "run_videos_batched", "INT8_WER_BUDGET"]

INT8_WER_BUDGET = 0.5  # absolute WER points int8 may lose against fp32 torch


def fidelity_videos(spec: Preprocess, heldout=None, *, seed: int = 0, lengths: Sequence[int] = (16, 24),
                    frames_range: tuple[int, int] | None = None):
    """``(videos [T, 3, S, S] float32, gloss-id references or None, description)`` for parity.

    ``heldout``: (frames, gloss ids) pairs or dicts with ``video``/``frames`` and ``label`` (uint8 frames are
    preprocessed with ``spec``); None gives seeded random (already normalised) videos of ``lengths`` frames.
    ``frames_range``: the (lo, hi) frame counts an offline model takes; held-out clips outside it are refused.
    """
    if heldout is None:
        rng = np.random.default_rng(seed)
        vids = [rng.standard_normal((n, 3, spec.size, spec.size), dtype=np.float32) for n in lengths]
        return vids, None, "seeded random frames (no held-out set given)"
    items = heldout if isinstance(heldout, (list, tuple)) else [heldout[i] for i in range(len(heldout))]
    if not items:
        raise ConfigError("heldout is empty: give at least one (frames, gloss_ids) pair or leave it None")
    vids, refs = [], []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            frames, label = video_of(item), item.get("label")
        else:
            try:
                frames, label = item
            except (TypeError, ValueError):
                raise ConfigError(f"heldout item {i} must be (frames, gloss_ids), got {type(item).__name__}") from None
        vids.append(prepare_video(frames, spec))
        refs.append(None if label is None else [int(x) for x in (label.tolist() if hasattr(label, "tolist") else label)])
    if frames_range is not None:   # an offline model takes clips of lo..hi frames only
        lo, hi = frames_range
        bad = [(i, len(v)) for i, v in enumerate(vids) if not lo <= len(v) <= hi]
        if bad:
            raise ConfigError(f"held-out clips must have {lo}..{hi} frames for this offline model (frames_range), "
                             f"got (item, frames) {bad[:5]}{' ...' if len(bad) > 5 else ''}; convert without "
                             "held-out data or with a frames_range that covers them")
    if any(r is None for r in refs):
        refs = None
    return vids, refs, f"{len(vids)} held-out videos"


def fidelity_landmarks(points: int, dims: int, heldout=None, *, seed: int = 0, lengths: Sequence[int] = (16, 24),
                       frames_range: tuple[int, int] | None = None):
    """:func:`fidelity_videos` for a landmark model: ``(sequences [T, points, dims] float32, references or None,
    description)``. ``heldout``: (normalised landmarks, gloss ids) pairs; None gives seeded random points in
    [-0.5, 0.5] (the normalised range)."""
    if heldout is None:
        rng = np.random.default_rng(seed)
        seqs = [rng.uniform(-0.5, 0.5, (n, points, dims)).astype(np.float32) for n in lengths]
        return seqs, None, "seeded random landmarks (no held-out set given)"
    seqs, refs = [], []
    for i, item in enumerate(heldout):
        try:
            x, label = item
        except (TypeError, ValueError):
            raise ConfigError(f"heldout item {i} must be (landmarks, gloss_ids), got {type(item).__name__}") from None
        x = np.asarray(x, np.float32)
        if x.ndim != 3 or x.shape[1:] != (points, dims):
            raise ConfigError(f"heldout item {i}: landmarks of shape {x.shape}, the model takes [T, {points}, {dims}]")
        seqs.append(x)
        refs.append(None if label is None else [int(v) for v in label])
    if not seqs:
        raise ConfigError("heldout is empty: give at least one (landmarks, gloss_ids) pair or leave it None")
    if frames_range is not None:
        lo, hi = frames_range
        bad = [(i, len(v)) for i, v in enumerate(seqs) if not lo <= len(v) <= hi]
        if bad:
            raise ConfigError(f"held-out sequences must have {lo}..{hi} frames for this offline model, got "
                             f"(item, frames) {bad[:5]}")
    return seqs, (None if any(r is None for r in refs) else refs), f"{len(seqs)} held-out landmark sequences"


def fidelity_fusion(spec: Preprocess, points: int, dims: int, heldout=None, *, seed: int = 0,
                    lengths: Sequence[int] = (16, 24)):
    """:func:`fidelity_videos` for a fusion model: ``(inputs, references or None, description)``, each input a
    mapping ``{"frames": [T, 3, S, S], "landmarks": [T, points, dims]}`` of the same frames. ``heldout``:
    (``{"frames": frames, "landmarks": normalised landmarks}``, gloss ids) pairs (uint8 frames preprocessed with
    ``spec``); None gives seeded random frames and points."""
    if heldout is None:
        vids, _, _ = fidelity_videos(spec, None, seed=seed, lengths=lengths)
        seqs, _, _ = fidelity_landmarks(points, dims, None, seed=seed + 1, lengths=lengths)
        return ([{"frames": v, "landmarks": x} for v, x in zip(vids, seqs)], None,
                "seeded random frames and landmarks (no held-out set given)")
    items = heldout if isinstance(heldout, (list, tuple)) else [heldout[i] for i in range(len(heldout))]
    if not items:
        raise ConfigError("heldout is empty: give at least one ({frames, landmarks}, gloss_ids) pair or leave it None")
    frames, landmarks = [], []
    for i, item in enumerate(items):
        try:
            x, label = item
            frames.append((x["frames"], label))
            landmarks.append((x["landmarks"], label))
        except (TypeError, ValueError, KeyError, IndexError):
            raise ConfigError(f"heldout item {i} must be ({{'frames': ..., 'landmarks': ...}}, gloss_ids), got "
                              f"{type(item).__name__}") from None
    vids, refs, _ = fidelity_videos(spec, frames)
    seqs, _, _ = fidelity_landmarks(points, dims, landmarks)
    bad = [(i, len(v), len(x)) for i, (v, x) in enumerate(zip(vids, seqs)) if len(v) != len(x)]
    if bad:
        raise ConfigError(f"heldout items have frames and landmarks of different lengths (item, frames, landmarks): "
                          f"{bad[:5]}")
    return ([{"frames": v, "landmarks": x} for v, x in zip(vids, seqs)], refs,
            f"{len(vids)} held-out videos with their landmarks")


def greedy_ids(log_probs, blank_id: int = 0) -> list[int]:
    """Greedy CTC decode [T, V] -> ids, by the runtime's decoder (``slsdk.decode.greedy``)."""
    return [int(i) for i in greedy(np.asarray(log_probs), blank=blank_id)]


def wer_percent(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
    """Corpus WER in percent over token sequences, by the scorer of ``slsdk eval`` (``slsdk.eval.wer``)."""
    res = wer([[str(t) for t in r] for r in refs], [[str(t) for t in h] for h in hyps])
    return 100.0 * float(res.wer)


def compare_log_probs(ref: Sequence, got: Sequence) -> dict:
    """Error figures between two lists of [T', V] log-prob arrays (same shapes)."""
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


def measure_fidelity(reference: Backend, converted: Backend, streaming: dict, videos: Iterable, *,
                     refs: Sequence | None = None, precision: str = "fp32", blank_id: int = 0,
                     wer_budget: float = INT8_WER_BUDGET) -> dict:
    """Run both backends over the preprocessed videos (``streaming``: the manifest's section, naming the
    tensors) and report the figures that go into ``manifest.fidelity``."""
    videos = list(videos)
    if not videos:
        raise ValueError("parity needs at least one video")
    ref_lps = [run_video(reference, streaming, v) for v in videos]
    got_lps = [run_video(converted, streaming, v) for v in videos]
    fid = compare_log_probs(ref_lps, got_lps)
    if getattr(converted, "max_batch", 1) > 1 and len(videos) > 1 and streaming_spec(streaming).mode == "streaming":
        batched = run_videos_batched(converted, streaming, videos)
        fid["batch_max_abs_err"] = float(max(np.abs(a - b).max() for a, b in zip(batched, got_lps)))
    fid["videos"] = len(videos)
    fid["reference"] = f"{reference.name} fp32"
    fid["mode"] = streaming_spec(streaming).mode
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


def run_videos_batched(backend: Backend, streaming, videos) -> list[np.ndarray]:
    """Each preprocessed video's log-probs ``[T', V]`` with the videos run together, chunk by chunk: round r
    stacks the r-th chunks of the videos that have one (split into the sizes the file takes, as
    ``Recognizer.decode_streams`` does), each carrying its own state."""
    spec = streaming_spec(streaming)
    step = StreamingStep(backend, spec)
    chunks = [_chunks(v, int(spec.chunk_frames)) for v in videos]
    states = [step.initial_state() for _ in videos]
    outs: list[list] = [[] for _ in videos]
    for r in range(max(map(len, chunks))):
        live = [i for i, c in enumerate(chunks) if r < len(c)]
        at = 0
        for rows, size in batch_plan(len(live), backend.max_batch, backend.batch_sizes):
            group = live[at:at + rows]
            at += rows
            lps, new = run_stacked(step, [chunks[i][r] for i in group], [states[i] for i in group], size)
            for i, lp, st in zip(group, lps, new):
                outs[i].append(np.asarray(lp, np.float32).reshape(-1, lp.shape[-1]))
                states[i] = st
    return [np.concatenate(o)[:output_frames(num_frames(v), int(spec.output_stride))] for o, v in zip(outs, videos)]


def _chunks(video, chunk_frames: int) -> list:
    """A video's chunks ``[1, C, ...]``; a mapping of inputs (a fusion model's) gives a mapping per chunk."""
    if isinstance(video, dict):
        per = {k: chunk_video(np.asarray(v, np.float32), chunk_frames) for k, v in video.items()}
        return [{k: c[i] for k, c in per.items()} for i in range(len(next(iter(per.values()))))]
    return list(chunk_video(np.asarray(video, np.float32), chunk_frames))


def bundle_fidelity(bundle, reference: Backend, videos, *, refs: Sequence | None = None,
                    validation: dict | None = None) -> dict:
    """Fidelity of a written ``Bundle``: its model file opened by ``open_backend`` (the serving backend)
    against ``reference``; where the target cannot run here, the reason and the structural validation."""
    m = bundle.manifest
    t = get_target(m.target)
    safe = json.loads(json.dumps(validation, default=str)) if validation else None
    if not t.can_run_here:
        fid = {"status": "validated, not run", "reason": t.not_here, "validation": safe or {}}
        if m.precision == "int8":
            fid["meets_int8_budget"] = None
        return fid
    converted = open_backend(bundle)
    fid = measure_fidelity(reference, converted, m.streaming, videos, refs=refs, precision=m.precision,
                           blank_id=m.blank_id)
    fid["status"] = "run"
    fid["runtime"] = converted.name
    if safe:
        fid["validation"] = safe
    return fid
