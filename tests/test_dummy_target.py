"""Adding a target is one toolchain folder plus one table row, and nothing else.

A fixture writes a toolchain package (``dummytc``: a provider whose backend is a subclass defined in that
package, its exporter the ONNX one under another file suffix) into ``tmp_path``, puts it on ``sys.path``,
registers its provider and a ``dummy-onnx`` row at run time, and then conversion, ``slsdk bundle inspect`` and
serving the bundle (``slsdk.Recognizer``) all work with no other change to slsdk.

``slsdk convert --target`` takes its choices from the table when the CLI module is imported (typer builds the
option's Enum then), so a target registered at run time is converted through the Python API
(``slsdk.convert.convert``); ``slsdk bundle inspect`` is exercised through the CLI.
"""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from slsdk.targets import TARGETS, Target, register_target
from slsdk.toolchains import PROVIDERS, get_provider

VOCAB = ["<blank>", *(f"G{i}" for i in range(9))]

PACKAGE = {
    "__init__.py": '''
        """A toolchain that ships ONNX graphs as .dmy files, served by its own backend."""
        from slsdk.toolchains import Provider, register_provider

        PROVIDER = register_provider(Provider(
            name="dummy", backend="dummytc.backend:DummyBackend", backend_name="dummy-ort",
            inspector="dummytc.inspect:model_signature", exporters={"dummy": "dummytc.export:export_dummy"}))
    ''',
    "backend.py": '''
        from slsdk.toolchains.onnx.backend import OnnxRuntimeBackend


        class DummyBackend(OnnxRuntimeBackend):
            """onnxruntime under another name: proves the provider's backend is the one that serves."""

            name = "dummy-ort"
            opened = 0

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                type(self).opened += 1
    ''',
    "export.py": '''
        from slsdk.toolchains.onnx.export import export_onnx_target


        def export_dummy(job):
            """The ONNX exporter; the bundle names the file after the row's suffix (model.dmy)."""
            return export_onnx_target(job)
    ''',
    "inspect.py": '''
        from slsdk.toolchains.onnx.inspect import model_signature as onnx_signature


        def model_signature(path):
            return onnx_signature(path)
    ''',
}


@pytest.fixture()
def dummy_target(tmp_path, monkeypatch):
    """Register the ``dummy`` provider (a package written into tmp_path) and the ``dummy-onnx`` row."""
    root = tmp_path / "pkgs" / "dummytc"
    root.mkdir(parents=True)
    for name, text in PACKAGE.items():
        (root / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(root.parent))
    import dummytc  # noqa: F401  (registers the provider, as a built-in toolchain's __init__ does)

    row = register_target(Target(
        name="dummy-onnx", suffix=".dmy", description="an ONNX graph under another suffix",
        exporter="dummytc.export:export_dummy", toolchain="dummy", precisions=("fp32",), default_precision="fp32",
        delegate="onnxruntime CPU", min_os="any", modules=("onnx", "onnxruntime")))
    try:
        yield row
    finally:
        TARGETS.pop("dummy-onnx", None)
        PROVIDERS.pop("dummy", None)
        for name in [m for m in sys.modules if m == "dummytc" or m.startswith("dummytc.")]:
            del sys.modules[name]


def test_a_target_is_one_folder_and_one_row(dummy_target, tiny_student, tmp_path):
    import slsdk
    from slsdk.cli import app
    from slsdk.convert import convert

    backend_cls = get_provider("dummy")
    assert backend_cls.backend_name == dummy_target.backend == "dummy-ort"

    bundle = convert(tiny_student(len(VOCAB)), "dummy-onnx", None, tmp_path / "student-dummy", vocab=VOCAB,
                     crop={"policy": "full"})
    assert bundle.manifest.target == "dummy-onnx" and bundle.model_path.name == "model.dmy"
    assert bundle.manifest.fidelity["status"] == "run" and bundle.manifest.fidelity["cosine"] > 0.999

    r = CliRunner().invoke(app, ["bundle", "inspect", str(bundle.root)])
    assert r.exit_code == 0, r.output
    assert "dummy-onnx" in r.output

    from dummytc.backend import DummyBackend

    opened = DummyBackend.opened
    rec = slsdk.Recognizer(bundle.root, crop="full")
    assert isinstance(rec.backend, DummyBackend) and DummyBackend.opened == opened + 1
    stream = rec.create_stream()
    stream.accept_frames(np.random.default_rng(0).integers(0, 255, (20, 40, 40, 3), dtype=np.uint8))
    stream.input_finished()
    assert isinstance(rec.result(stream).glosses, list)


def test_the_registries_refuse_a_clash(dummy_target):
    from slsdk.toolchains import Provider, register_provider

    with pytest.raises(ValueError, match="already registered"):
        register_provider(Provider(name="dummy", backend="x:Y", backend_name="other"))
    with pytest.raises(ValueError, match="already in the table"):
        register_target(Target(**{**dummy_target.__dict__, "suffix": ".other"}))
    with pytest.raises(ValueError, match="unknown toolchain provider"):
        register_target(Target(**{**dummy_target.__dict__, "name": "nowhere", "toolchain": "nowhere"}))
