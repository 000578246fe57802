"""Catalog settings: which catalog (preset, kind, URL, collections) a run searches, and how it
reads the scenes (timeouts, retries, pacing, unreadable-scene policy). They live with the catalog
package because a preset fills their defaults; :mod:`tessera_assets.config` composes them into
the pipeline settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tessera_assets.catalog.presets import PresetError, get_preset


class CatalogSettings(BaseModel):
    """Where scenes are searched and how their files are read.

    ``preset`` names a real catalog (:mod:`tessera_assets.catalog.presets`: ``earth-search``,
    ``planetary-computer``, ``cdse``, ``nasa-cmr-opera``, ``demo``); it supplies ``kind``,
    ``url`` and the collection of each sensor, and any of them given explicitly wins. A
    sensor whose collection is ``None`` has no scenes (e.g. Sentinel-1 on Earth Search).
    Without a preset the fields mean what they say (the demo archive by default).
    """

    model_config = ConfigDict(extra="forbid")
    preset: str | None = None
    kind: Literal["geoparquet", "stac-api"] = "geoparquet"
    url: str = "./data/demo/catalog"
    s2_collection: str | None = "sentinel-2-c1-l2a"
    s1_collection: str | None = "sentinel-1-rtc"
    landsat_collection: str | None = "landsat-c2-l2"
    max_s2_cloud_cover: float = Field(100.0, ge=0, le=100)
    on_unreadable: Literal["fail", "skip"] = Field(
        "fail", description="a scene whose asset cannot be read fails the partition, or is "
                            "skipped and recorded (by item id, asset and reason)")
    search_timeout_s: float = Field(30.0, gt=0, description="per HTTP request of a search")
    search_retries: int = Field(4, ge=0, description="retries of a whole search (429/5xx, "
                                                     "timeouts, cut-off bodies)")
    requests_per_second: float | None = Field(
        None, gt=0, description="pace of catalog requests; None = the preset's hint")
    read_retries: int = Field(5, ge=0, description="GDAL_HTTP_MAX_RETRY for COG reads")
    read_retry_delay_s: float = Field(1.0, gt=0, description="GDAL_HTTP_RETRY_DELAY (doubles)")
    read_timeout_s: int = Field(60, gt=0, description="GDAL_HTTP_TIMEOUT per HTTP request")
    day_retries: int = Field(2, ge=0, description="retries of a whole day's load after "
                                                  "transient read errors")
    check_assets: bool = Field(True, description="open every asset's header before a cube is "
                                                 "built, so unreadable scenes are known "
                                                 "before anything is written")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("preset"):
            return data
        try:
            preset = get_preset(str(data["preset"]))
        except PresetError as err:
            raise ValueError(str(err)) from None
        out = dict(data)
        out.setdefault("kind", preset.kind)
        out.setdefault("url", preset.url)
        for sensor in ("s2", "s1", "landsat"):
            out.setdefault(f"{sensor}_collection", preset.collections.get(sensor))
        return out

    def collections(self) -> dict[str, str]:
        """Collection id per sensor (``s2``, ``s1``, ``landsat``), sensors without one left out."""
        found = {"s2": self.s2_collection, "s1": self.s1_collection,
                 "landsat": self.landsat_collection}
        return {sensor: coll for sensor, coll in found.items() if coll}
