"""CLIP checkpoint loaders, checked numerically against the reference implementations.

Each test builds a tiny reference model with random weights (open_clip's CLIP, a TorchScript trace of it,
Hugging Face transformers' CLIP models), saves it in that project's own format, loads it with
`slsdk.models.load_clip_visual` and compares image embeddings on the same random images.
open_clip needs torchvision only for its transforms; tests/stubs holds a tests-only stand-in for it.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch


def _import_open_clip_with_stand_in():
    """Import open_clip with the tests-only torchvision stand-in visible only during the import.

    The stand-in leaves sys.path and sys.modules afterwards (open_clip keeps its own references), so other
    libraries in this pytest process (transformers checks `find_spec("torchvision")`) never see it.
    """
    from transformers.utils import import_utils

    import_utils.is_torchvision_available()  # settle (and cache, where cached) before the stand-in appears
    stubs = Path(__file__).parent / "stubs"
    sys.path.insert(0, str(stubs))
    try:
        import open_clip
        from open_clip import transform
    finally:
        sys.path.remove(str(stubs))
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            if str(stubs) in (getattr(sys.modules[name], "__file__", None) or ""):
                del sys.modules[name]
    assert str(stubs) in transform.F.__file__, "open_clip must use the stand-in, not a real torchvision"
    return open_clip


open_clip = _import_open_clip_with_stand_in()
from open_clip.model import CLIP  # noqa: E402
from open_clip.push_to_hf_hub import save_config_for_hf  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from slsdk.models import load_clip_visual  # noqa: E402
from slsdk.models.clip import CLIPVisionConfig, VisionTransformer, interpolate_pos_embed, list_models  # noqa: E402
from slsdk.models.clip_files import FORMATS, detect_format  # noqa: E402
from slsdk.models.errors import CheckpointError  # noqa: E402

TOL = 1e-5
TEXT_CFG = dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1)


def _perturb(model: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere, so LayerNorm weights/biases and zero-initialised biases matter too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def _open_clip_model(width=64, head_width=32, layers=2, image_size=32, patch=16, embed_dim=32, quick_gelu=True,
                     seed=0) -> CLIP:
    torch.manual_seed(seed)
    vision_cfg = dict(image_size=image_size, patch_size=patch, width=width, layers=layers, head_width=head_width)
    model = CLIP(embed_dim=embed_dim, vision_cfg=vision_cfg, text_cfg=TEXT_CFG, quick_gelu=quick_gelu)
    _perturb(model, seed)
    # what open_clip.create_model does after building the model
    open_clip.set_model_preprocess_cfg(model, dict(mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD))
    model.model_config = dict(embed_dim=embed_dim, vision_cfg=vision_cfg, text_cfg=TEXT_CFG, quick_gelu=quick_gelu)
    return model.eval()


def _images(n=3, size=32, seed=1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _assert_close(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    err = (ours - ref).abs().max().item()
    assert err <= TOL, f"max abs diff {err:.3g} > {TOL}"
    assert ref.abs().max().item() > 1e-2, "reference embeddings are ~0: the comparison would prove nothing"


def _check_tower(tower: VisionTransformer) -> None:
    assert isinstance(tower, VisionTransformer)
    assert not tower.training
    assert all(p.dtype == torch.float32 for p in tower.parameters())


@pytest.fixture(scope="module")
def oc_model() -> CLIP:
    return _open_clip_model()


@pytest.fixture(scope="module")
def oc_reference(oc_model) -> torch.Tensor:
    with torch.no_grad():
        return oc_model.encode_image(_images())


def _embed(tower: VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return tower(images)


# ------------------------------------------------------------------------------------------- registry

def test_registry_names_build_random_towers():
    for name in ("ViT-T/16-test", "ViT-S/16-demo"):
        assert name in list_models()
        torch.manual_seed(0)
        a = load_clip_visual(name)
        torch.manual_seed(0)
        b = load_clip_visual(name)
        _check_tower(a)
        cfg = a.config
        x = _images(2, cfg.image_size)
        out = _embed(a, x)
        assert out.shape == (2, cfg.output_dim)
        assert torch.equal(out, _embed(b, x)), "same seed must give the same tower"
    bigger = load_clip_visual("ViT-T/16-test", image_size=48)
    assert bigger.config.image_size == 48 and bigger.positional_embedding.shape[0] == 10


def test_missing_file_and_unknown_name(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_clip_visual(missing)
    with pytest.raises(FileNotFoundError, match="ViT-Q/99"):
        load_clip_visual("ViT-Q/99")


# ------------------------------------------------------------------------------------------- open_clip

def test_open_clip_state_dict_pt_nested_and_prefixed(tmp_path, oc_model, oc_reference):
    sd = oc_model.state_dict()
    plain = tmp_path / "plain.pt"
    torch.save(sd, plain)
    tower = load_clip_visual(plain, config={"heads": 2})
    _check_tower(tower)
    assert tower.load_info["format"] == "torch-state-dict" and tower.load_info["layout"] == "openai"
    _assert_close(_embed(tower, _images()), oc_reference)

    # an open_clip training checkpoint: DDP 'module.' prefix, nested under 'state_dict', optimizer beside it
    opt = torch.optim.AdamW(oc_model.parameters(), lr=0.0)
    opt.zero_grad()
    oc_model.encode_image(_images(1)).sum().backward()
    opt.step()
    ckpt = {"epoch": 3, "name": "tiny", "state_dict": {"module." + k: v for k, v in sd.items()},
            "optimizer": opt.state_dict()}
    nested = tmp_path / "epoch_3.pt"
    torch.save(ckpt, nested)
    _assert_close(_embed(load_clip_visual(nested, config={"heads": 2}), _images()), oc_reference)

    legacy = tmp_path / "legacy.pth"  # torch.save's pre-1.6 (non-zip) pickle format
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:2] == b"\x80\x02"
    _assert_close(_embed(load_clip_visual(legacy, config={"heads": 2}), _images()), oc_reference)


def test_open_clip_safetensors(tmp_path, oc_model, oc_reference):
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in oc_model.state_dict().items()}, str(path))
    assert detect_format(path) == "safetensors"
    tower = load_clip_visual(path, config={"heads": 2})
    assert tower.config.image_size == 32 and tower.config.output_dim == 32 and tower.config.layers == 2
    _assert_close(_embed(tower, _images()), oc_reference)


def test_open_clip_heads_inferred_and_heads_matter(tmp_path):
    model = _open_clip_model(width=128, head_width=64, layers=1, embed_dim=48, seed=3)
    path = tmp_path / "w128.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with torch.no_grad():
        ref = model.encode_image(_images())
    tower = load_clip_visual(path)  # heads = width // 64 = 2, like open_clip's head_width=64
    assert tower.config.heads == 2 and tower.config.width == 128 and tower.config.output_dim == 48
    _assert_close(_embed(tower, _images()), ref)
    wrong = load_clip_visual(path, config={"heads": 4})
    assert (_embed(wrong, _images()) - ref).abs().max() > 1e-3, "the head count must change the result"


def test_open_clip_hub_directory_reads_config(tmp_path):
    model = _open_clip_model(quick_gelu=False, seed=5)  # GELU: only the config file can say so
    d = tmp_path / "oc_hub"
    d.mkdir()
    # what open_clip.push_to_hf_hub.save_for_hf writes (minus the tokenizer files)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "open_clip_model.safetensors"))
    save_config_for_hf(model, d / "open_clip_config.json", model_config=model.model_config)
    assert detect_format(d) == "open_clip-directory"
    tower = load_clip_visual(d)
    assert tower.config.act == "gelu" and tower.config.heads == 2
    with torch.no_grad():
        ref = model.encode_image(_images())
    _assert_close(_embed(tower, _images()), ref)


# ------------------------------------------------------------------------------------------- OpenAI TorchScript

@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_openai_torchscript_archive_fp16(tmp_path, oc_model):
    # OpenAI distributes CLIP as a torch.jit archive of the whole model in fp16; trace open_clip's CLIP the way
    # open_clip.trace_model does (forward, encode_text, encode_image; trace_model itself fails in open_clip 3.3
    # because visual.image_size is a tuple) and store it in half precision.
    images, text = _images(1), torch.zeros(1, TEXT_CFG["context_length"], dtype=torch.int)
    traced = torch.jit.trace_module(_open_clip_model(), inputs=dict(
        forward=(images, text), encode_text=(text,), encode_image=(images,)), check_trace=False)
    traced = traced.half()
    path = tmp_path / "ViT-tiny.weights"  # suffix says nothing: detection is by content
    torch.jit.save(traced, str(path))
    assert any(k.startswith("transformer.") for k in traced.state_dict()), "whole model, text tower included"

    assert detect_format(path) == "openai-torchscript"
    with pytest.warns(UserWarning), pytest.raises(RuntimeError):  # not readable as a plain state dict: the loader must go through torch.jit
        torch.load(path, weights_only=True)
    tower = load_clip_visual(path, config={"heads": 2})
    _check_tower(tower)
    assert tower.load_info["format"] == "openai-torchscript"

    # reference: the same model with its weights rounded to fp16, run in float32
    ref_model = _open_clip_model()
    with torch.no_grad():
        for p in ref_model.parameters():
            p.copy_(p.half().float())
        ref = ref_model.encode_image(_images())
    _assert_close(_embed(tower, _images()), ref)
    full_precision = oc_model.encode_image(_images()).detach()
    assert (ref - full_precision).abs().max() > 0, "fp16 rounding should be visible, else the test is vacuous"


# ------------------------------------------------------------------------------------------- Hugging Face

def _hf_vision_config(**kw):
    from transformers import CLIPVisionConfig as HFVisionConfig

    base = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                patch_size=16, projection_dim=24, hidden_act="quick_gelu")
    base.update(kw)
    return HFVisionConfig(**base)


@pytest.fixture(scope="module")
def hf_with_projection(tmp_path_factory):
    from transformers import CLIPVisionModelWithProjection

    torch.manual_seed(7)
    model = CLIPVisionModelWithProjection(_hf_vision_config()).eval()
    _perturb(model, 7)
    d = tmp_path_factory.mktemp("hf_vwp")
    model.save_pretrained(d)
    return model, d


def test_hf_vision_with_projection_directory(hf_with_projection, tmp_path):
    model, d = hf_with_projection
    assert detect_format(d) == "hf-directory"
    tower = load_clip_visual(d)
    _check_tower(tower)
    assert tower.config.heads == 2 and tower.config.output_dim == 24 and tower.load_info["layout"] == "hf"
    with torch.no_grad():
        ref = model(pixel_values=_images()).image_embeds
    _assert_close(_embed(tower, _images()), ref)

    # the weights file alone: the config.json beside it still gives the head count
    _assert_close(_embed(load_clip_visual(d / "model.safetensors"), _images()), ref)
    # copied somewhere without a config: heads must be given (width 64 // 64 would say 1)
    lone = tmp_path / "lone.safetensors"
    shutil.copy(d / "model.safetensors", lone)
    assert load_clip_visual(lone).config.heads == 1
    _assert_close(_embed(load_clip_visual(lone, config={"heads": 2}), _images()), ref)


def test_hf_clip_model_pytorch_bin(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=100,
                max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    torch.manual_seed(11)
    config = CLIPConfig(vision_config=_hf_vision_config(num_attention_heads=4).to_dict(), text_config=text,
                        projection_dim=40)
    model = CLIPModel(config).eval()
    _perturb(model, 11)
    d = tmp_path / "hf_clip"
    config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    tower = load_clip_visual(d)
    assert tower.config.heads == 4 and tower.config.output_dim == 40
    with torch.no_grad():
        out = model.get_image_features(pixel_values=_images())
    ref = out if isinstance(out, torch.Tensor) else out.pooler_output
    _assert_close(_embed(tower, _images()), ref)


def test_hf_vision_model_without_projection_gelu_eps(tmp_path):
    from transformers import CLIPVisionModel

    torch.manual_seed(13)
    model = CLIPVisionModel(_hf_vision_config(hidden_act="gelu", layer_norm_eps=1e-3)).eval()
    _perturb(model, 13)
    model.save_pretrained(tmp_path)
    tower = load_clip_visual(tmp_path)
    assert tower.config.act == "gelu" and tower.config.ln_eps == 1e-3 and tower.config.output_dim == 64
    assert torch.equal(tower.proj, torch.eye(64))
    with torch.no_grad():
        ref = model(pixel_values=_images()).pooler_output
    _assert_close(_embed(tower, _images()), ref)


def test_positional_embedding_interpolation_matches_hf(hf_with_projection):
    model, d = hf_with_projection
    with torch.no_grad():
        ref32 = model(pixel_values=_images()).image_embeds
        ref48 = model(pixel_values=_images(size=48), interpolate_pos_encoding=True).image_embeds
    native = load_clip_visual(d, image_size=32)
    _assert_close(_embed(native, _images()), ref32)
    big = load_clip_visual(d, image_size=48)
    assert big.config.image_size == 48 and big.positional_embedding.shape == (10, 64)
    _assert_close(_embed(big, _images(size=48)), ref48)
    expected = interpolate_pos_embed(native.positional_embedding.detach(), 9)
    assert torch.equal(big.positional_embedding.detach(), expected)


def test_open_clip_loaded_at_larger_size_runs(tmp_path, oc_model, oc_reference):
    path = tmp_path / "oc.pt"
    torch.save(oc_model.state_dict(), path)
    same = load_clip_visual(path, config={"heads": 2}, image_size=32)
    _assert_close(_embed(same, _images()), oc_reference)
    big = load_clip_visual(path, config={"heads": 2}, image_size=64)
    out = _embed(big, _images(size=64))
    assert out.shape == (3, 32) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="multiple of patch_size"):
        load_clip_visual(path, config={"heads": 2}, image_size=40)


# ------------------------------------------------------------------------------------------- errors

def test_wrong_shape_names_key_and_both_shapes(tmp_path, oc_model, hf_with_projection):
    path = tmp_path / "oc.pt"
    torch.save(oc_model.state_dict(), path)
    with pytest.raises(ValueError) as e:
        load_clip_visual(path, config={"heads": 2, "output_dim": 16})
    msg = str(e.value)
    assert "oc.pt" in msg and "'visual.proj'" in msg and "(64, 32)" in msg and "(64, 16)" in msg, msg

    cfg = CLIPVisionConfig(image_size=64, patch_size=16, width=64, layers=2, heads=2, output_dim=32)
    with pytest.raises(ValueError) as e:
        load_clip_visual(path, config=cfg)
    msg = str(e.value)
    assert "'visual.positional_embedding'" in msg and "(5, 64)" in msg and "(17, 64)" in msg, msg
    assert "image_size=64" in msg  # the hint how to interpolate instead

    _, d = hf_with_projection
    with pytest.raises(ValueError) as e:
        load_clip_visual(d, config={"mlp_ratio": 2.0})
    msg = str(e.value)
    assert "vision_model.encoder.layers.0.mlp.fc1.weight" in msg and "(256, 64)" in msg and "(128, 64)" in msg, msg


def test_missing_and_unexpected_keys_are_listed(tmp_path, oc_model, hf_with_projection):
    sd = dict(oc_model.state_dict())
    del sd["visual.ln_post.bias"], sd["visual.transformer.resblocks.1.mlp.c_fc.weight"]
    sd["visual.transformer.resblocks.0.ls_1.gamma"] = torch.ones(64)  # LayerScale: not our architecture
    path = tmp_path / "broken.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        load_clip_visual(path, config={"heads": 2})
    msg = str(e.value)
    assert "broken.pt" in msg
    for key in ("visual.ln_post.bias", "visual.transformer.resblocks.1.mlp.c_fc.weight",
                "visual.transformer.resblocks.0.ls_1.gamma"):
        assert key in msg, msg

    model, _ = hf_with_projection
    hf = {k: v for k, v in model.state_dict().items() if "layers.1.self_attn.k_proj" not in k}
    hf_path = tmp_path / "hf_broken.safetensors"
    save_file({k: v.contiguous() for k, v in hf.items()}, str(hf_path))
    with pytest.raises(CheckpointError, match=r"vision_model\.encoder\.layers\.1\.self_attn\.k_proj\.weight"):
        load_clip_visual(hf_path, config={"heads": 2})


def test_unknown_format_lists_formats_tried(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("definitely not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError) as e:
        load_clip_visual(text)
    msg = str(e.value)
    assert "notes.pt" in msg and "unknown checkpoint format" in msg
    for label in FORMATS:
        assert label in msg, (label, msg)

    other = tmp_path / "resnet.pt"
    torch.save({"conv.weight": torch.zeros(2, 3, 3, 3), "fc.bias": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="no CLIP ViT image tower found") as e:
        load_clip_visual(other)
    assert "resnet.pt" in str(e.value)

    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(CheckpointError, match="formats tried"):
        load_clip_visual(empty_dir)


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::DeprecationWarning")
def test_truncated_files_give_clear_errors(tmp_path, oc_model):
    sd = {k: v.contiguous() for k, v in oc_model.state_dict().items()}
    full_pt, full_st, full_js = tmp_path / "full.pt", tmp_path / "full.safetensors", tmp_path / "full.jit"
    full_legacy = tmp_path / "full_legacy.pt"
    torch.save(sd, full_legacy, _use_new_zipfile_serialization=False)
    torch.save(sd, full_pt)
    save_file(sd, str(full_st))
    torch.jit.save(torch.jit.trace(oc_model.visual, _images(1), check_trace=False), str(full_js))
    for full in (full_pt, full_legacy, full_st, full_js):
        data = full.read_bytes()
        for cut in (len(data) // 2, len(data) - 10):
            broken = tmp_path / f"cut_{cut}_{full.name}"
            broken.write_bytes(data[:cut])
            with pytest.raises(CheckpointError) as e:
                load_clip_visual(broken, config={"heads": 2})
            msg = str(e.value)
            assert broken.name in msg and ("truncated" in msg or "corrupt" in msg), msg
    (tmp_path / "zero.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="zero.pt.*empty"):
        load_clip_visual(tmp_path / "zero.pt")


def test_in_memory_state_dict_and_config_dict_validation(oc_model, oc_reference):
    tower = load_clip_visual({"model": oc_model.state_dict()}, config={"heads": 2})
    _assert_close(_embed(tower, _images()), oc_reference)
    # the tower owns its tensors: changing it does not touch the source model
    with torch.no_grad():
        tower.proj.zero_()
    assert oc_model.visual.proj.abs().sum() > 0
    # slsdk's own tower state dict (no prefix) round-trips
    again = load_clip_visual(tower.state_dict(), config=tower.config)
    assert again.config == tower.config
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), tower.state_dict().values()))
    with pytest.raises(ValueError, match="unknown config fields"):
        load_clip_visual(oc_model.state_dict(), config={"num_heads": 2})



def test_torchvision_stand_in_does_not_leak():
    import importlib.util

    stubs = str(Path(__file__).parent / "stubs")
    assert stubs not in sys.path
    spec = importlib.util.find_spec("torchvision")
    assert spec is None or stubs not in str(spec.origin), "the stand-in must not be importable outside open_clip"
