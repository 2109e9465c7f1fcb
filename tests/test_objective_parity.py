"""The training objective of ``slsdk train --config adaptsign-phoenix2014`` against AdaptSign's own.

``objective_parity_reference.json`` holds figures measured with the released code (hulianyuyy/AdaptSign:
``SLRModel.criterion_calculation`` with loss weights SeqCTC 1 / ConvCTC 1 / Dist 25, ``SeqKD(T=8)``, main.py's
``freeze_parameter``), run outside this repository on a random-weight checkpoint written by
``adaptsign_checkpoints.write_checkpoint`` (the inputs below, all generated from seeds; the reference model in
eval mode, so BatchNorm uses its running statistics and dropout is off). Only those numbers are kept here.

Here the same checkpoint is imported (``import_adaptsign``) and fed the same batch -- two clips of 40 and 28
frames padded as the reference's ``collate_fn`` pads them -- through ``slsdk.train.objective(model,
"adaptsign-phoenix2014")``. Acceptance: total loss within 1e-5 (relative), the gradient w.r.t. the input video
within 1e-4 of its largest value, the same number of trainable scalars (and the same parameters), the same
global gradient norm (within 1e-4, relative).

The input gradient is taken w.r.t. the clips *before* padding (the padded batch is built from them with
differentiable copies, so each padding frame's gradient flows back into the frame it copies): the padding
repeats a clip's first and last frame, the max-pooling of the temporal conv then compares equal values, and which
copy receives the gradient depends on the last bits of the features. The sum over the copies is what both
implementations agree on (measured: padded-tensor elementwise 4.7e-2 of the max, clips 1.1e-6).

Not reproduced, on purpose: when the input needs no gradient (real training) the released code's reentrant
``torch.utils.checkpoint`` around the first block's attention sees no input that requires grad, so that block's
prefix K/V never get a gradient although they are trainable; slsdk gives them their gradient
(``test_reference_quirk_first_block_prefixes`` pins the size of that difference).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from adaptsign_checkpoints import RefShape, gloss_names, write_checkpoint, write_gloss_dict
from slsdk.errors import ConfigError
from slsdk.models import import_adaptsign
from slsdk.models.sequence import cslr_losses, distillation_loss
from slsdk.train import TrainConfig, objective
from slsdk.train.objective import TeacherObjective, apply_trainable, build_objective, dead_gate_notes
from slsdk.train.recipe import load_recipe

FIXTURE = json.loads((Path(__file__).with_name("objective_parity_reference.json")).read_text())
INPUTS = FIXTURE["inputs"]
SHAPE = RefShape(**INPUTS["shape"])     # width 128 (2 heads), 2 layers, 32 px, CLIP out 512, hidden 64, 9 classes
RECIPE = "adaptsign-phoenix2014"


# ------------------------------------------------------------------------------------------ inputs
def make_clips(lengths, size: int, seed: int) -> list[torch.Tensor]:
    """Random uint8 frames [T, 3, H, W] per clip, scaled as the reference dataloader does (x / 127.5 - 1)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (t, 3, size, size), generator=g, dtype=torch.uint8).float() / 127.5 - 1
            for t in lengths]


def reference_padding(clips: list[torch.Tensor], conv_type: str = "K5-P2-K5-P2"):
    """The padded batch the reference's collate builds: clips sorted longest first; each gets ``left`` copies of
    its first frame in front (``left`` = the temporal conv's receptive half-width, 6 for K5-P2-K5-P2) and copies
    of its last frame behind up to the common length; a clip's length is its frame count rounded up to the
    total pooling stride, plus ``2 * left``. Built from the clips with differentiable ops."""
    left, stride = 0, 1
    last = 1
    for tok in conv_type.split("-"):
        size = int(tok[1:])
        if tok[0] == "K":
            left = left * last + (size - 1) // 2
        else:
            last = size
            stride *= size
    clips = sorted(clips, key=len, reverse=True)
    total = math.ceil(len(clips[0]) / stride) * stride + 2 * left
    lengths = torch.tensor([math.ceil(len(c) / stride) * stride + 2 * left for c in clips])
    padded = [torch.cat([c[:1].expand(left, -1, -1, -1), c, c[-1:].expand(total - len(c) - left, -1, -1, -1)])
              for c in clips]
    return torch.stack(padded), lengths


def _labels(case):
    labels = torch.tensor([g for lab in case["labels"] for g in lab])
    return labels, torch.tensor([len(lab) for lab in case["labels"]])


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("objective_parity")
    ck = write_checkpoint(tmp / "adaptsign.pt", SHAPE, seed=INPUTS["weights_seed"])
    gd = write_gloss_dict(tmp / "gloss_dict.npy", gloss_names(SHAPE.num_classes - 1))
    return ck, gd


def _model(imported):
    model, _ = import_adaptsign(*imported)
    return model


def _run(obj: TeacherObjective, case):
    clips = [c.requires_grad_(True) for c in make_clips(case["clip_lengths"], SHAPE.image_size, INPUTS["clip_seed"])]
    video, lengths = reference_padding(clips)
    assert lengths.tolist() == case["padded_lengths"] and video.shape[1] == case["padded_frames"]
    labels, label_lengths = _labels(case)
    obj.eval()                      # BatchNorm on running statistics, no dropout: as the reference was measured
    obj.model.zero_grad(set_to_none=True)
    out = obj(video, lengths, labels, label_lengths)
    out["total"].backward()
    out = {k: v.detach() for k, v in out.items()}
    grads = {n: p.grad for n, p in obj.model.named_parameters() if p.requires_grad and p.grad is not None}
    norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values())))
    return out, [c.grad for c in clips], grads, norm


# ------------------------------------------------------------------------------------------ parity
def test_padded_batch_matches_the_reference(imported):
    """Acceptance: clips of 40 and 28 frames, one padded; the reference's loss, gradients and trainable set."""
    case, ref = INPUTS["cases"]["padded"], FIXTURE["reference"]["padded"]
    model = _model(imported)
    obj = objective(model, RECIPE)
    out, clip_grads, grads, norm = _run(obj, case)

    # loss: total and each term
    assert abs(float(out["total"]) - ref["total"]) <= 1e-5 * abs(ref["total"]), (float(out["total"]), ref["total"])
    for ours, theirs in (("seq_ctc", "SeqCTC"), ("conv_ctc", "ConvCTC"), ("distill", "Dist")):
        assert float(out[ours]) == pytest.approx(ref["terms"][theirs], rel=1e-4), ours

    # trainable parameters: the same set (in slsdk's names), the same number of scalars
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ref["trainable_names"]
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == ref["trainable_scalars"]

    # gradients: global norm, and every trainable tensor's norm
    assert abs(norm - ref["grad_norm"]) <= 1e-4 * ref["grad_norm"], (norm, ref["grad_norm"])
    for name, want in ref["param_grad_norms"].items():
        got = float(grads[name].double().norm()) if name in grads else 0.0
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6 * ref["grad_norm"]), name

    # input gradient (w.r.t. the clips): largest value, per-frame sums, and sampled elements within 1e-4 of the max
    fp = ref["clip_grad"]
    top = fp["max_abs"]
    assert max(float(g.abs().max()) for g in clip_grads) == pytest.approx(top, rel=1e-4)
    for i, g in enumerate(clip_grads):
        frame_sums = torch.tensor(fp["frame_channel_sums"][i], dtype=torch.float64)
        assert (g.double().sum(dim=(2, 3)) - frame_sums).abs().max() <= 1e-4 * top * g[0, 0].numel()
        frame_abs = torch.tensor(fp["frame_abs_max"][i], dtype=torch.float64)
        assert (g.double().abs().amax(dim=(1, 2, 3)) - frame_abs).abs().max() <= 1e-4 * top
        idx = torch.tensor(fp["samples"][i]["index"])
        vals = torch.tensor(fp["samples"][i]["value"], dtype=torch.float64)
        assert (g.flatten()[idx].double() - vals).abs().max() <= 1e-4 * top


def test_equal_lengths_match_for_both_reductions(imported):
    """Without padding the two distillation reductions are the same number, and both equal the reference."""
    case, ref = INPUTS["cases"]["equal"], FIXTURE["reference"]["equal"]
    base = load_recipe(RECIPE, "teacher").build("train")
    for reduction in ("reference", "masked"):
        model = _model(imported)
        cfg = TrainConfig.from_dict({**base.to_dict(), "kd_reduction": reduction})
        out, _, _, norm = _run(objective(model, cfg), case)
        assert abs(float(out["total"]) - ref["total"]) <= 1e-5 * abs(ref["total"]), reduction
        assert abs(norm - ref["grad_norm"]) <= 1e-4 * ref["grad_norm"], reduction


def test_masked_reduction_is_the_deliberate_difference(imported):
    """slsdk's default (masked) distillation differs from the released one only where a clip is padded."""
    case, ref = INPUTS["cases"]["padded"], FIXTURE["reference"]["padded"]
    base = load_recipe(RECIPE, "teacher").build("train")
    model = _model(imported)
    out, _, _, _ = _run(objective(model, TrainConfig.from_dict({**base.to_dict(), "kd_reduction": "masked"})), case)
    assert float(out["seq_ctc"]) == pytest.approx(ref["terms"]["SeqCTC"], rel=1e-5)
    assert float(out["conv_ctc"]) == pytest.approx(ref["terms"]["ConvCTC"], rel=1e-5)
    assert abs(float(out["distill"]) - ref["terms"]["Dist"]) > 1e-3 * ref["terms"]["Dist"]


def test_reference_quirk_first_block_prefixes(imported):
    """Without an input gradient the reference's global norm lacks exactly the first block's prefix K/V grads."""
    case, quirk = INPUTS["cases"]["padded"], FIXTURE["reference_without_input_grad"]
    assert quirk["no_grad"] == [f"conv2d.visual.transformer.resblocks.0.prefix_embedding_{kv}" for kv in "kv"]
    model = _model(imported)
    obj = objective(model, RECIPE).eval()
    video, lengths = reference_padding(make_clips(case["clip_lengths"], SHAPE.image_size, INPUTS["clip_seed"]))
    obj(video, lengths, *_labels(case))["total"].backward()
    fe = model.frame_encoder
    squares = sum(float((p.grad.double() ** 2).sum()) for p in model.parameters() if p.grad is not None)
    first = float((fe.prefix_k.grad[0].double() ** 2).sum() + (fe.prefix_v.grad[0].double() ** 2).sum())
    assert first > 1e-6 * squares
    assert math.sqrt(squares - first) == pytest.approx(quirk["grad_norm"], rel=1e-4)


# ------------------------------------------------------------------------------------------ the settings
def test_distillation_reductions_by_hand():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(6, 3, 5, generator=g), torch.randn(6, 3, 5, generator=g)
    lengths = torch.tensor([6, 4, 2])
    temp = 8.0
    ls = (student[..., 1:] / temp).log_softmax(-1)
    pt = (teacher[..., 1:] / temp).softmax(-1)
    rows = torch.nn.functional.kl_div(ls.reshape(-1, 4), pt.reshape(-1, 4), reduction="none").sum(-1).view(6, 3)
    ref = distillation_loss(student, teacher, lengths, temp, reduction="reference")
    assert float(ref) == pytest.approx(float(rows.mean() * temp ** 2), rel=1e-6)
    masked = distillation_loss(student, teacher, lengths, temp)
    want = sum(float(rows[:t, b].mean()) for b, t in enumerate(lengths.tolist())) / 3 * temp ** 2
    assert float(masked) == pytest.approx(want, rel=1e-6)
    full = torch.tensor([6, 6, 6])
    assert float(distillation_loss(student, teacher, full, temp)) == pytest.approx(
        float(distillation_loss(student, teacher, full, temp, reduction="reference")), rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        distillation_loss(student, teacher, lengths, temp, reduction="sum")
    out = {"conv_logits": student, "sequence_logits": teacher, "feat_lengths": lengths}
    terms = cslr_losses(out, torch.tensor([1, 2, 3]), torch.tensor([1, 1, 1]), temperature=temp,
                        distill_reduction="reference")
    assert float(terms["distill"]) == pytest.approx(float(ref), rel=1e-6)


def test_recipe_settings_and_freeze_rule(imported, tmp_path):
    cfg = load_recipe(RECIPE, "teacher").build("train")
    assert (cfg.kd_reduction, cfg.kd_temperature, cfg.encoder_masks_padding) == ("reference", 8.0, False)
    assert cfg.loss_weights == {"seq_ctc": 1.0, "conv_ctc": 1.0, "distill": 25.0}
    assert TrainConfig().kd_reduction == "masked" and TrainConfig().encoder_trainable is None
    model = _model(imported)
    obj = objective(model, RECIPE)
    assert isinstance(obj, TeacherObjective) and obj.model is model and obj.kd_reduction == "reference"
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {"frame_encoder.query", "frame_encoder.prefix_gate"} <= frozen
    assert dead_gate_notes(model) == []              # imported: the gate is 1 (the reference's joint softmax)
    assert not any(n.startswith("sequence.") for n in frozen)
    assert all(n.startswith("frame_encoder.backbone.") for n in frozen - {"frame_encoder.query",
                                                                          "frame_encoder.prefix_gate"})
    # the same rule from a file, a Recipe object, a mapping, a TrainConfig
    recipe = load_recipe(RECIPE, "teacher")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe.to_dict()))
    for how in (path, str(path), recipe, recipe.to_dict(), cfg):
        m = _model(imported)
        objective(m, how)
        assert {n for n, p in m.named_parameters() if not p.requires_grad} == frozen
    # unfreeze_backbone trains everything; no rule = the encoder's own (query and gate train)
    m = _model(imported)
    apply_trainable(m, TrainConfig.from_dict({**cfg.to_dict(), "unfreeze_backbone": True}))
    assert all(p.requires_grad for p in m.parameters())
    build_objective(m, TrainConfig())
    assert m.frame_encoder.query.requires_grad and not m.frame_encoder.backbone.conv1.weight.requires_grad


def test_bad_settings_are_errors(imported):
    with pytest.raises(ConfigError, match="kd_reduction"):
        TrainConfig(kd_reduction="batchmean")
    with pytest.raises(ConfigError, match="kd_temperature"):
        TrainConfig(kd_temperature=0)
    with pytest.raises(ConfigError, match="encoder_trainable"):
        TrainConfig(encoder_trainable="s_adapters.*")
    model = _model(imported)
    with pytest.raises(ConfigError, match=r"'s_adaptors\.\*' match no parameter"):
        apply_trainable(model, TrainConfig(encoder_trainable=["s_adaptors.*", "mix"]))
    with pytest.raises(ValueError, match="this is a student recipe"):
        objective(model, "student-edge")


def test_the_trainer_optimises_the_recipe_objective(tmp_path, monkeypatch):
    """``slsdk train`` builds its objective with ``build_objective``: same settings, same frozen parameters."""
    from slsdk.data.synthetic import generate_synthetic
    from slsdk.train import teacher_config, train
    from slsdk.train import trainer

    data = generate_synthetic(tmp_path / "data", seed=0, num_glosses=3, num_signers=2, num_test_si_signers=1,
                              sentences_per_signer=2, num_train_sentences=2, num_test_us_sentences=1,
                              dev_per_signer=1, test_si_per_signer=1, test_us_per_sentence=1, image_size=32,
                              min_len=1, max_len=2, video_format="png")
    seen = {}

    def capture(job, **kw):
        seen["job"] = job
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "run_training", capture)
    cfg = load_recipe(RECIPE, "teacher").build("train")
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "device": "cpu", "epochs": 1})
    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path / "run", teacher_config("ViT-T/16-test", hidden=32, prefix_tokens=2), cfg,
              progress=False)
    obj = seen["job"].objective
    assert isinstance(obj, TeacherObjective) and obj.model is seen["job"].model
    assert (obj.kd_reduction, obj.kd_temperature, obj.encoder_masks_padding) == ("reference", 8.0, False)
    assert obj.loss_weights == {"seq_ctc": 1.0, "conv_ctc": 1.0, "distill": 25.0}
    frozen = {n for n, p in obj.model.named_parameters() if not p.requires_grad}
    assert {"frame_encoder.query", "frame_encoder.prefix_gate"} <= frozen
    # a freshly built encoder's prefix gate is 0: frozen by the reference's rule, the trainer says so
    assert [n.split()[0] for n in dead_gate_notes(obj.model)] == ["frame_encoder.prefix_gate"]
