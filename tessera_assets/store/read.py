"""The read side of a zone store: committed records, tile windows, region status.

:class:`ZoneReader` holds everything a reader needs (the layout and object access) and never
writes; :class:`~tessera_assets.store.zone_store.ZoneStore` adds the write protocol on top. A
partition counts as present only once its lineage record (the commit marker) exists, so reads
refuse uncommitted partitions unless asked otherwise. Reads of a committed region first compare
its shards with the content hashes in the record (:mod:`.integrity`; once per shard and reader)
and refuse a region that does not match, so corrupt data never flows downstream.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from odc.geo.xr import xr_coords

from tessera_assets.grid import Tile
from tessera_assets.store.documents import NAMESPACE
from tessera_assets.store.errors import PartitionNotCommittedError, RegionIntegrityError
from tessera_assets.store.integrity import IntegrityReport, verify_shards
from tessera_assets.store.lineage import (
    LINEAGE_PREFIX,
    LineageRecord,
    RegionStatus,
    intent_key,
    lineage_key,
    merge_slices,
)
from tessera_assets.store.objects import ObjectIO
from tessera_assets.store.read_counter import ByteCounter, CountingStore
from tessera_assets.store.schema import (
    CRS_COORD,
    SLICED_DIMS,
    SPATIAL_DIMS,
    ProductSchema,
    zone_group_name,
)
from tessera_assets.store.write_plan import check_tile, shard_keys, year_index

TILE_ATTR = f"{NAMESPACE}tile"
YEAR_ATTR = f"{NAMESPACE}year"
"""Attributes naming the partition on a dataset returned by :meth:`ZoneReader.read_tile`."""


def store_url(root: str, product: str) -> str:
    """``{root}/{product}.zarr``: where a product's store lives under a data root."""
    return f"{str(root).rstrip('/')}/{product}.zarr"


class ZoneReader:
    """One product's zone-wide Zarr store under ``root`` (local path or fsspec URL), read-only.

    ``root`` is the data root (``./data``, ``s3://bucket/prefix``, ``memory://x``); the store
    lives at ``{root}/{product}.zarr``. ``storage_options`` go to fsspec/s3fs (endpoint_url,
    key, secret...). Instances are cheap and hold no open connections worth sharing.
    """

    def __init__(
        self,
        root: str,
        product: str,
        schema: ProductSchema,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if not product or "/" in product:
            raise ValueError(f"product must be a plain name, got {product!r}")
        self.root = str(root).rstrip("/")
        self.product = product
        self.schema = schema
        self.storage_options = dict(storage_options or {})
        self.io = ObjectIO(store_url(self.root, product), self.storage_options)
        self.url = self.io.url
        self._zarr_store = None
        self._groups: dict[int, zarr.Group] = {}
        self._docs: dict[int, dict[str, bytes]] = {}
        """Zone documents built so far (the writer's zone creation compares and writes them)."""
        self._ready: set[int] = set()
        """Zones known to exist with this layout."""
        self._verified: set[tuple[str, str]] = set()
        """(shard key, digest) pairs this reader has already checked."""
        self.read_counter = ByteCounter()
        """Bytes fetched by zarr reads of tile windows and zones (not by hash checks)."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.url!r}, tile_size={self.schema.tile_size}, "
            f"res={self.schema.resolution})"
        )

    def read_lineage(self, tile: Tile, year: int) -> LineageRecord | None:
        """The committed lineage record of a partition, or None if it is not committed."""
        doc = self.io.get_json(lineage_key(zone_group_name(tile.zone), tile.id, int(year)))
        return None if doc is None else LineageRecord.model_validate(doc)

    def read_tile(
        self,
        tile: Tile,
        year: int,
        variables: Sequence[str] | None = None,
        *,
        require_committed: bool = True,
        chunks: int | None = None,
        verify: bool = True,
    ) -> xr.Dataset:
        """Lazy (dask) dataset of one partition: the tile window, with x/y coords and CRS.

        ``ds.odc.geobox == tile.geobox_at(resolution)``. ``doy`` axes hold only the days
        recorded in the lineage record. Raises :class:`PartitionNotCommittedError` for a
        partition without a committed record unless ``require_committed=False`` (then all
        slices are returned, unwritten ones at the fill value). ``chunks`` sets the spatial
        dask chunk size (default: the largest divisor of the tile ≤ 512 px). With ``verify``
        (default) the variables' shards are checked against the record's content hashes first
        (:meth:`check_region`): one extra read of the region per reader.
        """
        check_tile(self.schema, tile)
        year_index(self.schema, year)
        record = self.read_lineage(tile, year)
        if record is None and require_committed:
            raise PartitionNotCommittedError(
                f"{self.product} {tile.id} {year} has no committed lineage record in {self.url}"
            )
        names = (
            list(variables) if variables is not None else [v.name for v in self.schema.variables]
        )
        if verify and record is not None:
            self._check_record(record, names)
        chunk_px = chunks or _read_chunk(self.schema.tile_px)
        token = record.written_at if record else uuid.uuid4().hex
        data_vars = {}
        for name in names:
            var = self.schema.variable(name)
            dims = var.dims[1:]
            view = self.tile_array(tile, year, name, verify=False)
            dchunks = tuple(
                1 if d in SLICED_DIMS else chunk_px if d in SPATIAL_DIMS else -1 for d in dims
            )
            arr = da.from_array(
                view,
                chunks=dchunks,
                name=f"{self.product}-{name}-{tile.id}-{year}-{token}",
                asarray=True,
                fancy=False,
            )
            data_vars[name] = xr.DataArray(arr, dims=dims, attrs=dict(var.attrs))
        geo = xr_coords(tile.geobox_at(self.schema.resolution), crs_coord_name=CRS_COORD)
        coords: dict[str, Any] = {**geo, self.schema.year_dim: int(year)}
        for dim, values in self.schema.coords.items():
            coords[dim] = (dim, np.asarray(values))
        used = {d for v in data_vars.values() for d in v.dims}
        ds = xr.Dataset(
            data_vars,
            coords={
                k: v
                for k, v in coords.items()
                if k in used or k in geo or k == self.schema.year_dim
            },
        )
        if record is not None:
            for dim, values in record.slices.items():
                if dim in ds.dims:
                    ds = ds.sel({dim: values})
        ds.attrs.update(self.schema.attrs)
        ds.attrs.update({TILE_ATTR: tile.id, YEAR_ATTR: int(year)})
        return ds

    def tile_array(
        self, tile: Tile, year: int, variable: str, *, verify: bool = True
    ) -> TileWindow:
        """A non-dask, sliceable view of one variable's tile window for ``year``.

        Dims are the variable's minus the year (e.g. band, y, x); every ``view[...]`` reads
        only the inner chunks it touches. Use it to stream a tile in strips (as coarsening
        does) where slicing a dask array would re-read whole dask chunks per strip. With
        ``verify`` (default) a committed region's shards of the variable are first checked
        against their recorded content hashes (:class:`RegionIntegrityError` on a mismatch).
        """
        check_tile(self.schema, tile)
        year_idx = year_index(self.schema, year)
        var = self.schema.variable(variable)
        if verify:
            record = self.read_lineage(tile, year)
            if record is not None:
                self._check_record(record, [variable])
        gname = zone_group_name(tile.zone)
        if tile.zone not in self._groups:
            try:
                self._groups[tile.zone] = zarr.open_group(
                    CountingStore(self._store(), self.read_counter),
                    path=gname,
                    mode="r",
                    use_consolidated=True,
                )
            except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
                raise PartitionNotCommittedError(
                    f"zone {gname} does not exist in {self.url}"
                ) from exc
        dims = var.dims[1:]
        ys, xs = tile.pixel_window(self.schema.resolution)
        px = self.schema.tile_px
        offsets = (0,) * (len(dims) - 2) + (ys.start, xs.start)
        shape = (*[self.schema.dim_size(d) for d in dims[:-2]], px, px)
        return TileWindow(self._groups[tile.zone][variable], year_idx, offsets, shape)

    def verify_region(
        self, tile: Tile, year: int, variables: Sequence[str] | None = None
    ) -> IntegrityReport:
        """Read every shard the committed record lists and compare it with its content hash
        (missing, 0-byte and mismatching shards are problems; shards of records without
        hashes are reported ``unverified``). Raises :class:`PartitionNotCommittedError`."""
        record = self.read_lineage(tile, year)
        if record is None:
            raise PartitionNotCommittedError(f"{self.product} {tile.id} {year} is not committed")
        return self._verify(record, variables)

    def region_bytes(
        self, tile: Tile, year: int, variables: Sequence[str] | None = None
    ) -> int:
        """Stored bytes of the committed region's shards (of ``variables``, default all): the
        yardstick for how much a reader of the region fetched. 0 if not committed."""
        record = self.read_lineage(tile, year)
        if record is None:
            return 0
        names = variables if variables is not None else list(record.variables)
        keys = [k for n in names if n in record.variables for k in record.variables[n].shards]
        return sum(self.io.size_many(keys).values())

    def check_region(self, tile: Tile, year: int, variables: Sequence[str] | None = None) -> None:
        """:meth:`verify_region`, raising :class:`RegionIntegrityError` on any problem."""
        record = self.read_lineage(tile, year)
        if record is None:
            raise PartitionNotCommittedError(f"{self.product} {tile.id} {year} is not committed")
        self._check_record(record, variables)

    def _verify(self, record: LineageRecord, variables: Sequence[str] | None) -> IntegrityReport:
        names = variables if variables is not None else list(record.variables)
        wanted: dict[str, str | None] = {}
        for name in names:
            region = record.variables.get(name)
            for key in region.shards if region else []:
                wanted[key] = region.digests.get(key) if region else None
        return verify_shards(self.io, wanted)

    def _check_record(self, record: LineageRecord, variables: Sequence[str] | None) -> None:
        names = variables if variables is not None else list(record.variables)
        todo = [
            n
            for n in names
            if n in record.variables
            and any(
                (k, record.variables[n].digests.get(k, "")) not in self._verified
                for k in record.variables[n].shards
            )
        ]
        if not todo:
            return
        report = self._verify(record, todo)
        if not report.ok:
            raise RegionIntegrityError(
                f"{self.product} {record.tile} {record.year} in {self.url}: "
                f"{report.describe()}. The region does not match its lineage record: "
                "re-materialize the partition."
            )
        for n in todo:
            region = record.variables[n]
            self._verified.update((k, region.digests.get(k, "")) for k in region.shards)

    def region_status(self, tile: Tile, year: int, *, verify: bool = False) -> RegionStatus:
        """Which shards of the partition exist, and whether it is committed; with ``verify``,
        also whether the committed shards match their content hashes (reads the region)."""
        check_tile(self.schema, tile)
        gname = zone_group_name(tile.zone)
        record = self.read_lineage(tile, year)
        intent = self.io.get_json(intent_key(gname, tile.id, year))
        slices = record.slices if record else merge_slices((intent or {}).get("slices"))
        expected = shard_keys(self.schema, tile, year, slices)
        checked: dict[str, Any] = {}
        if verify and record is not None:
            report = self._verify(record, None)
            exists = {k: k not in report.missing for keys in expected.values() for k in keys}
            corrupt = {k: why for k, why in report.problems.items() if k not in report.missing}
            checked = {"verified": True, "corrupt": corrupt, "unverified": report.unverified}
        else:
            exists = self.io.exists_many(k for keys in expected.values() for k in keys)
        return RegionStatus(
            tile=tile.id,
            year=int(year),
            committed=record is not None,
            in_progress=intent is not None,
            expected=expected,
            present={v: [k for k in keys if exists[k]] for v, keys in expected.items()},
            record=record,
            **checked,
        )

    def list_partitions(
        self, zone: int | None = None, *, in_progress: bool = False
    ) -> list[tuple[str, int]]:
        """Committed (tile id, year) partitions, from the lineage records; with
        ``in_progress``, those with a write started and not finished (an intent record) —
        after a crash, until a re-run finishes."""
        prefix = f"{LINEAGE_PREFIX}/{zone_group_name(zone)}" if zone else LINEAGE_PREFIX
        suffix = ".intent.json" if in_progress else ".json"
        out = []
        for key in self.io.list_keys(prefix):
            parts = key.split("/")
            name = parts[-1]
            if len(parts) != 4 or not name.endswith(suffix):
                continue
            if in_progress or not name.endswith(".intent.json"):
                out.append((parts[2], int(name.removesuffix(suffix))))
        return sorted(out)

    def open_zone(self, zone: int, chunks: dict[str, int] | None = None) -> xr.Dataset:
        """The whole zone group as xarray sees it (consolidated metadata).

        Without ``chunks`` the arrays are lazily indexed, not dask: a zone holds billions of
        inner chunks, so a dask graph at the stored chunking would not fit in memory. Pass
        tile-multiple chunks (e.g. ``{"y": 4096, "x": 4096}``) for dask.
        """
        return xr.open_zarr(
            CountingStore(self._store(read_only=True), self.read_counter),
            group=zone_group_name(zone),
            consolidated=True,
            zarr_format=3,
            chunks=chunks,
        )

    def _store(self, read_only: bool = False):
        if read_only:
            return self.io.zarr_store(read_only=True)
        if self._zarr_store is None:
            self._zarr_store = self.io.zarr_store()
        return self._zarr_store


class TileWindow:
    """One variable's tile window in a zone-wide zarr array, at one year index.

    Numpy-like enough for ``da.from_array`` and for strip-wise readers: ``shape``/``dtype``/
    ``ndim`` and ``view[...]`` with ints and unit-step slices, each read touching only the zarr
    inner chunks it needs.
    """

    def __init__(
        self, array: zarr.Array, year_idx: int, offsets: tuple[int, ...], shape: tuple[int, ...]
    ) -> None:
        self.array = array
        self.year_idx = year_idx
        self.offsets = offsets
        self.shape = shape
        self.dtype = array.dtype
        self.ndim = len(shape)

    def __getitem__(self, key: tuple[slice | int, ...]) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        sel: list[int | slice] = [self.year_idx]
        for k, off, n in zip(key, self.offsets, self.shape, strict=True):
            if isinstance(k, slice):
                lo, hi, step = k.indices(n)
                if step != 1:
                    raise IndexError("strided reads are not supported")
                sel.append(slice(off + lo, off + hi))
            else:
                sel.append(off + int(k))
        return np.asarray(self.array[tuple(sel)])


def _read_chunk(tile_px: int) -> int:
    """Default spatial dask chunk: the largest divisor of the tile ≤ 512 px (≤ 32 MB of
    128-band int8), so a row of chunks stays small enough to stream."""
    for n in range(min(tile_px, 512), 0, -1):
        if tile_px % n == 0:
            return n
    return tile_px
