"""The AOI request inbox cannot be jammed or flooded (issue 13, item 5): every hostile file goes
to ``rejected/`` with its reason, in one pass, and the valid request behind it is accepted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tessera_assets.config import PipelineSettings
from tessera_assets.ops import aoi_requests
from tessera_assets.ops.aoi_registry import AoiRegistry
from tessera_assets.ops.aoi_requests import AoiRequestInbox, process_requests, requests_url

WEST = [0.10, 52.20, 0.12, 52.22]


def _feature(years: object = "2024", **props: object) -> dict:
    w, s, e, n = WEST
    return {
        "type": "Feature",
        "properties": {"years": years, **props},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
        },
    }


HOSTILE: dict[str, tuple[bytes, str]] = {
    "a-latin1.geojson": (
        json.dumps(_feature(name="caf\u00e9"), ensure_ascii=False).encode("latin-1"),
        "not UTF-8 text",
    ),
    "b-deep.geojson": (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
    "c-deep-valid-start.geojson": (
        b'{"type": "Feature", "properties": {"years": "2024"}, "geometry": '
        + b'{"a": ' * 50
        + b"1"
        + b"}" * 50
        + b"}",
        "nested deeper than 32 levels",
    ),
    "d-props-string.geojson": (
        json.dumps({**_feature(), "properties": "abc"}).encode(),
        "properties must be a JSON object, got str 'abc'",
    ),
    "e-huge-range.geojson": (
        json.dumps(_feature(years="1-2000000000")).encode(),
        "goes outside the configured years 2023-2024",
    ),
    "f-years-object.geojson": (
        json.dumps(_feature(years={"from": 2024})).encode(),
        "properties.years must be a string",
    ),
    "g-long-year-list.geojson": (
        json.dumps(_feature(years=[2024] * 5000)).encode(),
        "at most 200 years",
    ),
    "h-features-string.geojson": (
        json.dumps({"type": "FeatureCollection", "features": "abc"}).encode(),
        "has no features",
    ),
    "i-geometry-garbage.geojson": (
        json.dumps({**_feature(), "geometry": {"type": "Polygon", "coordinates": "x"}}).encode(),
        "",
    ),
    "j-feature-props-list.geojson": (
        json.dumps({"type": "FeatureCollection", "features": [{"properties": [1]}]}).encode(),
        "features[0].properties must be a JSON object",
    ),
}


@pytest.fixture()
def settings(tmp_path: Path) -> PipelineSettings:
    return PipelineSettings(root=str(tmp_path / "data"), tile_size=320, years=[2023, 2024])


def test_hostile_files_are_rejected_and_the_valid_one_accepted(settings: PipelineSettings) -> None:
    inbox_dir = Path(requests_url(settings))
    inbox_dir.mkdir(parents=True)
    for name, (data, _) in HOSTILE.items():
        (inbox_dir / name).write_bytes(data)
    (inbox_dir / "z-valid.geojson").write_text(json.dumps(_feature(name="valid")))
    registry = AoiRegistry(settings.root)

    t0 = time.perf_counter()
    outcomes = {
        o.file: o for o in process_requests(AoiRequestInbox(str(inbox_dir)), registry, settings)
    }
    seconds = time.perf_counter() - t0

    assert outcomes["z-valid.geojson"].status == "accepted"
    assert registry.get("valid").years == [2024]
    for name, (_, reason) in HOSTILE.items():
        o = outcomes[name]
        assert o.status == "rejected", name
        assert reason in o.reason, (name, o.reason)
        assert "\n" not in o.reason
        stem = name.rsplit(".", 1)[0]
        assert (inbox_dir / "rejected" / name).exists()
        error = (inbox_dir / "rejected" / f"{stem}.error.txt").read_text()
        assert f"Reason: {o.reason}" in error
    assert sorted(p.name for p in inbox_dir.iterdir() if p.is_file()) == []
    assert seconds < 10, seconds


def test_oversize_file_is_rejected_unread(
    settings: PipelineSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aoi_requests, "MAX_REQUEST_BYTES", 1000)
    inbox_dir = Path(requests_url(settings))
    inbox_dir.mkdir(parents=True)
    big = _feature(name="big", padding="x" * 5000)
    (inbox_dir / "big.geojson").write_text(json.dumps(big))
    [o] = process_requests(AoiRequestInbox(str(inbox_dir)), AoiRegistry(settings.root), settings)
    assert o.status == "rejected" and "requests are limited to 1000 bytes" in o.reason


def test_a_store_error_leaves_the_file_for_the_next_pass(
    settings: PipelineSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox_dir = Path(requests_url(settings))
    inbox_dir.mkdir(parents=True)
    (inbox_dir / "a.geojson").write_text(json.dumps(_feature(name="a")))
    (inbox_dir / "b.geojson").write_text(json.dumps(_feature(name="b")))
    inbox = AoiRequestInbox(str(inbox_dir))
    real_read = inbox.read

    def flaky(name: str) -> str:
        if name == "a.geojson":
            raise ConnectionError("store unreachable")
        return real_read(name)

    monkeypatch.setattr(inbox, "read", flaky)
    outcomes = process_requests(inbox, AoiRegistry(settings.root), settings)
    assert [(o.file, o.status) for o in outcomes] == [("b.geojson", "accepted")]
    assert (inbox_dir / "a.geojson").exists()  # retried on the next tick
