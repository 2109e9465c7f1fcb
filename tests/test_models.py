"""Teacher recognizer: frame encoders (AdaptSign, CLIP-SLA), sequence model + losses, config, MAC counting."""
from __future__ import annotations

import pytest
import torch

from slsdk.models.adapters import VARIANTS, FrameEncoder, FrameEncoderConfig, build_frame_encoder, temporal_shift
from slsdk.models.clip import VisionTransformer, get_config
from slsdk.models.flops import count_macs_per_frame, info_rows, parameter_report, vit_macs_formula
from slsdk.models.recognizer import CSLRRecognizer, RecognizerConfig
from slsdk.models.sequence import SequenceModel, cslr_losses

TINY = "ViT-T/16-test"


def _vit(seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(get_config(TINY))


def _frames(b: int = 2, t: int = 5, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 3, 32, 32, generator=g)


def _perturb(enc: FrameEncoder, seed: int = 3) -> FrameEncoder:
    """Give every new (non-backbone) parameter non-trivial values, gates included."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if not name.startswith("backbone."):
                p.copy_(0.3 * torch.randn(p.shape, generator=g) + (0.5 if "gate" in name else 0.0))
    return enc


# ------------------------------------------------------------------------------------------ frame encoder
@pytest.mark.parametrize("variant", VARIANTS)
def test_step0_equals_frozen_clip(variant):
    vit = _vit()
    x = _frames()
    lengths = torch.tensor([5, 3])
    ref = vit(x.flatten(0, 1)).reshape(2, 5, -1)
    enc = FrameEncoder(vit, FrameEncoderConfig(variant=variant))
    out = enc(x, lengths)
    assert out.shape == (2, 5, vit.config.output_dim)
    assert (out - ref).abs().max().item() <= 1e-5
    if variant != "frozen":  # the new modules really do something once trained
        assert (_perturb(enc)(x, lengths) - ref).abs().max().item() > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_only_trainable(variant):
    enc = FrameEncoder(_vit(), FrameEncoderConfig(variant=variant))
    enc(_frames(), torch.tensor([5, 4])).square().sum().backward()
    for name, p in enc.named_parameters():
        head = name in ("backbone.ln_post.weight", "backbone.ln_post.bias", "backbone.proj")
        if name.startswith("backbone.") and not head:
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad and p.grad is not None, name
    gates = [n for n, p in enc.named_parameters() if ("gate" in n or n == "mix") and p.grad.abs().sum() > 0]
    expected = {"frozen": 0, "adaptsign": 3, "sla-lora": 1, "sla-adapter": 0}[variant]
    assert len(gates) == expected, gates
    if variant != "frozen":  # up-projections (zero-init) get a non-zero gradient at step 0
        ups = [p for n, p in enc.named_parameters()
               if n.endswith(("c_out.weight", "up.weight", ".B")) and p.grad.abs().sum() > 0]
        assert ups


def test_set_trainable_backbone():
    enc = FrameEncoder(_vit(), FrameEncoderConfig(variant="adaptsign"))
    frozen = parameter_report(enc)["frozen"]
    assert frozen > 0
    enc.set_trainable(backbone=True)
    assert parameter_report(enc)["frozen"] == 0
    enc(_frames(), None).sum().backward()
    assert enc.backbone.conv1.weight.grad is not None
    assert enc.backbone.transformer.resblocks[0].attn.in_proj_weight.grad is not None
    enc.set_trainable(backbone=False)
    assert parameter_report(enc)["frozen"] == frozen


@pytest.mark.parametrize("variant", ["adaptsign", "sla-lora", "sla-adapter"])
def test_temporal_modules_ignore_padding_and_other_videos(variant):
    enc = _perturb(FrameEncoder(_vit(), FrameEncoderConfig(variant=variant, cross_frame_window=2))).eval()
    x = _frames(2, 6)
    lengths = torch.tensor([4, 6])
    out = enc(x, lengths)
    x2 = x.clone()
    x2[0, 4:] = 100 * torch.randn(2, 3, 32, 32)  # padding of video 0
    out2 = enc(x2, lengths)
    assert torch.allclose(out[0, :4], out2[0, :4], atol=1e-5)
    assert torch.allclose(out[1], out2[1], atol=1e-5)  # other video untouched
    # a valid neighbour does influence a frame (the temporal part is live), a non-neighbour does not
    x3 = x.clone()
    x3[0, 3] = torch.randn(3, 32, 32)
    out3 = enc(x3, lengths)
    assert (out3[0, 2] - out[0, 2]).abs().max() > 1e-4
    assert torch.allclose(out3[1], out[1], atol=1e-5)


def test_temporal_shift_respects_lengths():
    x = torch.arange(1, 5, dtype=torch.float).view(1, 4, 1, 1).expand(1, 4, 1, 4).clone()  # frame t = t+1
    valid = torch.tensor([[True, True, True, False]])
    y = temporal_shift(x, valid, fold=1)[0, :, 0]
    assert y[:, 0].tolist() == [2, 3, 0, 0]   # from t+1; frame 3 is padding -> 0 for frame 2
    assert y[:, 1].tolist() == [0, 1, 2, 3]   # from t-1
    assert y[:, 2].tolist() == [1, 2, 3, 4]


def test_backbone_state_dict_loads_under_prefix():
    vit, other = _vit(0), _vit(1)
    enc = build_frame_encoder(vit, {"variant": "adaptsign"})
    keys = {k[len("backbone."):] for k in enc.state_dict() if k.startswith("backbone.")}
    assert keys == set(other.state_dict())
    missing, unexpected = enc.load_state_dict({f"backbone.{k}": v for k, v in other.state_dict().items()},
                                              strict=False)
    assert not unexpected and all(not k.startswith("backbone.") for k in missing)
    x = _frames(1, 3)
    assert torch.allclose(enc(x), other(x.flatten(0, 1)).unsqueeze(0), atol=1e-5)


@pytest.mark.parametrize("variant", ["adaptsign", "sla-lora", "sla-adapter"])
def test_frame_encoder_exports(variant):
    enc = _perturb(FrameEncoder(_vit(), FrameEncoderConfig(variant=variant))).eval()
    x, lengths = _frames(1, 4), torch.tensor([3])
    ep = torch.export.export(enc, (x, lengths))
    assert torch.allclose(ep.module()(x, lengths), enc(x, lengths), atol=1e-5)


# ------------------------------------------------------------------------------------------ sequence model
def test_output_length_formula_matches_model():
    torch.manual_seed(0)
    m = SequenceModel(8, hidden=16, num_classes=5).eval()
    assert m.min_input_length() == 16
    for t in range(16, 70, 3):
        expected = ((t - 4) // 2 - 4) // 2
        assert SequenceModel.output_length(t) == expected
        out = m(torch.randn(1, t, 8), torch.tensor([t]))
        assert out["conv_logits"].shape == (expected, 1, 5)
        assert out["sequence_logits"].shape == (expected, 1, 5)
        assert out["feat_lengths"].tolist() == [expected]
    lengths = torch.tensor([40, 23, 31])
    out = m(torch.randn(3, 40, 8), lengths)
    assert out["feat_lengths"].tolist() == [SequenceModel.output_length(int(t)) for t in lengths]
    assert out["sequence_logits"].shape[0] == SequenceModel.output_length(40)
    with pytest.raises(ValueError, match="too short"):
        m(torch.randn(2, 20, 8), torch.tensor([20, 15]))


def _labels(lists):
    return torch.tensor([v for l in lists for v in l]), torch.tensor([len(l) for l in lists])


def test_losses_on_padded_batch_equal_mean_of_per_sample():
    torch.manual_seed(0)
    m = SequenceModel(8, hidden=16, num_classes=6).eval()  # eval: BN must not couple the samples
    lengths = [40, 27, 33]
    feats = torch.randn(3, 40, 8)
    feats[1, 27:] = 50.0  # padding content must not matter
    label_lists = [[1, 2, 3], [4, 4], [5, 1, 2, 2]]
    labels, label_lengths = _labels(label_lists)
    batch = cslr_losses(m(feats, torch.tensor(lengths)), labels, label_lengths)
    singles = []
    for i, (t, lab) in enumerate(zip(lengths, label_lists)):
        li, ll = _labels([lab])
        singles.append(cslr_losses(m(feats[i:i + 1, :t], torch.tensor([t])), li, ll))
    for key in ("seq_ctc", "conv_ctc", "distill", "total"):
        ref = torch.stack([s[key] for s in singles]).mean()
        assert torch.isfinite(batch[key])
        assert torch.allclose(batch[key], ref, rtol=1e-4, atol=1e-5), key
    assert batch["distill"] > 0
    assert torch.allclose(batch["total"], batch["seq_ctc"] + batch["conv_ctc"] + 25 * batch["distill"])


def test_distillation_detaches_teacher_and_excludes_blank():
    torch.manual_seed(0)
    m = SequenceModel(8, hidden=16, num_classes=6)
    out = m(torch.randn(2, 30, 8), torch.tensor([30, 25]))
    labels, ll = _labels([[1], [2]])
    loss = cslr_losses(out, labels, ll, weights={"seq_ctc": 0, "conv_ctc": 0, "distill": 1})
    assert set(loss) == {"distill", "total"}
    seq = out["sequence_logits"]
    seq.retain_grad()
    loss["total"].backward()
    assert seq.grad is None or seq.grad.abs().sum() == 0
    # changing only the blank logit of the teacher leaves the distillation term unchanged
    out2 = dict(out)
    out2["sequence_logits"] = seq.detach().clone()
    out2["sequence_logits"][..., 0] += 5.0
    l2 = cslr_losses(out2, labels, ll, weights={"seq_ctc": 0, "conv_ctc": 0, "distill": 1})
    assert torch.allclose(l2["distill"], loss["distill"].detach())


def test_too_short_clip_raises_clear_error():
    m = SequenceModel(8, hidden=16, num_classes=6).eval()
    out = m(torch.randn(2, 24, 8), torch.tensor([24, 20]))  # feat lengths 3 and 2
    assert out["feat_lengths"].tolist() == [3, 2]
    labels, ll = _labels([[1, 2, 3], [4, 4]])  # sample 1 needs 3 frames (repeat needs a blank)
    with pytest.raises(ValueError, match=r"sample 1: 2 output frames < 3 needed"):
        cslr_losses(out, labels, ll)
    labels, ll = _labels([[1, 2, 3], [4, 5]])  # fits exactly
    assert torch.isfinite(cslr_losses(out, labels, ll)["total"])


# ------------------------------------------------------------------------------------------ recognizer
def test_recognizer_config_json_round_trip():
    cfg = RecognizerConfig(backbone=TINY, image_size=48, hidden=32, num_classes=7,
                           encoder=FrameEncoderConfig(variant="sla-lora", lora_rank=4))
    back = RecognizerConfig.from_json(cfg.to_json())
    assert back == cfg
    assert isinstance(back.encoder, FrameEncoderConfig) and back.encoder.lora_rank == 4
    assert back.mean == (0.48145466, 0.4578275, 0.40821073)
    with pytest.raises(ValueError):
        FrameEncoderConfig(variant="nope")


def test_recognizer_forward_and_log_probs():
    torch.manual_seed(0)
    cfg = RecognizerConfig(backbone=TINY, image_size=48, hidden=32, num_classes=7)
    rec = CSLRRecognizer(cfg).eval()
    assert rec.frame_encoder.backbone.positional_embedding.shape[0] == 10  # 3x3 grid + CLS
    videos = torch.randn(2, 20, 3, 48, 48)
    lengths = torch.tensor([20, 17])
    out = rec(videos, lengths)
    assert out["sequence_logits"].shape == (2, 2, 7)
    assert out["feat_lengths"].tolist() == [2, 1]
    lp = rec.log_probs(videos, lengths)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(2, 2), atol=1e-5)
    assert rec.frame_features(videos, lengths).shape == (2, 20, 32)


def test_recognizer_loads_backbone_weights(monkeypatch):
    import slsdk.models.recognizer as recognizer_module

    src = _vit(7)
    calls = []

    def fake_loader(path, config=None, **kw):
        calls.append((path, config))
        return src

    monkeypatch.setattr(recognizer_module, "load_clip_visual", fake_loader)
    rec = CSLRRecognizer(RecognizerConfig(backbone=TINY, backbone_weights="clip.pt", hidden=16, num_classes=5))
    assert calls == [("clip.pt", get_config(TINY))]
    assert rec.frame_encoder.backbone is src


# ------------------------------------------------------------------------------------------ flops
def test_flops_of_frozen_tiny_vit_match_formula():
    cfg = get_config(TINY)
    vit = _vit()
    # hand formula: patch embedding + per block (qkv, QK^T, AV, out, MLP) + projection
    w, n, hdn = cfg.width, cfg.num_tokens, int(cfg.width * cfg.mlp_ratio)
    hand = (n - 1) * w * 3 * 16 * 16 + cfg.layers * (4 * n * w * w + 2 * n * n * w + 2 * n * w * hdn) + w * cfg.output_dim
    assert vit_macs_formula(cfg) == hand
    assert count_macs_per_frame(vit, torch.randn(2, 3, 32, 32)) == hand
    enc = FrameEncoder(vit, FrameEncoderConfig(variant="frozen"))
    assert count_macs_per_frame(enc, (_frames(1, 3), torch.tensor([3]))) == hand
    with torch.device("meta"):
        meta_vit = VisionTransformer(cfg)
        x = torch.zeros(1, 3, 32, 32)
    assert count_macs_per_frame(meta_vit, x) == hand


def test_info_rows_tiny():
    rows = {r["variant"]: r for r in info_rows(TINY)}
    assert set(rows) == set(VARIANTS)
    assert rows["frozen"]["extra_pct"] == 0
    assert rows["frozen"]["gmacs_per_frame"] * 1e9 == vit_macs_formula(get_config(TINY))
    frozen_params = sum(p.numel() for p in _vit().parameters()) - 64 * 2 - 64 * 32  # minus ln_post, proj
    for v in VARIANTS:
        assert rows[v]["frozen_params"] == frozen_params
        if v != "frozen":
            assert rows[v]["extra_pct"] > 0
            assert rows[v]["trainable_params"] > rows["frozen"]["trainable_params"]


def test_student_lstm_cell_is_torch_lstm_cell():
    """The student's linear-layer LSTMCell computes exactly nn.LSTMCell (same parameter names and gate order)."""
    from slsdk.models.student import LSTMCell

    torch.manual_seed(0)
    ref = torch.nn.LSTMCell(6, 5)
    mine = LSTMCell(6, 5)
    mine.load_state_dict(ref.state_dict())
    x, h, c = torch.randn(3, 6), torch.randn(3, 5), torch.randn(3, 5)
    for got, want in zip(mine(x, (h, c)), ref(x, (h, c))):
        torch.testing.assert_close(got, want)
