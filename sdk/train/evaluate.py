"""Decode a split with a teacher or student and score it (WER with sub/del/ins), optionally writing CTM/STM."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slsdk.data.dataset import VideoDataset, batch_to_device, collate, conv_output_length, normalize_of
from slsdk.data.landmark_dataset import FusionDataset, LandmarkDataset, collate_fusion, collate_landmarks
from slsdk.data.readers import DatasetError, require_labels
from slsdk.data.splits import read_split
from slsdk.decode import DEFAULT_BEAM, BeamStream, GreedyStream
from slsdk.errors import ConfigError
from slsdk.eval import convention_for, wer, write_ctm, write_stm
from slsdk.fileio import atomic_write_text, check_replace, output_lock, reading
from slsdk.train.checkpoint import check_vocab, load_model
from slsdk.train.environment import resolve_device

DECODERS = ("greedy", "beam")
DEFAULT_FPS = 25.0
OUTPUT_STRIDE = 4


@dataclass
class Prediction:
    """One decoded video: gloss ids and (start, end) seconds per gloss."""

    id: str
    tokens: list[int]
    times: list[tuple[float, float]]
    num_frames: int


@dataclass
class EvalResult:
    """WER in percent (``wer``) plus its error counts, and the per-utterance hypotheses / references (gloss lists)."""

    wer: float | None               # None: the split has no gloss labels (only hypotheses were written)
    sub: int
    dels: int
    ins: int
    n_ref: int
    hyps: dict[str, list[str]]
    refs: dict[str, list[str]]
    split: str = ""
    decoder: str = "greedy"
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        if self.wer is None:
            return (f"{self.split or 'eval'}: {len(self.hyps)} videos decoded ({self.decoder}); no gloss labels, "
                    f"so no WER" + (f"; hypotheses in {self.files['ctm']}" if "ctm" in self.files else ""))
        return (f"{self.split or 'eval'}: WER {self.wer:.2f}% (sub {self.sub}, del {self.dels}, ins {self.ins}, "
                f"{self.n_ref} ref glosses, {len(self.hyps)} videos, {self.decoder})")


def input_spec(model: nn.Module) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """(image size, mean, std) a model expects, from its config."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        raise ValueError(f"{type(model).__name__} has no .config; cannot tell its input size and normalisation")
    size = getattr(cfg, "input_size", None) or getattr(cfg, "image_size", None)
    if not size:
        raise ValueError(f"{type(cfg).__name__} names no image size")
    return int(size), tuple(cfg.mean), tuple(cfg.std)


def _step_times(model: nn.Module, fps: float) -> tuple[float, float]:
    """(seconds per output step, seconds of the first step's start) for CTM timestamps."""
    stride = getattr(model, "output_stride", OUTPUT_STRIDE)
    return stride / fps, 0.0


@torch.no_grad()
def predict(model: nn.Module, loader, *, device: torch.device | str = "cpu", decoder: str = "greedy",
            beam: int = DEFAULT_BEAM, fps: float = DEFAULT_FPS, progress=None, normalize=None) -> list[Prediction]:
    """Run ``model`` over a DataLoader of ``collate`` batches and CTC-decode each video.

    ``model(videos, lengths)`` must return ``sequence_logits [T', B, V]`` and ``feat_lengths [B]``. uint8 batches
    (:class:`~slsdk.data.dataset.VideoDataset`) are normalised on ``device`` by ``normalize`` (default: the
    loader's dataset's, ``slsdk.data.dataset.batch_to_device``).
    """
    if decoder not in DECODERS:
        raise ConfigError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    was_training = model.training
    model.eval()
    shift, _ = _step_times(model, fps)
    preds: list[Prediction] = []
    normalize = normalize if normalize is not None else normalize_of(loader)
    try:
        for batch in loader:
            videos, dev_lengths, _, _ = batch_to_device(batch, device, normalize)
            lengths = batch["lengths"]
            out = model(videos, dev_lengths)
            lp = F.log_softmax(out["sequence_logits"].float(), dim=-1).cpu()
            fl = out["feat_lengths"].cpu()
            for b, vid in enumerate(batch["ids"]):
                x = lp[: int(fl[b]), b].numpy()
                stream = GreedyStream(frame_shift=shift) if decoder == "greedy" else \
                    BeamStream(beam=beam, frame_shift=shift)
                stream.accept(x)
                r = stream.finalize()
                preds.append(Prediction(vid, list(r.tokens), [(e.start, e.end) for e in r.events],
                                        int(lengths[b])))
            if progress is not None:
                progress(len(batch["ids"]))
    finally:
        model.train(was_training)
    return preds


def score(preds: Sequence[Prediction], samples: Sequence[Any], vocab,
          convention: str = "none") -> tuple[Any, dict, dict]:
    """(WERResult, hyps, refs) of predictions against the samples' gloss sequences (``convention``: "none" or
    "phoenix", the clean-up of :func:`slsdk.eval.wer`)."""
    by_id = {p.id: p for p in preds}
    missing = [s.id for s in samples if s.id not in by_id]
    if missing:
        raise RuntimeError(f"no prediction for {len(missing)} video(s): {missing[:5]}")
    refs = {s.id: list(s.glosses) for s in samples}
    hyps = {s.id: vocab.decode(by_id[s.id].tokens) for s in samples}
    ids = [s.id for s in samples]
    res = wer([refs[i] for i in ids], [hyps[i] for i in ids], convention=convention)
    return res, hyps, refs


def make_loader(samples, vocab, model: nn.Module, *, batch_size: int = 1, num_workers: int = 0,
                sampler=None):
    """Eval DataLoader (no augmentation, no shuffling) for ``samples`` sized for ``model`` (landmark models: their
    normalised landmarks, :class:`~slsdk.data.landmark_dataset.LandmarkDataset`)."""
    if getattr(model, "modality", None) == "landmarks":
        ds = LandmarkDataset(samples, vocab, train=False,
                             output_length_fn=conv_output_length if hasattr(model, "sequence") else None)
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, sampler=sampler,
                                           num_workers=num_workers, collate_fn=collate_landmarks)
    size, mean, std = input_spec(model)
    if getattr(model, "modality", None) == "fusion":   # the frames and their landmarks
        ds = FusionDataset(samples, vocab, size, mean, std, train=False)
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, sampler=sampler,
                                           num_workers=num_workers, collate_fn=collate_fusion)
    ds = VideoDataset(samples, vocab, size, mean, std, train=False)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, sampler=sampler,
                                       num_workers=num_workers, collate_fn=collate)


def _resolve_samples(data, split: str, layout: str):
    if isinstance(data, (str, Path)):
        return read_split(data, split, layout)
    if isinstance(data, Mapping):
        if split not in data:
            raise KeyError(f"split {split!r} not in the given datasets (have {sorted(data)})")
        return list(data[split])
    return list(data)


def write_ctm_stm(preds: Sequence[Prediction], samples: Sequence[Any], vocab, out_dir: str | Path,
                  name: str, *, overwrite: bool = False) -> dict[str, Path]:
    """``{name}.ctm`` (hypotheses with times) and ``{name}.stm`` (references) for NIST sclite."""
    out_dir = Path(out_dir)
    by_id = {p.id: p for p in preds}
    hyps = {}
    for s in samples:
        p = by_id[s.id]
        hyps[s.id] = [(g, t0, max(t1 - t0, 0.0)) for g, (t0, t1) in zip(vocab.decode(p.tokens), p.times)]
    ctm, stm = out_dir / f"{name}.ctm", out_dir / f"{name}.stm"
    write_ctm(ctm, hyps, overwrite=overwrite)
    if not all(s.glosses for s in samples):   # an unlabelled split (a challenge test set): hypotheses only
        return {"ctm": ctm}
    write_stm(stm, {s.id: list(s.glosses) for s in samples}, overwrite=overwrite)
    return {"ctm": ctm, "stm": stm}


def evaluate(checkpoint_or_model, data, split: str = "dev", decoder: str = "greedy", beam: int = DEFAULT_BEAM,
             out_dir: str | Path | None = None, *, vocab=None, layout: str = "folder", batch_size: int = 1,
             device: str = "auto", num_workers: int = 0, overwrite: bool = False,
             convention: str = "auto") -> EvalResult:
    """Decode ``split`` of ``data`` (dataset root, ``{split: samples}`` or a sample list) and score it.

    ``checkpoint_or_model``: a checkpoint path (teacher or student) or a model (then pass ``vocab``).
    With ``out_dir``, writes ``{split}.ctm`` / ``{split}.stm`` and ``{split}.hyp.txt``: new files, or ones
    slsdk wrote when ``overwrite`` (checked before decoding; the folder is locked while it is written).
    ``convention``: the gloss clean-up before scoring, "phoenix" or "none"; "auto" picks it by ``layout``
    (:func:`slsdk.eval.convention_for`, the rule `slsdk eval wer` uses too).
    """
    convention = convention_for(layout, convention)
    if out_dir is None:
        return _evaluate(checkpoint_or_model, data, split, decoder, beam, None, vocab=vocab, layout=layout,
                         batch_size=batch_size, device=device, num_workers=num_workers,
                         convention=convention)
    name = split.replace("/", "_")
    inputs = [p for p in (checkpoint_or_model, data) if isinstance(p, (str, Path))]
    with reading(*inputs), output_lock(out_dir, overwrite=overwrite):
        for suffix in (".ctm", ".stm", ".hyp.txt"):
            check_replace(Path(out_dir) / f"{name}{suffix}", overwrite=overwrite)
        return _evaluate(checkpoint_or_model, data, split, decoder, beam, out_dir, vocab=vocab, layout=layout,
                         batch_size=batch_size, device=device, num_workers=num_workers,
                         convention=convention)


def _evaluate(checkpoint_or_model, data, split, decoder, beam, out_dir, *, vocab, layout, batch_size, device,
              num_workers, convention="none") -> EvalResult:
    if decoder not in DECODERS:
        raise ConfigError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    where = "the model"
    if isinstance(checkpoint_or_model, (str, Path)):
        where = f"checkpoint {checkpoint_or_model}"
        model, vocab, _ = load_model(checkpoint_or_model)
    else:
        model = checkpoint_or_model
        if vocab is None:
            raise ValueError("evaluate(model, ...) needs vocab= (the model's gloss vocabulary)")
    samples = _resolve_samples(data, split, layout)
    if not samples:
        raise DatasetError(f"split {split!r} has no samples")
    labelled = all(s.glosses for s in samples)
    if not labelled:
        if out_dir is None or any(s.glosses for s in samples):
            require_labels(samples, "scoring")
    else:
        check_vocab(vocab, samples, where=where, dataset=f"split {split!r}")
    dev = resolve_device(device)
    model = model.to(dev)
    loader = make_loader(samples, vocab, model, batch_size=batch_size, num_workers=num_workers)
    preds = predict(model, loader, device=dev, decoder=decoder, beam=beam)
    files: dict[str, Path] = {}
    name = split.replace("/", "_")
    if labelled:
        res, hyps, refs = score(preds, samples, vocab, convention=convention)
        counts = (100.0 * float(res.wer), int(res.sub), int(res.del_), int(res.ins), int(res.n_ref))
    else:
        by_id = {p.id: p for p in preds}
        hyps, refs = {s.id: vocab.decode(by_id[s.id].tokens) for s in samples}, {s.id: [] for s in samples}
        counts = (None, 0, 0, 0, 0)
    if out_dir is not None:
        files = write_ctm_stm(preds, samples, vocab, out_dir, name)
        hyp_txt = Path(out_dir) / f"{name}.hyp.txt"
        atomic_write_text(hyp_txt, "".join(f"{i}\t{' '.join(hyps[i])}\t{' '.join(refs[i])}\n" for i in hyps))
        files["hyp"] = hyp_txt
    return EvalResult(*counts, hyps, refs, split, decoder if decoder == "greedy" else f"beam {beam}", files)


__all__ = ["EvalResult", "Prediction", "evaluate", "predict", "score", "make_loader", "input_spec",
           "write_ctm_stm"]
