"""What every exporter gets and returns: ``fn(job: ExportJob) -> ExportResult``.

The exporters live with their toolchains (``slsdk.toolchains.<name>.export``) and the targets table's
``exporter`` column names them. An exporter writes the target's model file(s) under ``job.work`` (applying the
int8 recipe of its family when ``job.recipe`` is set, through :func:`quantize_with_recipe`) and validates them
structurally; the pipeline (``slsdk.convert.pipeline``) then writes the bundle and measures its fidelity
through the serving backend.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slsdk.quantize.calibration import CalibrationError

__all__ = ["ExportJob", "ExportResult", "quantize_with_recipe", "set_dtypes"]


@dataclass
class ExportJob:
    """What an exporter gets: the table row, the model described (``ModelIO``), its manifest, a work folder."""

    target: object               # slsdk.targets.Target
    precision: str
    io: object                   # slsdk.models.model_io.ModelIO
    manifest: object             # slsdk.bundle.Manifest (an exporter may record the file's real dtypes)
    work: Path
    recipe: object = None        # slsdk.quantize.recipes.QuantRecipe of the target's family (int8), else None
    calib: list | None = None    # calibration input tuples for the recipe

    @property
    def model_file(self) -> str:
        return self.manifest.model_file


@dataclass
class ExportResult:
    files: dict[str, Path]                       # bundle name -> file written under the work folder
    validation: dict = field(default_factory=dict)  # structural checks (delegates, ops, dtypes)


def quantize_with_recipe(job: ExportJob, **kwargs):
    """Apply the job's recipe (typed per family); toolchain failures name the file and the recipe."""
    try:
        return job.recipe.quantize(calib=job.calib, **kwargs)
    except CalibrationError:
        raise
    except Exception as e:
        raise RuntimeError(f"{job.work / job.model_file}: int8 recipe {job.recipe.name!r} failed: "
                           f"{type(e).__name__}: {str(e)[:1500]}") from e


def set_dtypes(manifest, input_dtypes: dict, output_dtypes: dict, where) -> None:
    """Write the model file's real input/output dtypes into ``manifest.streaming`` (by tensor name)."""
    s = manifest.streaming
    for group, tensors, dtypes in (("inputs", s.inputs, input_dtypes), ("outputs", s.outputs, output_dtypes)):
        for io in tensors:
            if io.name not in dtypes:
                raise RuntimeError(f"{where}: the model file has no {group[:-1]} {io.name!r}")
            io.dtype = dtypes[io.name]
