"""The shipped recipe files: each loads, builds its models and trains one step (a small backbone substituted).

Also: unknown keys name the key and the closest valid one, flags override the file, `--print-config` writes a
complete file that loads back to the same settings.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from slsdk.train.recipe import RECIPES_DIR, RecipeError, complete, dump_recipe, load_recipe, merge, parse_recipe

RECIPES = sorted(RECIPES_DIR.glob("*.yaml"))   # the shipped recipes (sdk/train/recipes, package data)


def _kind(path: Path) -> str:
    import yaml

    return yaml.safe_load(path.read_text())["kind"]


def test_every_recipe_names_its_source():
    assert len(RECIPES) >= 4
    for p in RECIPES:
        head = p.read_text().splitlines()[:12]
        assert any(ln.startswith("# Source") for ln in head), f"{p.name}: no '# Source' comment"


@pytest.fixture(scope="module")
def quick_data(tmp_path_factory):
    from slsdk.data.synthetic import generate_synthetic
    from slsdk.demos.pipeline import quick_kwargs

    return generate_synthetic(tmp_path_factory.mktemp("recipes") / "data", seed=0, **quick_kwargs())


@pytest.fixture(scope="module")
def teacher_ckpt(quick_data, tmp_path_factory):
    r = merge(load_recipe("adaptsign-phoenix2014", "teacher"), _SMALL_TEACHER)
    return _train_one_step(r, quick_data, tmp_path_factory.mktemp("t") / "run").best_checkpoint


# the real backbone is too big for a test: a small one, small frames; one step over the whole train split
_SMALL_TEACHER = {"data": {"layout": "folder"}, "model": {"backbone": "ViT-T/16-test", "image_size": 32,
                                                           "hidden": 32},
                  "train": {"epochs": 1, "batch_size": 12, "eval_beam": 2}}
_SMALL_STUDENT = {"data": {"layout": "folder"}, "student": {"image_size": 32},
                  "distill": {"epochs": 1, "batch_size": 12, "report": False}}


def _train_one_step(recipe, data, out):
    from slsdk.train import train

    return train(data, out, recipe.build("model"), recipe.build("train"), layout=recipe.sections["data"]["layout"],
                 progress=False)


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_builds_and_trains_one_step(path, quick_data, teacher_ckpt, tmp_path):
    import math

    kind = _kind(path)
    recipe = load_recipe(path, kind)
    full = complete(recipe)
    assert parse_recipe(full, kind, "roundtrip").sections == parse_recipe(full, kind).sections
    if kind == "teacher":
        small = merge(recipe, _SMALL_TEACHER)
        assert small.sections["model"]["encoder"] == recipe.sections["model"]["encoder"]  # the variant is kept
        res = _train_one_step(small, quick_data, tmp_path / "run")
    else:
        from slsdk.train import distill

        small = merge(recipe, _SMALL_STUDENT)
        res = distill(teacher_ckpt, quick_data, tmp_path / "run", small.build("distill"), progress=False)
    loss = res.history[-1]["train_loss"]
    assert math.isfinite(loss)
    from slsdk.train.checkpoint import load_model

    model, vocab, ckind = load_model(res.best_checkpoint)
    assert ckind == kind


def test_unknown_key_names_the_closest(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("kind: teacher\ntrain:\n  learning_rate: 0.1\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: unknown key train\.learning_rate"):
        load_recipe(p, "teacher")
    p.write_text("kind: teacher\nmodel:\n  encoder:\n    variant: adaptsign\n    lora_rnk: 4\n")
    with pytest.raises(RecipeError, match="did you mean 'lora_rank'"):
        load_recipe(p, "teacher")
    p.write_text("kind: teacher\ntrian:\n  epochs: 1\n")
    with pytest.raises(RecipeError, match="did you mean 'train'"):
        load_recipe(p, "teacher")
    p.write_text("kind: student\ntrain:\n  epochs: 1\n")
    with pytest.raises(RecipeError, match="belongs to teacher recipes.*'distill'"):
        load_recipe(p, "student")
    p.write_text("kind: teacher\ntrain:\n  epochs: [1\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:\d+: not valid YAML"):
        load_recipe(p, "teacher")


def test_a_key_given_twice_is_an_error_not_the_last_value(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("kind: teacher\ntrain:\n  lr: 0.001\n  epochs: 2\n  lr: 1.0e30\n")
    with pytest.raises(RecipeError, match=r"r\.yaml:5: the key 'lr' is given twice"):
        load_recipe(p, "teacher")
    p = tmp_path / "r.json"
    p.write_text('{"kind": "teacher", "train": {"lr": 0.001, "lr": 1e30}}')
    with pytest.raises(RecipeError, match=r"r\.json: the key 'lr' is given twice"):
        load_recipe(p, "teacher")
    p = tmp_path / "e.yaml"         # YAML 1.1 reads 1e-4 as text: a recipe takes it as the number it is
    p.write_text("kind: teacher\ntrain:\n  lr: 1e-4\n  weight_decay: 5.0e-2\n")
    r = load_recipe(p, "teacher")
    assert r.sections["train"]["lr"] == 1e-4 and r.sections["train"]["weight_decay"] == 0.05
    p = tmp_path / "ok.yaml"        # merge keys and anchors still work
    p.write_text("kind: teacher\nbase: &b {epochs: 2}\ntrain:\n  <<: *b\n  lr: 0.01\n")
    with pytest.raises(RecipeError, match="unknown section .base."):   # parsed: the merge key worked
        load_recipe(p, "teacher")


def test_flags_override_the_file_and_print_config_is_complete(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from slsdk.cli import app

    monkeypatch.chdir(tmp_path)
    Path("r.yaml").write_text("kind: teacher\ntrain:\n  epochs: 3\n  lr: 0.5\nmodel:\n  hidden: 64\n")
    r = CliRunner().invoke(app, ["train", "--config", "r.yaml", "--epochs", "7", "--print-config"])
    assert r.exit_code == 0, r.output
    Path("full.yaml").write_text(r.output)
    full = load_recipe("full.yaml", "teacher")
    assert full.sections["train"]["epochs"] == 7          # the flag wins
    assert full.sections["train"]["lr"] == 0.5            # the file wins over the command's default
    assert full.sections["model"]["hidden"] == 64
    assert full.sections["model"]["backbone"] == "ViT-S/16-demo"   # the command's default fills the rest
    assert "optimizer" in full.sections["train"] and "encoder" in full.sections["model"]
    assert dump_recipe(complete(full)) == r.output
