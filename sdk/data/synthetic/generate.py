"""Writing the synthetic data set: render every video of the plan, store the annotations, the spec
(``synthetic.json``) and the ownership marker; read the spec back."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from slsdk import fileio
from slsdk.data.readers import Sample, write_folder_annotations
from slsdk.data.synthetic.landmarks import MEDIAPIPE_NOISE, observe_pose86
from slsdk.data.synthetic.lexicon import SignerSpec, SignSpec, make_lexicon, make_signer
from slsdk.data.synthetic.ownership import claim_folder, unproven_files, write_mark
from slsdk.data.synthetic.phone import PhoneFraming, render_phone_sentence, renderer_crop
from slsdk.data.synthetic.plan import make_plan
from slsdk.data.synthetic.render import render_sentence
from slsdk.data.synthetic.settings import SyntheticSettingError, check_settings
from slsdk.data.video import write_frames, write_video
from slsdk.runtime.crop import CropConfig
from slsdk.runtime.pose86_landmarks import pose86_file_bytes


def generate_synthetic(out_dir: str | Path, seed: int = 0, num_glosses: int = 12, num_signers: int = 8,
                       sentences_per_signer: int = 56, *, num_test_si_signers: int = 2,
                       num_train_sentences: int = 64, num_test_us_sentences: int = 10, dev_per_signer: int = 7,
                       test_si_per_signer: int = 20, test_us_per_sentence: int = 4, image_size: int = 96,
                       fps: int = 25, min_len: int = 2, max_len: int = 6, noise: float = 3.0,
                       video_format: str = "mp4", overwrite: bool = False, phone: dict | None = None,
                       coarticulation: float = 0.0, crop: dict | None = None, keep_raw: bool = True,
                       duration: float = 1.0, landmarks: bool = False, progress: bool = False) -> Path:
    """Write the synthetic data set to ``out_dir`` (folder format) and return ``out_dir``.

    Files: ``annotations.csv`` (``id,video,signer,split,glosses``), ``videos/{split}/{id}.mp4`` (or
    PNG frame folders with ``video_format="png"``), ``synthetic.json`` (lexicon, signers, settings) and the
    marker ``.slsdk-synthetic`` (every file written, with its size and SHA-256).
    An existing complete data set with the same settings is reused unless ``overwrite``.

    The set is built beside ``out_dir`` and renamed into place (:func:`slsdk.fileio.atomic_dir`), under
    :func:`slsdk.fileio.output_lock`: a kill leaves the old set or the new one, and a second run into the same
    folder is refused. ``overwrite`` replaces only a synthetic set slsdk made that holds nothing else.
    Numeric settings outside their range (:data:`SETTING_RANGES`) raise :class:`SyntheticSettingError`.

    ``phone`` (:class:`PhoneFraming` fields, as the ``isharah`` preset sets): portrait phone-framed clips;
    the data set's videos are then the signing-space crops (``image_size`` square) that the runtime's
    :class:`~slsdk.runtime.hand_tracker.HandCropper` (``crop``: its :class:`CropConfig` fields) makes from the
    renderer's hand positions, and with ``keep_raw`` the portrait clips go to ``raw/{split}/{id}.mp4`` with
    their boxes and stand-in landmarks in ``raw/{split}/{id}.npz``.

    ``landmarks`` (the ``isharah`` preset sets it; ``slsdk data synth --landmarks``): beside each video a ``.pose``
    file (``videos/{split}/{id}.pose``, the folder layout's landmark source) with the signer's true pose in the
    86-point layout as MediaPipe would give it: :func:`slsdk.data.synthetic.landmarks.observe_pose86` (misses and
    jitter measured on real clips) of the renderer's own positions, in pixels of the rendered frame (the portrait
    frame for phone-framed clips, whose videos are the crops).
    """
    out = Path(out_dir)
    checked = check_settings(seed=seed, num_glosses=num_glosses, num_signers=num_signers,
                             sentences_per_signer=sentences_per_signer, num_test_si_signers=num_test_si_signers,
                             num_train_sentences=num_train_sentences, num_test_us_sentences=num_test_us_sentences,
                             dev_per_signer=dev_per_signer, test_si_per_signer=test_si_per_signer,
                             test_us_per_sentence=test_us_per_sentence, image_size=image_size, fps=fps,
                             min_len=min_len, max_len=max_len, noise=noise, coarticulation=coarticulation,
                             duration=duration)
    (seed, num_glosses, num_signers, sentences_per_signer, num_test_si_signers, num_train_sentences,
     num_test_us_sentences, dev_per_signer, test_si_per_signer, test_us_per_sentence, image_size, min_len,
     max_len) = (checked[k] for k in ("seed", "num_glosses", "num_signers", "sentences_per_signer",
                                      "num_test_si_signers", "num_train_sentences", "num_test_us_sentences",
                                      "dev_per_signer", "test_si_per_signer", "test_us_per_sentence",
                                      "image_size", "min_len", "max_len"))
    if video_format not in ("mp4", "png"):
        raise SyntheticSettingError(f"synthetic data setting video_format must be 'mp4' or 'png', got "
                                    f"{video_format!r}")
    settings = dict(seed=seed, num_glosses=num_glosses, num_signers=num_signers,
                    sentences_per_signer=sentences_per_signer, num_test_si_signers=num_test_si_signers,
                    num_train_sentences=num_train_sentences, num_test_us_sentences=num_test_us_sentences,
                    dev_per_signer=dev_per_signer, test_si_per_signer=test_si_per_signer,
                    test_us_per_sentence=test_us_per_sentence, image_size=image_size, fps=fps, min_len=min_len,
                    max_len=max_len, noise=noise, video_format=video_format)
    if phone is not None:  # only when set, so the default data set's settings (and reuse) are unchanged
        framing = PhoneFraming.from_dict(dict(phone))
        crop_cfg = CropConfig.from_dict(dict(crop or {}))
        settings.update(phone=asdict(framing), crop=crop_cfg.to_dict(), keep_raw=keep_raw)
    elif crop is not None:
        raise ValueError("crop settings apply to phone-framed data only (pass phone=...)")
    if coarticulation:
        settings["coarticulation"] = float(coarticulation)
    if float(duration) != 1:
        settings["duration"] = float(duration)
    if landmarks:
        settings["landmarks"] = {"layout": "pose86", "noise": MEDIAPIPE_NOISE}
    settings = json.loads(json.dumps(settings))   # as synthetic.json stores it (tuples become lists)
    spec_path = out / "synthetic.json"
    with fileio.output_lock(out):
        if spec_path.is_file() and (out / "annotations.csv").is_file() and not overwrite:
            try:
                if json.loads(spec_path.read_text())["settings"] == settings:
                    return out
            except (ValueError, KeyError, TypeError):
                pass
        replace = claim_folder(out, spec_path, overwrite)   # never writes over data (or files) slsdk did not make
        lexicon = make_lexicon(num_glosses, seed)
        signers = [make_signer(i, seed) for i in range(num_signers)]
        plan = make_plan(seed=seed, num_glosses=num_glosses, num_signers=num_signers,
                         sentences_per_signer=sentences_per_signer, num_test_si_signers=num_test_si_signers,
                         num_train_sentences=num_train_sentences, num_test_us_sentences=num_test_us_sentences,
                         dev_per_signer=dev_per_signer, test_si_per_signer=test_si_per_signer,
                         test_us_per_sentence=test_us_per_sentence, min_len=min_len, max_len=max_len)
        with fileio.atomic_dir(out, replace=replace) as work:
            _render_set(work, plan, lexicon, signers, settings, seed=seed, image_size=image_size, fps=fps,
                        noise=noise, video_format=video_format, phone=phone,
                        framing=framing if phone is not None else None,
                        crop_cfg=crop_cfg if phone is not None else None, keep_raw=keep_raw,
                        coarticulation=coarticulation, duration=duration, landmarks=landmarks, progress=progress)
            if replace and unproven_files(out):    # changed while this run rendered: leave it as it is
                raise fileio.OutputExistsError(f"{out}: files were added or changed there while the data set was "
                                               "generated; nothing was replaced: run again")
    return out


def _render_set(work: Path, plan, lexicon, signers, settings: dict, *, seed: int, image_size: int, fps,
                noise: float, video_format: str, phone, framing, crop_cfg, keep_raw: bool, coarticulation: float,
                duration: float, landmarks: bool, progress: bool) -> None:
    """Render every video of ``plan`` into the folder ``work`` (being built) and write its annotations, spec and
    marker."""
    t0 = time.perf_counter()
    si_signers = sorted({p[1] for p in plan if p[0] == "test_si"})
    samples = []
    num_frames = 0
    bar = _progress(len(plan), "rendering") if progress else None
    for split, s, j, sent in plan:
        vid = f"{s:02d}{j:04d}"
        vrng = np.random.default_rng([seed, 4, s, j])
        if phone is None:
            res = render_sentence(sent, signers[s], vrng, lexicon=lexicon, image_size=image_size, noise=noise,
                                  coarticulation=coarticulation, duration=duration, return_landmarks=landmarks)
            frames, true = res if landmarks else (res, None)
            size = (image_size, image_size)
        else:
            raw, hands, *more = render_phone_sentence(sent, signers[s], vrng, lexicon=lexicon, framing=framing,
                                                      coarticulation=coarticulation, duration=duration,
                                                      return_landmarks=landmarks)
            true = more[0] if landmarks else None
            size = (framing.width, framing.height)
            frames, boxes = renderer_crop(raw, hands, image_size, fps, crop_cfg)
            if keep_raw:
                write_video(work / "raw" / split / f"{vid}.mp4", raw, fps, fsync=False)
                lm = np.full((len(hands), 2, 21, 3), np.nan, np.float32)
                for t, found in enumerate(hands):
                    for k, (pts, label) in enumerate(found):
                        lm[t, 0 if label == "Right" else 1] = pts
                fileio.atomic_write(work / "raw" / split / f"{vid}.npz",
                                    lambda f, boxes=boxes, lm=lm: np.savez_compressed(f, boxes=boxes, landmarks=lm),
                                    fsync=False)
        if bar is not None:
            bar(1)
        num_frames += len(frames)
        if video_format == "mp4":
            path = write_video(work / "videos" / split / f"{vid}.mp4", frames, fps, fsync=False)
        else:
            path = write_frames(work / "videos" / split / vid, frames, fsync=False)
        if true is not None:   # misses and jitter from their own stream: the videos do not change
            seen = observe_pose86(true, *size, np.random.default_rng([seed, 5, s, j]))
            fileio.atomic_write(work / "videos" / split / f"{vid}.pose", pose86_file_bytes(seen, fps, *size),
                                fsync=False)
        samples.append(Sample(vid, [lexicon[g].name for g in sent], path, signers[s].id, split,
                              {"num_frames": len(frames)}))
    write_folder_annotations(work, samples)
    spec = {"format": "slsdk-synthetic-1", "settings": settings,
            "lexicon": [asdict(x) for x in lexicon], "signers": [asdict(x) for x in signers],
            "splits": {k: sum(1 for p in plan if p[0] == k) for k in ("train", "dev", "test_si", "test_us")},
            "frames": num_frames, "test_si_signers": [signers[s].id for s in si_signers],
            "reference_words": {k: sum(len(p[3]) for p in plan if p[0] == k) for k in ("train", "dev", "test_si",
                                                                                        "test_us")},
            "seconds": round(time.perf_counter() - t0, 2)}
    fileio.atomic_write_text(work / "synthetic.json", json.dumps(spec, indent=1) + "\n")
    write_mark(work)


def _progress(total: int, what: str):
    """A rich progress bar; returns ``advance(n)`` (the bar closes itself at ``total``)."""
    prog = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn())
    prog.start()
    task = prog.add_task(what, total=total)
    done = [0]

    def advance(n: int = 1):
        done[0] += n
        prog.update(task, advance=n)
        if done[0] >= total:
            prog.stop()

    return advance


def load_spec(out_dir: str | Path) -> tuple[list[SignSpec], list[SignerSpec], dict]:
    """Lexicon, signers and settings of a generated data set (for ``render_sentence``)."""
    path = Path(out_dir) / "synthetic.json"
    if not path.is_file():
        raise FileNotFoundError(f"not a synthetic data set (no synthetic.json): {path}")
    d = json.loads(path.read_text())
    lex = [SignSpec(**x) for x in d["lexicon"]]
    signers = [SignerSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in x.items()}) for x in d["signers"]]
    return lex, signers, d["settings"]
