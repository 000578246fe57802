"""Checkpoint containers: family detection, key normalisation, errors, sources and hashes."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import torch

from tessera_assets.model import (
    CheckpointError,
    CheckpointKeyError,
    ChecksumMismatchError,
    load_model,
    random_model,
    write_checkpoint,
)
from tessera_assets.model.checkpoint import parse_checkpoint, read_container
from tessera_assets.model.families import BackboneConfig, ModelConfig


def tiny(kind: str, latent: int = 4, layers: int = 1, ffn: int = 16) -> ModelConfig:
    """A reduced-size config of each family (official layout, tiny widths)."""
    d = 4 * latent
    hidden = None if kind == "v1.0" else 2 * 2 * d
    rep = {"v1.0": 8, "v1.1": 24, "v2": 128}[kind]
    emb = {"v1.0": 8, "v1.1": 16, "v2": 128}[kind]
    return ModelConfig(
        kind,
        BackboneConfig(10, latent, layers, 4, ffn),
        BackboneConfig(2, latent, layers, 4, ffn),
        rep,
        emb,
        hidden,
    )


@pytest.fixture(params=["v1.0", "v1.1", "v2"])
def kind(request) -> str:
    return request.param


def _save(obj, path: Path) -> Path:
    torch.save(obj, path)
    return path


def test_reduced_checkpoints_round_trip(kind, tmp_path):
    model = random_model(tiny(kind), seed=3)
    path = write_checkpoint(model, tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.config == model.config
    assert loaded.norm == model.norm
    assert loaded.family == ("v2-custom" if kind == "v2" else kind)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.embedding_dim == model.config.embedding_dim
    assert loaded.device == torch.device("cpu")


def test_container_layouts_are_official(kind, tmp_path):
    path = write_checkpoint(random_model(tiny(kind)), tmp_path / "m.pt")
    container = read_container(path)
    expected = {
        "v1.0": {"model_state_dict"},
        "v1.1": {"model_state_dict", "config"},
        "v2": {"model", "args"},
    }[kind]
    assert set(container) == expected


def test_orig_mod_prefix_and_projector_are_handled(kind, tmp_path):
    model = random_model(tiny(kind), seed=1)
    container = read_container(write_checkpoint(model, tmp_path / "m.pt"))
    key = "model" if kind == "v2" else "model_state_dict"
    state = {f"_orig_mod.{k}": v for k, v in container[key].items()}
    state["_orig_mod.projector.net.0.weight"] = torch.zeros(3, 3)
    state["segmented_matryoshka_projector.head.weight"] = torch.zeros(2)
    container[key] = state
    loaded = load_model(_save(container, tmp_path / "compiled.pt"))
    assert sorted(loaded.ignored_keys) == [
        "projector.net.0.weight",
        "segmented_matryoshka_projector.head.weight",
    ]
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_v10_state_key_alternatives_and_raw_state_dict(tmp_path):
    model = random_model(tiny("v1.0"))
    state = model.state_dict()
    for obj in ({"model_state": state}, dict(state)):
        loaded = load_model(_save(obj, tmp_path / "x.pt"))
        assert loaded.family == "v1.0"


def test_missing_and_unexpected_keys_are_listed(kind, tmp_path):
    model = random_model(tiny(kind))
    container = read_container(write_checkpoint(model, tmp_path / "m.pt"))
    key = "model" if kind == "v2" else "model_state_dict"
    state = dict(container[key])
    del state["s2_backbone.attn_pool.query.bias"]
    state["s1_backbone.extra_head.weight"] = torch.zeros(2)
    container[key] = state
    with pytest.raises(CheckpointKeyError) as err:
        load_model(_save(container, tmp_path / "bad.pt"))
    assert err.value.missing == ["s2_backbone.attn_pool.query.bias"]
    assert err.value.unexpected == ["s1_backbone.extra_head.weight"]
    assert "s2_backbone.attn_pool.query.bias" in str(err.value)
    assert "s1_backbone.extra_head.weight" in str(err.value)


def test_family_argument_must_agree(tmp_path):
    path = write_checkpoint(random_model(tiny("v2")), tmp_path / "v2.pt")
    assert load_model(path, family="v2").kind == "v2"
    with pytest.raises(CheckpointError, match="contradicts"):
        load_model(path, family="v1.1")
    with pytest.raises(CheckpointError, match="contradicts"):
        load_model(path, family="v2-medium")  # a custom size is not the medium release
    with pytest.raises(ValueError, match="unknown TESSERA family"):
        load_model(path, family="v3")


def test_container_contradicting_weights_is_ambiguous(tmp_path):
    v11 = random_model(tiny("v1.1"))
    bogus = {"model": v11.state_dict(), "args": {"latent_dim": 4}}
    with pytest.raises(CheckpointError, match="ambiguous"):
        load_model(_save(bogus, tmp_path / "x.pt"))


def test_args_contradicting_shapes_is_an_error():
    model = random_model(tiny("v2"))
    with pytest.raises(CheckpointError, match="latent_dim"):
        parse_checkpoint({"model": model.state_dict(), "args": {"latent_dim": 99, "nhead": 4}})


def test_unsupported_checkpoints_have_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="teacher"):
        parse_checkpoint({"encoder_state_dict": {}, "arch": {}})
    early = {"s2_backbone.attn_pool.temporal_context.weight_ih_l0": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"nn\.GRU"):
        parse_checkpoint({"model_state_dict": early})
    with pytest.raises(CheckpointError, match="cannot tell"):
        parse_checkpoint({"model_state_dict": {"foo.weight": torch.zeros(1)}})
    with pytest.raises(CheckpointError, match="not a checkpoint dict"):
        load_model(_save([1, 2], tmp_path / "list.pt"))


def test_v11_norm_selection(tmp_path, caplog):
    model = random_model(tiny("v1.1"))
    container = read_container(write_checkpoint(model, tmp_path / "m.pt"))
    container["config"].pop("data_source", None)
    bare = _save(container, tmp_path / "bare.pt")
    with caplog.at_level(logging.WARNING, logger="tessera_assets.model.loading"):
        assert load_model(bare).norm == "v1.1-mpc"
    assert "normalisation set" in caplog.text
    assert load_model(bare, norm="aws").norm == "v1.1-aws"
    container["config"]["data_source"] = "aws"
    declared = _save(container, tmp_path / "aws.pt")
    assert load_model(declared).norm == "v1.1-aws"
    with pytest.raises(CheckpointError, match="contradicts"):
        load_model(declared, norm="mpc")
    with pytest.raises(ValueError, match="does not belong"):
        load_model(declared, norm="v2")


def test_sha256_pin(tmp_path):
    path = write_checkpoint(random_model(tiny("v1.0")), tmp_path / "m.pt")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_model(path, sha256=digest.upper()).sha256 == digest
    with pytest.raises(ChecksumMismatchError, match="expected"):
        load_model(path, sha256="0" * 64)


def test_hf_source_resolves_through_local_cache(tmp_path, monkeypatch):
    """``hf://owner/repo/path`` goes through huggingface_hub's cache; no network is touched."""
    import huggingface_hub

    cache = tmp_path / "hf-cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / "models--geotessera--TESSERA-V-2.0-2B-N"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    target = repo_dir / "snapshots" / commit / "ckpt" / "student_nano.pt"
    write_checkpoint(random_model(tiny("v2"), seed=5), target)

    real = huggingface_hub.hf_hub_download
    calls = []

    def offline_download(**kwargs):
        calls.append(kwargs)
        return real(**kwargs, cache_dir=cache, local_files_only=True)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline_download)
    model = load_model("hf://geotessera/TESSERA-V-2.0-2B-N/ckpt/student_nano.pt")
    assert calls == [
        {
            "repo_id": "geotessera/TESSERA-V-2.0-2B-N",
            "filename": "ckpt/student_nano.pt",
            "revision": None,
        }
    ]
    assert model.source == "hf://geotessera/TESSERA-V-2.0-2B-N/ckpt/student_nano.pt"
    assert model.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()

    load_model(f"hf://geotessera/TESSERA-V-2.0-2B-N@{commit}/ckpt/student_nano.pt")
    assert calls[-1]["revision"] == commit


def test_fsspec_source_is_cached(tmp_path):
    import fsspec

    path = write_checkpoint(random_model(tiny("v1.1")), tmp_path / "m.pt")
    fs = fsspec.filesystem("memory")
    fs.pipe("/tessera-test/v11.pt", path.read_bytes())
    try:
        url = "memory://tessera-test/v11.pt"
        model = load_model(url, cache_dir=tmp_path / "cache", norm="mpc")
        assert model.source == url
        assert model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        cached = list((tmp_path / "cache").rglob("v11.pt"))
        assert len(cached) == 1
        fs.rm("/tessera-test/v11.pt")  # second load is served from the cache
        assert load_model(url, cache_dir=tmp_path / "cache").sha256 == model.sha256
    finally:
        if fs.exists("/tessera-test"):
            fs.rm("/tessera-test", recursive=True)


def test_missing_local_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="hf://owner/repo"):
        load_model("hf://only-owner/file.pt")
