"""What the read API answers, over the committed regions of the stores (no HTTP here).

Only committed partitions (a lineage record exists) are served, so a half-written region is
never visible. Points and areas read the 10 m ``embeddings`` store; map tiles read the pyramid
level nearest the tile's ground resolution (the fine store past the finest level), coloured by
one PCA basis per year so adjacent tiles match.
"""

from __future__ import annotations

import math
import re
from functools import cached_property
from typing import Any

import numpy as np
import xarray as xr
import zarr
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from pyproj import Transformer

from tessera_assets.config import PipelineSettings
from tessera_assets.grid import PIXEL_SIZE, ZONE_ORIGIN_X, ZONE_ORIGIN_Y, Tile, zone_epsg
from tessera_assets.grid import zone_for_lon as grid_zone_for_lon
from tessera_assets.products import attributes as attr
from tessera_assets.products.embeddings import EmbeddingsStore, dequantise
from tessera_assets.products.registry import open_pyramid, open_store
from tessera_assets.store.schema import zone_group_name

LINEAGE_KEY = re.compile(r"_lineage/utm(\d\d)/([^/]+)/(\d{4})\.json$")
WEB_MERCATOR_HALF = 20037508.342789244
TILE_PX = 256


class BadRequest(ValueError):
    """Coordinates, bbox or tile address that cannot be answered (HTTP 400)."""


class NotComputed(LookupError):
    """The year or place has no committed embeddings (HTTP 404)."""


class TooLarge(ValueError):
    """An area beyond the configured limit (HTTP 413)."""


def _check_lonlat(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)) or not -180 <= lon <= 180:
        raise BadRequest(f"longitude {lon} is not in -180..180")
    if not -80 <= lat <= 84:
        raise BadRequest(f"latitude {lat} is outside the UTM grid (-80..84)")


def zone_pixel(zone: int, x: Any, y: Any, res: float) -> tuple[Any, Any]:
    """(row, col) of zone-CRS coordinates on the zone grid at ``res`` (floor: pixel index)."""
    return np.floor((ZONE_ORIGIN_Y - y) / res), np.floor((x - ZONE_ORIGIN_X) / res)


class EmbeddingReader:
    """Answers for one data root (pipeline settings) and the API's limits."""

    def __init__(
        self, settings: PipelineSettings, *, max_region_pixels: int, pca_sample: int = 20_000
    ) -> None:
        self.settings = settings
        self.max_region_pixels = max_region_pixels
        self.pca_sample = pca_sample
        self._basis: dict[int, tuple[np.ndarray, ...]] = {}

    @cached_property
    def fine(self) -> EmbeddingsStore:
        return open_store("embeddings", self.settings)  # type: ignore[return-value]

    @cached_property
    def levels(self) -> list[EmbeddingsStore]:
        return open_pyramid(self.settings)

    # ------------------------------------------------------------------ what is computed
    def committed(self, store: EmbeddingsStore | None = None) -> list[tuple[Tile, int]]:
        """Every committed (tile, year) of a store (default: the fine one)."""
        out = []
        for key in (store or self.fine).io.list_keys("_lineage"):
            m = LINEAGE_KEY.search(key)
            if m:
                out.append((Tile.parse(m.group(2)), int(m.group(3))))
        return sorted(out, key=lambda p: (p[1], p[0].id))

    def coverage(self) -> dict[str, Any]:
        parts = self.committed()
        return {
            "years": sorted({y for _, y in parts}),
            "partitions": [
                {"tile": t.id, "year": y, "bbox": list(t.bbox_lonlat())} for t, y in parts
            ],
        }

    def _require_year(self, year: int) -> None:
        if year not in self.settings.years:
            raise NotComputed(f"year {year} is not on this store's axis {self.settings.years}")

    # ------------------------------------------------------------------ points
    def locate(self, lon: float, lat: float) -> tuple[Tile, int, int]:
        """The tile and the pixel (row, col within the tile) holding a lon/lat."""
        _check_lonlat(lon, lat)
        zone = grid_zone_for_lon(lon)
        x, y = Transformer.from_crs(4326, zone_epsg(zone), always_xy=True).transform(lon, lat)
        row, col = (int(v) for v in zone_pixel(zone, x, y, PIXEL_SIZE))
        size = self.settings.tile_size
        tile = Tile(zone=zone, col=col // size, row=row // size, size=size)
        return tile, row % size, col % size

    def point(self, lon: float, lat: float, year: int) -> dict[str, Any]:
        """The 128-d vector at a point and where it came from."""
        self._require_year(year)
        tile, r, c = self.locate(lon, lat)
        record = self.fine.read_lineage(tile, year)
        if record is None:
            years = [y for t, y in self.committed() if t == tile]
            raise NotComputed(
                f"no embeddings for tile {tile.id} in {year}; computed years there: {years}"
            )
        q = np.asarray(self.fine.tile_array(tile, year, "embeddings")[:, r, c])
        s = np.float32(self.fine.tile_array(tile, year, "scales")[r, c])
        vec = dequantise(q, np.asarray(s), axis=-1)
        embedded = bool(np.isfinite(s))
        root = self.fine.schema.attrs
        return {
            "lon": lon,
            "lat": lat,
            "year": year,
            "tile": tile.id,
            "row": r,
            "col": c,
            "status": "embedded" if embedded else "not_embedded",
            "embedding": [float(v) for v in vec] if embedded else None,
            "int8": [int(v) for v in q] if embedded else None,
            "scale": float(s) if embedded else None,
            "provenance": {
                "model": root.get(attr.GEOEMB_MODEL),
                "model_family": root.get(attr.MODEL_FAMILY),
                "model_sha256": record.model_sha256 or root.get(attr.MODEL_SHA256),
                "demo_weights": bool(root.get(attr.DEMO_WEIGHTS)),
                "manifest_digest": record.manifest_digest,
                "code_version": record.code_version,
                "config_digest": record.config_digest,
                "written_at": record.written_at,
                "provisional": (record.model_extra or {}).get("provisional"),
                "store": self.fine.url,
            },
        }

    # ------------------------------------------------------------------ areas
    def region(self, bbox: tuple[float, float, float, float], year: int) -> xr.Dataset:
        """int8 embeddings + scales of a lon/lat bbox on the 10 m zone grid (one UTM zone)."""
        self._require_year(year)
        w, s, e, n = bbox
        _check_lonlat(w, s)
        _check_lonlat(e, n)
        if not (w < e and s < n):
            raise BadRequest(f"bbox {list(bbox)} must be west,south,east,north with w<e, s<n")
        zone = grid_zone_for_lon((w + e) / 2)
        if grid_zone_for_lon(w) != zone or grid_zone_for_lon(e) != zone:
            raise BadRequest("bbox spans UTM zones; ask for one zone at a time")
        to_zone = Transformer.from_crs(4326, zone_epsg(zone), always_xy=True)
        xs, ys = to_zone.transform([w, e, w, e], [s, s, n, n])
        r0 = int(zone_pixel(zone, 0.0, max(ys), PIXEL_SIZE)[0])
        r1 = int(zone_pixel(zone, 0.0, min(ys), PIXEL_SIZE)[0]) + 1
        c0 = int(zone_pixel(zone, min(xs), 0.0, PIXEL_SIZE)[1])
        c1 = int(zone_pixel(zone, max(xs), 0.0, PIXEL_SIZE)[1]) + 1
        h, wd = r1 - r0, c1 - c0
        if h * wd > self.max_region_pixels:
            raise TooLarge(
                f"{h}x{wd} = {h * wd} pixels exceeds the limit of "
                f"{self.max_region_pixels} (TESSERA_API_MAX_REGION_PIXELS)"
            )
        size = self.settings.tile_size
        emb = np.zeros((128, h, wd), np.int8)
        sc = np.full((h, wd), np.inf, np.float32)
        found = 0
        for tr in range(r0 // size, (r1 - 1) // size + 1):
            for tc in range(c0 // size, (c1 - 1) // size + 1):
                tile = Tile(zone=zone, col=tc, row=tr, size=size)
                if self.fine.read_lineage(tile, year) is None:
                    continue
                found += 1
                a0, a1 = max(r0, tr * size), min(r1, (tr + 1) * size)
                b0, b1 = max(c0, tc * size), min(c1, (tc + 1) * size)
                ly, lx = (
                    slice(a0 - tr * size, a1 - tr * size),
                    slice(b0 - tc * size, b1 - tc * size),
                )
                emb[:, a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = self.fine.tile_array(
                    tile, year, "embeddings"
                )[:, ly, lx]
                sc[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = self.fine.tile_array(
                    tile, year, "scales"
                )[ly, lx]
        if not found:
            raise NotComputed(f"no committed embeddings intersect {list(bbox)} in {year}")
        affine = (
            PIXEL_SIZE,
            0.0,
            ZONE_ORIGIN_X + c0 * PIXEL_SIZE,
            0.0,
            -PIXEL_SIZE,
            ZONE_ORIGIN_Y - r0 * PIXEL_SIZE,
        )
        gbox = GeoBox((h, wd), Affine(*affine), f"EPSG:{zone_epsg(zone)}")
        ds = xr.Dataset(
            {"embeddings": (("band", "y", "x"), emb), "scales": (("y", "x"), sc)},
            coords={
                **xr_coords(gbox, crs_coord_name="spatial_ref"),
                "band": np.arange(128, dtype=np.int32),
            },
        )
        ds.attrs.update(
            {
                k: v
                for k, v in self.fine.schema.attrs.items()
                if isinstance(v, str | int | float | bool)
            }
        )
        ds.attrs.update(
            {
                "tessera:year": year,
                "tessera:bbox": list(bbox),
                "tessera:scale_semantics": "finite = embedded; NaN = not embedded; "
                "+inf = not computed",
            }
        )
        return ds

    # ------------------------------------------------------------------ map tiles
    def _level_for(self, z: int, lat: float) -> EmbeddingsStore:
        ground = 2 * WEB_MERCATOR_HALF / TILE_PX / 2**z * math.cos(math.radians(lat))
        best = self.fine
        for store in self.levels:
            if store.schema.resolution <= ground:
                best = store
        return best

    def basis(self, year: int) -> tuple[np.ndarray, ...]:
        """(mean, 3 components, low, high) fit on the coarsest level's committed pixels."""
        if year not in self._basis:
            store = self.levels[-1] if self.levels else self.fine
            rows = []
            for tile, y in self.committed(store):
                if y == year:
                    q = np.asarray(store.tile_array(tile, year, "embeddings")[:, :, :])
                    s = np.asarray(store.tile_array(tile, year, "scales")[:, :])
                    ok = np.isfinite(s)
                    rows.append((q[:, ok] * s[ok][None]).T)
            if not rows:
                raise NotComputed(f"no committed embeddings in {year}")
            x = np.concatenate(rows).astype(np.float64)
            rng = np.random.default_rng(0)
            if len(x) > self.pca_sample:
                x = x[rng.choice(len(x), self.pca_sample, replace=False)]
            mean = x.mean(axis=0)
            _, vecs = np.linalg.eigh((x - mean).T @ (x - mean))
            comps = vecs[:, ::-1][:, :3].T
            comps *= np.where(comps[np.arange(3), np.abs(comps).argmax(1)] < 0, -1, 1)[:, None]
            proj = (x - mean) @ comps.T
            lo, hi = np.percentile(proj, 2, axis=0), np.percentile(proj, 98, axis=0)
            self._basis[year] = (mean, comps, lo, hi)
        return self._basis[year]

    def tile_rgba(self, z: int, x: int, y: int, year: int) -> np.ndarray:
        """A 256 px web-mercator map tile in PCA false colour (transparent where no data)."""
        self._require_year(year)
        if not (0 <= z <= 22 and 0 <= x < 2**z and 0 <= y < 2**z):
            raise BadRequest(f"no tile {z}/{x}/{y}")
        span = 2 * WEB_MERCATOR_HALF / 2**z
        centres = (np.arange(TILE_PX) + 0.5) * span / TILE_PX
        mx, my = np.meshgrid(
            -WEB_MERCATOR_HALF + x * span + centres, WEB_MERCATOR_HALF - y * span - centres
        )
        lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(mx, my)
        out = np.zeros((TILE_PX, TILE_PX, 4), np.uint8)
        mean, comps, lo, hi = self.basis(year)
        store = self._level_for(z, float(np.clip(np.mean(lat), -80, 84)))
        res, yi = store.schema.resolution, store.schema.years.index(year)
        zones = sorted({t.zone for t, yy in self.committed(store) if yy == year})
        for zone in zones:
            inside = (lat >= -80) & (lat <= 84) & (np.vectorize(grid_zone_for_lon)(lon) == zone)
            if not inside.any():
                continue
            zx, zy = Transformer.from_crs(4326, zone_epsg(zone), always_xy=True).transform(
                lon[inside], lat[inside]
            )
            rows, cols = (v.astype(np.int64) for v in zone_pixel(zone, zx, zy, res))
            group = zarr.open_group(
                store.io.zarr_store(read_only=True),
                path=zone_group_name(zone),
                mode="r",
                use_consolidated=True,
            )
            r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            if r0 < 0 or c0 < 0 or (r1 - r0) * (c1 - c0) > 4 * TILE_PX * TILE_PX * 4:
                continue
            q = group["embeddings"][yi, :, r0:r1, c0:c1]
            s = group["scales"][yi, r0:r1, c0:c1]
            qs, ss = q[:, rows - r0, cols - c0], s[rows - r0, cols - c0]
            ok = np.isfinite(ss)
            vec = (qs[:, ok] * ss[ok][None]).T.astype(np.float64)
            rgb = np.clip(((vec - mean) @ comps.T - lo) / np.maximum(hi - lo, 1e-12), 0, 1)
            idx = np.flatnonzero(inside)[ok]
            flat = out.reshape(-1, 4)
            flat[idx, :3] = np.round(rgb * 255).astype(np.uint8)
            flat[idx, 3] = 255
        return out
