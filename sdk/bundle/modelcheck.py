"""Checking a manifest against its model file without running it (:func:`check_model_file`), with the file
inspector of the target's toolchain (``slsdk.toolchains.<name>.inspect``; it imports its runtime when called)."""
from __future__ import annotations

import os
from pathlib import Path

from slsdk.bundle.limits import MANIFEST_NAME, TENSOR_DTYPES, BundleError
from slsdk.bundle.manifest import Manifest
from slsdk.targets import get_target
from slsdk.toolchains import get_provider, resolve


def _model_signature(path: Path, target: str) -> dict | None:
    """What the model file declares, read by its toolchain's inspector (None where it has none: Core ML)."""
    provider = get_provider(get_target(target).toolchain)
    return resolve(provider.inspector)(path) if provider.inspector else None


def _dims_agree(a, b) -> bool:
    if len(a) != len(b):
        return False
    return all(not (isinstance(x, int) and isinstance(y, int) and x > 0 and y > 0) or x == y for x, y in zip(a, b))


def check_model_file(root: str | os.PathLike, manifest: Manifest, *, source: str | None = None) -> dict | None:
    """Check the manifest against what its model file declares, without running the model.

    Inputs and outputs (names where the format has them, else their number and order), static shapes and
    dtypes, the vocabulary size against the model's class count (last dimension of the first non-state
    output), and for ONNX the ``metadata_props`` the converter wrote (``vocab``, ``vocab_size``,
    ``chunk_frames``, ``output_stride``, ``blank_id``). Returns the signature read (None where no reader is
    installed for the format); raises :class:`BundleError` naming the file and the disagreement.
    """
    path = Path(root) / manifest.model_file
    sig = _model_signature(path, manifest.target)
    if sig is None:
        return None
    s = manifest.streaming
    where = source or str(Path(root) / MANIFEST_NAME)
    for group, tensors in (("inputs", s.inputs), ("outputs", s.outputs)):
        declared = [(io.name, list(io.shape), io.dtype) for io in tensors]
        real = sig[group]
        if sig["names"]:
            dn, rn = [d[0] for d in declared], [r[0] for r in real]
            if sorted(dn) != sorted(rn):
                raise BundleError(f"{where}: streaming.{group} {dn} differ from the model's {group} {rn} "
                                  f"({path.name}); the manifest does not describe this model")
            real = sorted(real, key=lambda r: dn.index(r[0]))
        elif len(declared) != len(real):
            raise BundleError(f"{where}: streaming.{group} lists {len(declared)} tensors but {path.name} has "
                              f"{len(real)}; the manifest does not describe this model")
        for (name, dshape, ddtype), (_, rshape, rdtype) in zip(declared, real):
            if not _dims_agree(dshape, rshape):
                raise BundleError(f"{where}: {group[:-1]} {name!r} has shape {dshape} in the manifest but "
                                  f"{rshape} in {path.name}")
            if rdtype in TENSOR_DTYPES and ddtype != rdtype:
                raise BundleError(f"{where}: {group[:-1]} {name!r} has dtype {ddtype} in the manifest but "
                                  f"{rdtype} in {path.name}")
    state_outputs = {st.output for st in s.state}
    logits = next((io for io in s.outputs if io.name not in state_outputs), None)
    if logits is not None:
        idx = [io.name for io in s.outputs].index(logits.name)
        rshape = next(r[1] for r in sig["outputs"] if r[0] == logits.name) if sig["names"] else sig["outputs"][idx][1]
        classes = rshape[-1] if rshape else None
        if isinstance(classes, int) and classes > 0 and classes != len(manifest.vocab):
            raise BundleError(f"{where}: vocab has {len(manifest.vocab)} entries but the model {path.name} "
                              f"outputs {classes} classes ({logits.name!r}); the vocabulary does not belong to "
                              "this model")
    meta = sig.get("meta") or {}
    if "vocab" in meta and meta["vocab"].split("\n") != list(manifest.vocab):
        mv = meta["vocab"].split("\n")
        diff = next((i for i, (a, b) in enumerate(zip(mv, manifest.vocab)) if a != b), min(len(mv), len(manifest.vocab)))
        raise BundleError(f"{where}: vocab differs from the vocabulary stored in {path.name} (metadata_props "
                          f"'vocab', {len(mv)} entries) from entry {diff} on; the bundle would decode wrong glosses")
    checks = {"vocab_size": len(manifest.vocab), "blank_id": manifest.blank_id,
              "output_stride": s.output_stride, "chunk_frames": s.chunk_frames}
    for key, value in checks.items():
        if key in meta and value is not None and meta[key] != str(value):
            raise BundleError(f"{where}: {key} is {value} in the manifest but {meta[key]!r} in {path.name} "
                              "(metadata_props)")
    return sig

