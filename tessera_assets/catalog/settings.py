"""Catalog settings: which catalog (preset, kind, URL, collections) a run searches, and how it
reads the scenes (timeouts, retries, pacing, unreadable-scene policy). They live with the catalog
package because a preset fills their defaults; :mod:`tessera_assets.config` composes them into
the pipeline settings.

Each sensor may name its own catalog (``s2``, ``s1``, ``landsat``: :class:`SensorCatalog`),
since production takes Sentinel-2 and Sentinel-1 from different archives; a sensor without one
uses the top-level catalog, so single-catalog settings mean what they always did.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tessera_assets.catalog.presets import (
    RECIPES,
    Auth,
    CatalogPreset,
    PresetError,
    get_preset,
    preset_for_url,
)
from tessera_assets.sources.bands import SENSORS, Sensor

CatalogKind = Literal["geoparquet", "stac-api"]


class SensorCatalog(BaseModel):
    """One sensor's own catalog. Unset fields come from its ``preset``; without a preset,
    from the top-level catalog settings (so ``{"url": mirror}`` alone points the sensor at a
    mirror of the top-level catalog)."""

    model_config = ConfigDict(extra="forbid")
    preset: str | None = None
    kind: CatalogKind | None = None
    url: str | None = None
    collection: str | None = None
    auth: Auth | None = Field(
        None, description="how searches and reads authenticate; None = the preset's, 'none' "
                          "for a mirror that needs no credentials")
    credentials_env: dict[str, str] = Field(
        default_factory=dict, description="the preset's credential variable -> the variable "
                                          "that holds it (e.g. EARTHDATA_TOKEN -> OPERA_TOKEN)")


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
    kind: CatalogKind = "geoparquet"
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
    auth: Auth | None = Field(None, description="None = the preset's; 'none' for a mirror")
    credentials_env: dict[str, str] = Field(default_factory=dict)
    s2: SensorCatalog | None = None
    s1: SensorCatalog | None = None
    landsat: SensorCatalog | None = None

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("preset"):
            return data
        name = str(data["preset"])
        if name in RECIPES:
            return _apply_recipe(data, name)
        try:
            preset = get_preset(name)
        except PresetError as err:
            raise ValueError(str(err)) from None
        out = dict(data)
        out.setdefault("kind", preset.kind)
        out.setdefault("url", preset.url)
        for sensor in SENSORS:
            out.setdefault(f"{sensor}_collection", preset.collections.get(sensor))
        return out

    @model_validator(mode="after")
    def _known_sensor_presets(self) -> CatalogSettings:
        for sensor in SENSORS:
            own = getattr(self, sensor)
            if own is not None and own.preset:
                try:
                    get_preset(own.preset)
                except PresetError as err:
                    raise ValueError(f"{sensor}: {err}") from None
        return self

    def for_sensor(self, sensor: Sensor) -> CatalogSettings:
        """The single catalog one sensor uses, as flat settings (reads, timeouts and retries
        shared): its own catalog where it names one, else these settings."""
        own: SensorCatalog | None = getattr(self, sensor)
        if own is None:
            return self
        preset = get_preset(own.preset) if own.preset else None
        if own.collection:
            collection = own.collection
        elif preset is not None:
            collection = preset.collections.get(sensor)
        else:
            collection = getattr(self, f"{sensor}_collection")
        update: dict[str, Any] = {
            "preset": own.preset if preset else self.preset,
            "kind": own.kind or (preset.kind if preset else self.kind),
            "url": own.url or (preset.url if preset else self.url),
            "auth": own.auth if (own.auth or preset) else self.auth,
            "credentials_env": own.credentials_env or ({} if preset else self.credentials_env),
            "s2": None, "s1": None, "landsat": None,
        }
        if preset is None and self.preset in RECIPES:
            update["preset"] = None  # a recipe is no preset of its own
        update.update({f"{s}_collection": (collection if s == sensor else None)
                       for s in SENSORS})
        return self.model_copy(update=update)

    def collections(self) -> dict[str, str]:
        """Collection id per sensor (``s2``, ``s1``, ``landsat``), sensors without one left out
        (each from the sensor's own catalog where it names one)."""
        found = {s: getattr(self.for_sensor(s), f"{s}_collection") for s in SENSORS}
        return {sensor: coll for sensor, coll in found.items() if coll}

    def resolved_preset(self) -> CatalogPreset | None:
        """The preset these (flat) settings search and read with, pointed at ``url`` and with
        ``auth`` applied: a mirror of a preset keeps its collections and read options."""
        preset = (get_preset(self.preset) if self.preset and self.preset not in RECIPES
                  else preset_for_url(self.url) if self.kind == "stac-api" else None)
        if preset is None:
            return None
        return replace(preset, url=self.url, auth=self.auth or preset.auth)

    def source(self) -> str:
        """Which catalog this is, as the scene manifest records it per item: the preset and
        URL (``nasa-cmr-opera@https://...``), or the URL alone."""
        name = self.preset if self.preset and self.preset not in RECIPES else None
        return f"{name}@{self.url}" if name else self.url

    def sources(self) -> dict[str, str]:
        """Collection id → :meth:`source` of the catalog that serves it."""
        return {coll: self.for_sensor(s).source() for s, coll in self.collections().items()}

    def credentials_environ(self, environ: Mapping[str, str] | None = None
                            ) -> Mapping[str, str]:
        """``environ`` (default the process environment) with each credential variable the
        preset reads taken from the variable ``credentials_env`` names for it."""
        env = os.environ if environ is None else environ
        if not self.credentials_env:
            return env
        out = dict(env)
        for wanted, holder in self.credentials_env.items():
            if holder in env:
                out[wanted] = env[holder]
            else:
                out.pop(wanted, None)
        return out


def _apply_recipe(data: dict[str, Any], name: str) -> dict[str, Any]:
    """A recipe's presets as sensor catalogs (explicit sensor settings win, field by field);
    the top level takes the first sensor's catalog and sensors outside it have no scenes."""
    recipe = RECIPES[name]
    out = dict(data)
    first = get_preset(next(iter(recipe.sensors.values())))
    out.setdefault("kind", first.kind)
    out.setdefault("url", first.url)
    for sensor in SENSORS:
        given = out.get(sensor)
        given = given.model_dump(exclude_unset=True) if isinstance(given, BaseModel) else given
        if sensor in recipe.sensors:
            out[sensor] = {"preset": recipe.sensors[sensor], **(given or {})}
        out.setdefault(f"{sensor}_collection", None)
    return out
