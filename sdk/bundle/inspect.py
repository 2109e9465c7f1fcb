"""``slsdk bundle inspect``: a human-readable summary of a bundle."""
from __future__ import annotations

import json
import os

from slsdk.bundle.store import load_bundle
from slsdk.terminal import visible


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def inspect_bundle(path: str | os.PathLike) -> str:
    """A human-readable summary of a bundle (for ``slsdk bundle inspect``)."""
    b = load_bundle(path)
    m = b.manifest
    s, inp = m.streaming, m.input
    crop_json = json.dumps(m.crop.section_json())
    rows = [
        ("bundle", str(path)),
        ("format", f"{m.format} v{m.format_version} (slsdk {m.slsdk_version}, created {m.created})"),
        ("target / precision", f"{m.target} / {m.precision}"),
        ("model", f"{m.model_kind}: {m.model_file}"),
        ("vocabulary", f"{len(m.vocab)} entries (blank id {m.blank_id}): "
                       + ", ".join(m.vocab[1:6]) + (" ..." if len(m.vocab) > 6 else "")),
        ("input", f"{inp.channels}x{inp.height}x{inp.width} {inp.colour} {inp.layout}, mean {inp.mean}, "
                  f"std {inp.std}"),
        ("preprocess", f"resize shorter side to {inp.resize_shorter} px, {inp.crop} crop {inp.height}x{inp.width}"
                       + (" (format v1 default)" if m.format_version == 1 else "")),
        ("fps", f"{_fmt(m.fps)} (the runtime resamples sources to it by timestamp)"),
        ("crop", crop_json),
        ("mode", s.mode),
    ]
    prep = (m.extra or {}).get("preparation")
    if isinstance(prep, dict):  # how the training data was prepared (`slsdk data prepare`); the runtime checks it
        crop_policy = (prep.get("crop") or {}).get("policy") if isinstance(prep.get("crop"), dict) else None
        rows.insert(rows.index(("crop", crop_json)) + 1,
                    ("trained on", f"`slsdk data prepare` frames: crop {crop_policy}, size {prep.get('size')}, "
                                   f"fps {prep.get('fps')}"))
    if s.mode == "streaming":
        rows += [("chunk / shift / lookahead", f"{s.chunk_frames} / {s.shift_frames} / "
                                               f"{s.lookahead_frames} frames"),
                 ("output stride", str(s.output_stride)),
                 ("latency", f"{_fmt(s.algorithmic_latency_s)} s algorithmic"),
                 ("streams per call", _batch(s.max_batch, s.batch_sizes))]
    for io in s.inputs:
        rows.append((f"input {io.name}", f"{io.dtype} {io.shape}"))
    for io in s.outputs:
        rows.append((f"output {io.name}", f"{io.dtype} {io.shape}"))
    for k, v in (m.fidelity or {}).items():
        if not isinstance(v, (dict, list)):
            rows.append((f"fidelity.{k}", _fmt(v)))
    if m.quantization:
        rows.append(("quantization", json.dumps(m.quantization)))
    for name, info in m.files.items():
        rows.append((f"file {name}", f"{info.get('bytes', '?')} bytes sha256 {info['sha256'][:16]}..."))

    rows = [(visible(k), visible(v)) for k, v in rows]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)


def _batch(max_batch, sizes) -> str:
    """What ``streaming.max_batch`` / ``batch_sizes`` say (``Recognizer.decode_streams`` stacks that many)."""
    if sizes:
        return f"{', '.join(map(str, sizes))} (fixed sizes; the shapes below are one stream's)"
    if max_batch and max_batch > 1:
        return f"1 to {max_batch} (the shapes below are one stream's)"
    return "1"

