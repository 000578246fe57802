"""Released-size checkpoints (seeded random weights) in the official formats: every family is
detected, has the published parameter count, loads and embeds a few pixels."""

from __future__ import annotations

import numpy as np
import pytest

from tessera_assets.model import RELEASED, load_model, random_model, write_checkpoint
from tessera_assets.model.checkpoint import read_container
from tessera_assets_tests.model.helpers import random_series

# encoder parameter counts from the reference (§1.3-§1.5); tensor counts published for v2, and
# for v1.x derived from the golden layouts (2-layer v1.1 = 88 tensors, +12 per extra layer)
PARAMS = {
    "v1.0": (45_828_226, 132),
    "v1.1": (57_708_738, 136),
    "v2-nano": (1_066_402, 66),
    "v2-small": (7_112_322, 114),
    "v2-medium": (21_031_506, 114),
    "v2-large": (43_831_170, 114),
}


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("full-size")


@pytest.mark.parametrize("family", list(PARAMS))
def test_released_size_checkpoint_loads_and_embeds(family, checkpoint_dir):
    model = random_model(family, seed=1, norm="aws" if family == "v1.1" else None)
    n_params, n_tensors = PARAMS[family]
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert len(model.state_dict()) == n_tensors
    path = write_checkpoint(model, checkpoint_dir / f"{family}.pt")
    del model
    container = read_container(path)
    assert set(container) == {
        "v1.0": {"model_state_dict"},
        "v1.1": {"model_state_dict", "config"},
    }.get(family, {"model", "args"})
    del container

    loaded = load_model(path)
    assert loaded.family == family
    assert loaded.norm == {"v1.0": "v1.0", "v1.1": "v1.1-aws"}.get(family, "v2")
    assert loaded.config == RELEASED[family]
    assert loaded.embedding_dim == 128 and not loaded.is_demo
    series = random_series(4, seed=2, t2=12, ta=6, td=6)
    codes, scales = embed_and_check(loaded, series)
    assert codes.shape == (4, 128)
    path.unlink()


def embed_and_check(model, series):
    from tessera_assets.model import embed_representation

    codes, scales, rep = embed_representation(model, series, seed=0)
    ok = ~np.isnan(scales)
    assert ok[2:].all() and not ok[0]
    assert np.isfinite(rep[ok]).all()
    assert rep.shape[1] == model.representation_dim
    if model.kind == "v2":
        np.testing.assert_allclose(rep[ok].mean(axis=1), 0, atol=1e-5)
        np.testing.assert_allclose(rep[ok].std(axis=1), 1, atol=1e-3)
    return codes, scales
