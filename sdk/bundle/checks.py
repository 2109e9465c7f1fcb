"""The one check of a manifest: every key, type, bound (:data:`~slsdk.bundle.limits.LIMITS`) and cross-reference,
on the manifest's JSON object, with messages that name the field. Standard library only."""
from __future__ import annotations

import math
from dataclasses import fields
from pathlib import PurePosixPath

from slsdk.bundle.limits import (FIDELITY_ABS, FIDELITY_FLAGS, FIDELITY_NUMBERS, FIDELITY_TEXTS, FORMAT, INPUT_CROPS,
                                 INPUT_MODALITIES, LANDMARK_COORDINATES, LIMITS, MODEL_KINDS, NAME_CHARS,
                                 READABLE_FORMAT_VERSIONS, TENSOR_DTYPES, TEXT_CHARS, BundleError, int_in, num_in,
                                 short)
from slsdk.bundle.sections import CropConfig
from slsdk.targets import check_precision, get_target

# The crop section's fields with their rules (from CropConfig's field metadata).
CROP_RULES = {f.name: f.metadata for f in fields(CropConfig)}


def crop_problem(crop: dict, where: str = "crop") -> str | None:
    """Why the crop section is not a valid CropConfig (None when it is)."""
    unknown = sorted(set(crop) - set(CROP_RULES), key=str)
    if unknown:
        return f"{where} has unknown fields {short(unknown)} (known: {', '.join(CROP_RULES)})"
    for k, v in crop.items():
        r = CROP_RULES[k]
        kind = r["kind"]
        if kind == "choice" and v not in r["values"]:
            return f"{where}.{k} must be one of {list(r['values'])}, got {short(v)}"
        if kind == "bool" and not isinstance(v, bool):
            return f"{where}.{k} must be true or false, got {short(v)}"
        if kind == "int" and not int_in(v, r["lo"], r["hi"]):
            return f"{where}.{k} must be an integer in {r['lo']}..{r['hi']}, got {short(v)}"
        if kind == "number":
            lo, hi, open_lo = r["lo"], r["hi"], r["open_lo"]
            if not num_in(v, lo, hi) or (open_lo and v <= lo):
                return (f"{where}.{k} must be a number in {'(' if open_lo else '['}{lo:g}, {hi:g}], "
                        f"got {short(v)}")
    return None


def fidelity_problem(fid: dict) -> str | None:
    """Why the fidelity section has a value of the wrong type (None when every value is right)."""
    for k, v in fid.items():
        if not isinstance(k, str) or len(k) > 256:
            return f"fidelity key {short(k)} is too long"
        if k in FIDELITY_NUMBERS:
            if v is not None and not num_in(v, -FIDELITY_ABS, FIDELITY_ABS):
                return f"fidelity.{k} must be a finite number or null, got {short(v)}"
        elif k in FIDELITY_FLAGS:
            if v is not None and not isinstance(v, bool):
                return f"fidelity.{k} must be true, false or null, got {short(v)}"
        elif k in FIDELITY_TEXTS or isinstance(v, str):
            if v is not None and (not isinstance(v, str) or len(v) > TEXT_CHARS):
                return f"fidelity.{k} must be a text of at most {TEXT_CHARS} characters or null, got {short(v)}"
        elif not (v is None or isinstance(v, (bool, dict, list)) or num_in(v, -math.inf, math.inf)):
            return f"fidelity.{k} must be a number, true/false, a text, null, an object or a list, got {short(v)}"
    return None


def shape_problem(shape, *, symbolic: bool) -> str | None:
    """Why ``shape`` is not a bounded tensor shape (None when it is). Symbolic dims are names (or None/-1)."""
    L = LIMITS
    if not isinstance(shape, list) or len(shape) > 8:
        return f"must be a list of at most 8 dimensions, got {short(shape)}"
    n = 1
    for d in shape:
        if isinstance(d, int) and not isinstance(d, bool):
            if not (1 <= d <= L["dim"]) and not (symbolic and d == -1):
                return f"dimension {d} is outside 1..{L['dim']}"
            n *= max(d, 1)
        elif symbolic and (d is None or (isinstance(d, str) and 0 < len(d) <= 64)):
            continue
        else:
            return f"dimension {short(d)} is not {'an integer or a name' if symbolic else 'a positive integer'}"
    if n > L["tensor_elements"]:
        return f"has {n} elements (at most {L['tensor_elements']})"
    return None


def check_relpath(name: str, source: str) -> PurePosixPath:
    """Refuse any bundle path that is absolute or climbs out of the bundle."""
    if not isinstance(name, str) or not name or len(name) > 1024 or "\x00" in name:
        raise BundleError(f"{source}: empty, over-long or non-string file path {short(name)}")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise BundleError(f"{source}: file path {short(name)} is absolute; bundle paths must be relative")
    if any(part in ("..",) for part in p.parts) or "\\" in name:
        raise BundleError(f"{source}: file path {short(name)} escapes the bundle directory")
    return p


def check_manifest(d: dict, source: str = "manifest") -> None:
    """Check a manifest's JSON object (``Manifest.to_dict()``) against the schema and :data:`LIMITS`; raise
    :class:`BundleError` naming ``source`` and the field."""
    def bad(msg: str):
        raise BundleError(f"{source}: {msg}")

    L = LIMITS
    if d["format"] != FORMAT:
        bad(f"format must be {FORMAT!r}, got {short(d['format'])}")
    version = d["format_version"]
    if version not in READABLE_FORMAT_VERSIONS or isinstance(version, bool):
        bad(f"format_version must be one of {list(READABLE_FORMAT_VERSIONS)}, got {short(version)}")
    for k in ("target", "precision", "model_kind", "model_file", "slsdk_version", "created"):
        if not isinstance(d[k], str) or len(d[k]) > TEXT_CHARS:
            bad(f"{k} must be a string, got {short(d[k])}")
    try:
        tgt = get_target(d["target"])
        check_precision(tgt, d["precision"])
    except ValueError as e:
        bad(str(e))
    if d["model_kind"] not in MODEL_KINDS:
        bad(f"model_kind must be one of {list(MODEL_KINDS)}, got {d['model_kind']!r}")
    vocab = d["vocab"]
    if not isinstance(vocab, list) or not vocab or not all(isinstance(g, str) for g in vocab):
        bad("vocab must be a non-empty list of gloss strings")
    if len(vocab) > L["vocab"] or any(len(g) > L["gloss_chars"] for g in vocab):
        bad(f"vocab has {len(vocab)} entries (at most {L['vocab']}, each at most {L['gloss_chars']} "
            "characters)")
    if len(vocab) < 2:
        bad("vocab needs the blank and at least one gloss")
    if d["blank_id"] != 0 or isinstance(d["blank_id"], bool):
        bad(f"blank_id must be 0 (slsdk convention), got {short(d['blank_id'])}")
    if len(set(vocab)) != len(vocab):
        bad("vocab has duplicate entries")
    for k in ("model_config", "fidelity", "extra", "files"):
        if not isinstance(d[k], dict):
            bad(f"{k} must be an object, got {type(d[k]).__name__}")
    if d["quantization"] is not None and not isinstance(d["quantization"], dict):
        bad("quantization must be an object or null")
    inp = d["input"]
    if not isinstance(inp, dict):
        bad("input must be an object")
    for k in ("height", "width", "channels", "layout", "mean", "std", "colour", "value_range", "resize_shorter",
              "crop"):
        if k not in inp:
            bad(f"input.{k} is missing")
    if not (int_in(inp["height"], 1, L["image_side"]) and int_in(inp["width"], 1, L["image_side"])):
        bad(f"input.height/width must be integers in 1..{L['image_side']}, got "
            f"{short(inp['height'])}x{short(inp['width'])}")
    if not int_in(inp["resize_shorter"], max(inp["height"], inp["width"]), L["resize_shorter"]):
        bad(f"input.resize_shorter must be an integer >= max(height, width) = {max(inp['height'], inp['width'])} "
            f"and <= {L['resize_shorter']} (the shorter side is resized to it, then the "
            f"{inp['height']}x{inp['width']} crop is cut), "
            f"got {short(inp['resize_shorter'])}")
    if inp["crop"] not in INPUT_CROPS:
        bad(f"input.crop must be one of {list(INPUT_CROPS)}, got {short(inp['crop'])}")
    if inp["channels"] != 3 or isinstance(inp["channels"], bool):
        bad("input.channels must be 3")
    for k in ("layout", "colour"):
        if not isinstance(inp[k], str) or len(inp[k]) > 16:
            bad(f"input.{k} must be a short string, got {short(inp[k])}")
    for k, n in (("mean", 3), ("std", 3), ("value_range", 2)):
        v = inp[k]
        if not isinstance(v, list) or len(v) != n or \
                not all(num_in(x, -L["abs_value"], L["abs_value"]) for x in v):
            bad(f"input.{k} must be {n} finite numbers (|x| <= {L['abs_value']:g}), got {short(v)}")
    if any(s <= 0 for s in inp["std"]):
        bad(f"input.std must be positive, got {inp['std']!r}")
    if not inp["value_range"][0] < inp["value_range"][1]:
        bad(f"input.value_range must be [low, high] with low < high, got {short(inp['value_range'])}")
    if "dtype" in inp and inp["dtype"] not in TENSOR_DTYPES:
        bad(f"input.dtype must be one of {list(TENSOR_DTYPES)}, got {short(inp['dtype'])}")
    if not num_in(d["fps"], 0, L["fps"]) or d["fps"] <= 0:
        bad(f"fps must be a finite number in (0, {L['fps']:g}], got {short(d['fps'])}")
    crop = d["crop"]
    if not isinstance(crop, dict) or not isinstance(crop.get("policy"), str):
        bad("crop must be an object with a 'policy'")
    why = crop_problem(crop) or fidelity_problem(d["fidelity"])
    if why:
        bad(why)
    _check_preparation(d["extra"].get("preparation"), bad)
    _check_streaming(d, bad)
    files = d["files"]
    if len(files) > L["files"]:
        bad(f"files must be an object mapping paths to checksums (at most {L['files']})")
    for name, info in files.items():
        check_relpath(name, source)
        if not isinstance(info, dict) or not isinstance(info.get("sha256"), str) or len(info["sha256"]) != 64:
            bad(f"files[{name!r}] needs a sha256 hex digest")
        if "bytes" in info and not int_in(info["bytes"], 0, L["file_bytes"]):
            bad(f"files[{name!r}].bytes must be an integer in 0..{L['file_bytes']}, got {short(info['bytes'])}")
    model_file = d["model_file"]
    check_relpath(model_file, source)
    if files and not any(n == model_file or n.startswith(model_file.rstrip("/") + "/") for n in files):
        bad(f"model_file {model_file!r} is not among the bundle files")
    if tgt.suffix and not model_file.endswith(tgt.suffix):
        bad(f"model_file {model_file!r} does not end with {tgt.suffix!r} (target {tgt.name})")


def _check_preparation(prep, bad) -> None:
    """extra.preparation: how the training data was prepared (the runtime compares it with its crop)."""
    L = LIMITS
    if prep is None:
        return
    if not isinstance(prep, dict):
        bad(f"extra.preparation must be an object, got {short(prep)}")
    if prep.get("crop") is not None:
        why = (crop_problem(prep["crop"], "extra.preparation.crop") if isinstance(prep["crop"], dict)
               else f"extra.preparation.crop must be an object, got {short(prep['crop'])}")
        if why:
            bad(why)
    if prep.get("size") is not None and not int_in(prep["size"], 1, L["resize_shorter"]):
        bad(f"extra.preparation.size must be an integer in 1..{L['resize_shorter']} or null, "
            f"got {short(prep['size'])}")
    if prep.get("fps") is not None and not (num_in(prep["fps"], 0, L["fps"]) and prep["fps"] > 0):
        bad(f"extra.preparation.fps must be a number in (0, {L['fps']:g}] or null, got {short(prep['fps'])}")


def _check_batch(s: dict, bad) -> None:
    """streaming.max_batch / batch_sizes: how many streams one call stacks (absent: batch 1 only)."""
    L = LIMITS
    mb, sizes = s.get("max_batch"), s.get("batch_sizes")
    if mb is not None and not int_in(mb, 1, L["batch"]):
        bad(f"streaming.max_batch must be an integer in 1..{L['batch']}, got {short(mb)}")
    if sizes is not None:
        if (not isinstance(sizes, list) or not 1 <= len(sizes) <= L["batch_sizes"]
                or not all(int_in(n, 1, L["batch"]) for n in sizes)
                or any(a >= b for a, b in zip(sizes, sizes[1:])) or sizes[0] != 1):
            bad(f"streaming.batch_sizes must be increasing integers in 1..{L['batch']} starting with 1 (at most "
                f"{L['batch_sizes']}), got {short(sizes)}")
        if mb is None or sizes[-1] != mb:
            bad(f"streaming.batch_sizes {short(sizes)} must end with streaming.max_batch ({short(mb)})")
    if (mb or 1) > 1 and s["mode"] != "streaming":
        bad("streaming.max_batch applies to streaming models (an offline model takes one clip)")


def _check_streaming(d: dict, bad) -> None:
    """The streaming section, its tensors and state, against the input section and the vocabulary."""
    L = LIMITS
    inp, s = d["input"], d["streaming"]
    if not isinstance(s, dict):
        bad("streaming must be an object")
    for k in ("mode", "output_stride", "inputs", "outputs", "state"):
        if k not in s:
            bad(f"streaming.{k} is missing")
    if s["mode"] not in ("streaming", "offline"):
        bad(f"streaming.mode must be 'streaming' or 'offline', got {short(s['mode'])}")
    if not int_in(s["output_stride"], 1, L["output_stride"]):
        bad(f"streaming.output_stride must be an integer in 1..{L['output_stride']}, "
            f"got {short(s['output_stride'])}")
    if s["mode"] == "streaming":
        c = s.get("chunk_frames")
        if not int_in(c, 1, L["chunk_frames"]) or c % s["output_stride"]:
            bad(f"streaming.chunk_frames must be a multiple of output_stride in 1..{L['chunk_frames']}, "
                f"got {short(c)}")
        sh = s.get("shift_frames", c)
        if not int_in(sh, 1, c):
            bad(f"streaming.shift_frames must be an integer in 1..chunk_frames ({c}), got {short(sh)}")
        la = s.get("lookahead_frames", 0)
        if not int_in(la, 0, L["chunk_frames"]):
            bad(f"streaming.lookahead_frames must be an integer in 0..{L['chunk_frames']}, got {short(la)}")
    else:
        fr = s.get("frames_range")
        if fr is not None:
            if (not isinstance(fr, list) or len(fr) != 2
                    or not all(x is None or int_in(x, 1, L["frames"]) for x in fr)
                    or (None not in fr and fr[0] > fr[1])):
                bad(f"streaming.frames_range must be [min, max] frame counts in 1..{L['frames']}, got {short(fr)}")
    _check_batch(s, bad)
    for k in ("frame_shift_s", "algorithmic_latency_s"):
        v = s.get(k)
        if v is not None and not num_in(v, 0, L["seconds"]):
            bad(f"streaming.{k} must be a finite number of seconds in 0..{L['seconds']:g}, got {short(v)}")
    for group in ("inputs", "outputs"):
        if not isinstance(s[group], list) or not s[group] or len(s[group]) > L["tensors"]:
            bad(f"streaming.{group} must be a non-empty list (at most {L['tensors']})")
        seen = set()
        for io in s[group]:
            if not isinstance(io, dict) or not isinstance(io.get("name"), str) or "shape" not in io:
                bad(f"streaming.{group} entries need a name and a shape, got {short(io)}")
            if not io["name"] or len(io["name"]) > 256 or io["name"] in seen:
                bad(f"streaming.{group} name {short(io['name'])} is empty, too long or repeated")
            seen.add(io["name"])
            if io.get("dtype", "float32") not in TENSOR_DTYPES:
                bad(f"streaming.{group} {io['name']!r}: dtype must be one of {list(TENSOR_DTYPES)}, "
                    f"got {short(io.get('dtype'))}")
            why = shape_problem(io["shape"], symbolic=True)
            if why:
                bad(f"streaming.{group} {io['name']!r}: shape {why}")
    _check_landmarks(inp, s, bad)
    frames = s["inputs"][0]["shape"]
    if len(frames) == 5:   # [N, T, C, H, W]: the picture the input section describes, T the chunk
        want = [None, s.get("chunk_frames") if s["mode"] == "streaming" else None, 3, inp["height"], inp["width"]]
        for i, (got, w) in enumerate(zip(frames, want)):
            if w is not None and isinstance(got, int) and got > 0 and got != w:
                bad(f"streaming.inputs {s['inputs'][0]['name']!r} shape {frames} disagrees with "
                    f"{['', 'chunk_frames', 'input.channels', 'input.height', 'input.width'][i]} = {w}")
    io_names = {io["name"] for io in s["inputs"]} | {io["name"] for io in s["outputs"]}
    if not isinstance(s["state"], list) or len(s["state"]) > L["tensors"]:
        bad(f"streaming.state must be a list (at most {L['tensors']})")
    if s["mode"] == "offline" and s["state"]:
        bad("streaming.state must be empty for an offline model")
    shapes = {io["name"]: io["shape"] for io in s["inputs"] + s["outputs"]}
    for st in s["state"]:
        if not isinstance(st, dict):
            bad(f"streaming.state entries must be objects, got {short(st)}")
        for k in ("name", "input", "output", "shape"):
            if k not in st:
                bad(f"streaming.state entry {short(st)} is missing {k!r}")
        why = shape_problem(st["shape"], symbolic=False)
        if why:
            bad(f"streaming.state {short(st['name'])} shape {why}")
        for k in ("input", "output"):
            if not isinstance(st[k], str) or st[k] not in io_names:
                bad(f"streaming.state {short(st['name'])}: {k} {short(st[k])} is not among the inputs/outputs")
            if list(shapes[st[k]]) != list(st["shape"]):
                bad(f"streaming.state {st['name']!r}: shape {st['shape']} differs from {k} {st[k]!r} "
                    f"{shapes[st[k]]}")
    state_outputs = {st["output"] for st in s["state"]}
    logits = next((io for io in s["outputs"] if io["name"] not in state_outputs), None)
    if logits is None:
        bad("streaming.outputs has no output besides the state outputs (the class scores)")
    classes = logits["shape"][-1] if logits["shape"] else None
    if isinstance(classes, int) and classes > 0 and classes != len(d["vocab"]):
        bad(f"vocab has {len(d['vocab'])} entries but output {logits['name']!r} has {classes} classes "
            f"(shape {logits['shape']})")


def _check_landmarks(inp: dict, s: dict, bad) -> None:
    """input.modality and input.landmarks: the landmark layout, against the streaming input that takes it."""
    modality = inp.get("modality", "frames")
    if modality not in INPUT_MODALITIES:
        bad(f"input.modality must be one of {list(INPUT_MODALITIES)}, got {short(modality)}")
    lm = inp.get("landmarks")
    if lm is None:
        if modality != "frames":
            bad(f"input.modality {modality!r} needs an input.landmarks section (the point layout)")
        return
    if not isinstance(lm, dict):
        bad(f"input.landmarks must be an object, got {short(lm)}")
    if modality == "frames":
        bad("input.landmarks is given but input.modality is 'frames' (set it to 'landmarks' or 'fusion')")
    for k in ("tensor", "layout", "points", "dims", "normalisation", "coordinates", "parts"):
        if k not in lm:
            bad(f"input.landmarks.{k} is missing")
    for k in ("tensor", "layout", "normalisation"):
        if not isinstance(lm[k], str) or not 0 < len(lm[k]) <= NAME_CHARS:
            bad(f"input.landmarks.{k} must be a non-empty string of at most {NAME_CHARS} characters, got "
                f"{short(lm[k])}")
    n = LIMITS["landmark_points"]
    if not int_in(lm["points"], 1, n) or not int_in(lm["dims"], 2, 3):
        bad(f"input.landmarks.points must be an integer in 1..{n} and dims 2 or 3, got {short(lm['points'])}, "
            f"{short(lm['dims'])}")
    if lm["coordinates"] not in LANDMARK_COORDINATES:
        bad(f"input.landmarks.coordinates must be one of {list(LANDMARK_COORDINATES)}, got {short(lm['coordinates'])}")
    parts = lm["parts"]
    if not isinstance(parts, list) or not parts or len(parts) > n:
        bad(f"input.landmarks.parts must be a non-empty list (at most {n})")
    total = 0
    for i, p in enumerate(parts):
        if not isinstance(p, dict) or not all(k in p for k in ("name", "source", "count")):
            bad(f"input.landmarks.parts[{i}] needs a name, a source and a count, got {short(p)}")
        if not all(isinstance(p[k], str) and 0 < len(p[k]) <= NAME_CHARS for k in ("name", "source")):
            bad(f"input.landmarks.parts[{i}]: name and source must be non-empty strings, got {short(p)}")
        if not int_in(p["count"], 1, n):
            bad(f"input.landmarks.parts[{i}].count must be an integer in 1..{n}, got {short(p['count'])}")
        idx = p.get("indices", [])
        if not isinstance(idx, list) or not all(int_in(x, 0, n) for x in idx) or (idx and len(idx) != p["count"]):
            bad(f"input.landmarks.parts[{i}].indices must be {p['count']} integers in 0..{n} (or empty), "
                f"got {short(idx)}")
        total += p["count"]
    if total != lm["points"]:
        bad(f"input.landmarks.parts count {total} points, but points is {lm['points']}")
    io = next((x for x in s["inputs"] if x["name"] == lm["tensor"]), None)
    if io is None:
        bad(f"input.landmarks.tensor {lm['tensor']!r} is not among the streaming inputs "
            f"{[x['name'] for x in s['inputs']]}")
    shape = io["shape"]
    if len(shape) < 2 or any(isinstance(g, int) and g > 0 and g != w
                             for g, w in zip(shape[-2:], (lm["points"], lm["dims"]))):
        bad(f"streaming.inputs {io['name']!r} shape {shape} does not end with [points, dims] = "
            f"[{lm['points']}, {lm['dims']}] (input.landmarks)")
