"""The slsdk bundle: a directory (optionally zipped) of model file(s) plus ``manifest.json``.

The bundle is the contract with runtimes and phone apps: the manifest carries everything needed to
feed the model and decode its output (vocabulary, pixel normalisation, chunking, state tensors,
output stride) plus the file checksums and the fidelity figures measured at conversion.
Its JSON Schema is ``manifest.schema.json`` next to this file (:func:`slsdk.bundle.schema.manifest_schema`).

    manifest = Manifest(target="onnx", precision="fp32", ...)
    bundle = write_bundle("out/student-onnx", manifest, {"model.onnx": "/tmp/model.onnx"})
    bundle = load_bundle("out/student-onnx")          # or a .zip; validates schema and checksums
    bundle.model_path                                 # Path of the main model file (or .mlpackage dir)
    bundle.manifest.streaming.chunk_frames            # the typed sections

Only the standard library is imported here: runtimes load bundles without torch.
"""
from slsdk.bundle.archive import zip_bundle
from slsdk.bundle.inspect import inspect_bundle
from slsdk.bundle.limits import FORMAT, FORMAT_VERSION, LIMITS, MANIFEST_NAME, READABLE_FORMAT_VERSIONS, BundleError
from slsdk.bundle.manifest import (CropConfig, InputSpec, Manifest, StateSpec, StreamingSpec, TensorSpec,
                                   default_input_spec, legacy_resize_shorter)
from slsdk.bundle.modelcheck import check_model_file
from slsdk.bundle.store import Bundle, bundle_dir_name, is_bundle_dir, load_bundle, resolve_bundle_dir, write_bundle
from slsdk.fileio import sha256_file

__all__ = [
    "FORMAT", "FORMAT_VERSION", "READABLE_FORMAT_VERSIONS", "MANIFEST_NAME", "BundleError", "Manifest", "Bundle",
    "write_bundle", "load_bundle", "zip_bundle", "inspect_bundle", "sha256_file", "default_input_spec",
    "legacy_resize_shorter", "is_bundle_dir", "bundle_dir_name", "resolve_bundle_dir", "check_model_file", "LIMITS",
    "CropConfig", "InputSpec", "TensorSpec", "StateSpec", "StreamingSpec",
]
