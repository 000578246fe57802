"""Zone-wide Zarr v3 stores written region by region, one tile × year partition at a time (DESIGN §4).

Layout: ``{root}/{product}.zarr`` holds one group per UTM zone (``utm{NN}``, northern CRS
EPSG:326NN) whose arrays span the whole zone at the product's resolution; only written shards
exist. A shard is exactly one tile × one year (× one day for ``doy`` arrays), so a partition
owns whole objects: parallel writers never touch the same object and a re-run overwrites
exactly its own region. Metadata is created once per zone, consolidated, and never rewritten by
region writes.

Write protocol of :meth:`ZoneStore.write_tile` (crash-safe, idempotent, staged):

1. validate every variable against the tile window — nothing is written on a mismatch;
2. create the zone if needed (race-safe: deterministic bytes, see :mod:`.documents`);
3. write an *intent* record listing every slice that may hold data afterwards, this writer's
   token and its staging prefix;
4. write the shards to the staging prefix (:mod:`.staging`), one tile-sized piece at a time
   (dask inputs are computed piece by piece), hashing the bytes as they go — the committed
   region is untouched, so a failure here keeps it committed;
5. stop if another writer's intent replaced ours; else delete the commit record, shards of
   slices the new data no longer has, move the staged shards onto the real keys;
6. write the lineage record (the commit marker, with every shard's hash), then drop the intent.

Reads live in :mod:`.read` (:class:`ZoneReader`, which this class extends).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import zarr

from tessera_assets.grid import Tile
from tessera_assets.store.documents import (
    LAYOUT_ATTR,
    build_zone_documents,
    describe_layout,
    root_entries,
    structural_view,
)
from tessera_assets.store.errors import ConcurrentWriteError, StoreError, StoreLayoutError
from tessera_assets.store.lineage import (
    Lineage,
    LineageRecord,
    VariableRegion,
    WriteIntent,
    intent_key,
    lineage_key,
    merge_slices,
    utc_now,
)
from tessera_assets.store.read import ZoneReader
from tessera_assets.store.schema import SLICED_DIMS, zone_group_name
from tessera_assets.store.staging import StagingStore, staging_prefix
from tessera_assets.store.write_plan import (
    PartitionData,
    PartitionDataError,
    PartitionPlan,
    check_tile,
    plan_partition,
    shard_keys,
    year_index,
)


class ZoneStore(ZoneReader):
    """A product's zone store that also writes: zone creation, partition writes, deletion.

    See :class:`~tessera_assets.store.read.ZoneReader` for ``root``/``product``/
    ``storage_options``; reads are inherited from it.
    """

    # ------------------------------------------------------------------------------------------
    # zone creation
    # ------------------------------------------------------------------------------------------
    def ensure_zone(self, zone: int) -> None:
        """Create the zone group (arrays, coordinates, attrs, consolidated metadata) if absent.

        Race-safe without locks: the documents are deterministic, so concurrent creators write
        identical bytes; the zone group's ``zarr.json`` (carrying the consolidated metadata) is
        written last and marks the zone complete. An existing zone or root with a different
        layout raises :class:`StoreLayoutError` before anything is written.
        """
        if zone in self._ready:
            return
        gname = zone_group_name(zone)
        docs = self._documents(zone)
        expected_root = json.loads(docs["zarr.json"])
        existing_root = self.io.get_json("zarr.json")
        if existing_root is not None:
            self._check_root_attrs(existing_root, expected_root)
        existing_zone = self.io.get_json(f"{gname}/zarr.json")
        if existing_zone is not None and existing_zone.get("consolidated_metadata"):
            self._check_zone(zone, existing_zone, json.loads(docs[f"{gname}/zarr.json"]))
        else:
            self._check_partial_zone(gname, docs)
            body = {
                k: v
                for k, v in docs.items()
                if k.startswith(f"{gname}/") and k != f"{gname}/zarr.json"
            }
            self.io.put_many(body)
            self.io.put(f"{gname}/zarr.json", docs[f"{gname}/zarr.json"])
        self._ensure_root_lists_zone(gname, expected_root)
        self._ready.add(zone)

    def _documents(self, zone: int) -> dict[str, bytes]:
        if zone not in self._docs:
            self._docs[zone] = build_zone_documents(self.schema, zone)
        return self._docs[zone]

    def _check_root_attrs(self, existing: dict[str, Any], expected: dict[str, Any]) -> None:
        have, want = existing.get("attributes", {}), expected.get("attributes", {})
        free = set(self.schema.informational_attrs)
        diffs = sorted(
            k for k in set(have) | set(want) if k not in free and have.get(k) != want.get(k)
        )
        if not diffs:
            return
        details = "; ".join(f"{k}: store={have.get(k)!r} schema={want.get(k)!r}" for k in diffs)
        raise StoreLayoutError(
            f"{self.url} was created for a different product configuration ({details}). "
            "Root attributes describe the whole store (model, layout); write to a new store "
            "or delete this one."
        )

    def _check_zone(self, zone: int, existing: dict[str, Any], expected: dict[str, Any]) -> None:
        gname = zone_group_name(zone)
        problems: list[str] = []
        have_layout = existing.get("attributes", {}).get(LAYOUT_ATTR, {})
        want_layout = expected["attributes"][LAYOUT_ATTR]
        for key in ("resolution_m", "tile_size", "tile_px", "years"):
            if have_layout.get(key) != want_layout[key]:
                problems.append(
                    f"{key}: store={have_layout.get(key)!r} schema={want_layout[key]!r}"
                )
        for key in ("proj:code", "spatial:transform", "spatial:shape"):
            if existing.get("attributes", {}).get(key) != expected["attributes"][key]:
                problems.append(f"{key} differs")
        have_meta = existing["consolidated_metadata"].get("metadata", {})
        want_meta = expected["consolidated_metadata"]["metadata"]
        for var in self.schema.variables:
            have = have_meta.get(var.name)
            if have is None:
                problems.append(f"{var.name}: missing from the store")
            elif structural_view(have) != structural_view(want_meta[var.name]):
                problems.append(
                    f"{var.name}: store has {describe_layout(have)}, "
                    f"schema wants {describe_layout(want_meta[var.name])}"
                )
        known = {v.name for v in self.schema.variables} | set(want_meta)
        extra = sorted(k for k in have_meta if "/" not in k and k not in known)
        if extra:
            problems.append(f"store has arrays the schema does not: {extra}")
        if not problems:
            problems += self._check_coordinate_values(gname)
        if problems:
            raise StoreLayoutError(
                f"zone {gname} of {self.url} has an incompatible layout: " + "; ".join(problems)
            )

    def _check_coordinate_values(self, gname: str) -> list[str]:
        group = zarr.open_group(self._store(), path=gname, mode="r", use_consolidated=True)
        wanted = {self.schema.year_dim: list(self.schema.years), **self.schema.coords}
        out = []
        for dim, values in wanted.items():
            have = group[dim][:].tolist()
            if [str(v) for v in have] != [str(v) for v in values]:
                out.append(f"{dim} coordinate: store={_abbrev(have)} schema={_abbrev(values)}")
        return out

    def _check_partial_zone(self, gname: str, docs: dict[str, bytes]) -> None:
        """A zone being created by someone else (or half-created by a crash) must match us."""
        for var in self.schema.variables:
            key = f"{gname}/{var.name}/zarr.json"
            have = self.io.get_json(key)
            want = json.loads(docs[key])
            if have is not None and structural_view(have) != structural_view(want):
                raise StoreLayoutError(
                    f"zone {gname} of {self.url}: array {var.name} exists with "
                    f"{describe_layout(have)}, schema wants {describe_layout(want)}"
                )

    def _ensure_root_lists_zone(self, gname: str, expected_root: dict[str, Any]) -> None:
        """Merge this zone into the root's consolidated metadata (what ``zarr.open_group`` lists).

        The root document is shared by all zones, so this is a read-modify-write without a
        lock: each creator merges its own entries into the root it finds, waits, and re-checks.
        Two *different* zones created within the same instant can still lose one listing; the
        lost zone is re-listed by its next ``ensure_zone`` (every new ZoneStore checks), and
        :meth:`consolidate_root` rebuilds the listing after a parallel backfill. Zone readers
        (xarray, geotessera's ``open_zone``) use the zone group's own consolidated metadata
        and never depend on the root listing.
        """
        zone_doc = self.io.get_json(f"{gname}/zarr.json")
        mine = root_entries(gname, zone_doc)
        for _attempt in range(8):
            root = self.io.get_json("zarr.json")
            have = ((root or {}).get("consolidated_metadata") or {}).get("metadata", {})
            if root is not None and all(k in have for k in mine):
                return
            # An existing root keeps its own attributes (first writer's informational attrs).
            self._put_root(
                root if root is not None else expected_root,
                {k: v for k, v in have.items() if k not in mine} | mine,
            )
            time.sleep(random.uniform(0.02, 0.1))
        raise StoreError(f"could not register zone {gname} in the root metadata of {self.url}")

    def consolidate_root(self) -> list[int]:
        """Rebuild the root's consolidated listing from the zone groups present; returns zones.

        Cheap (one GET per possible zone) and safe to run at any time, e.g. after a parallel
        backfill that created several zones at once.
        """
        names = [zone_group_name(z) for z in range(1, 61)]
        docs = dict(
            zip(
                names,
                self.io.map_threads(lambda n: self.io.get_json(f"{n}/zarr.json"), names),
                strict=True,
            )
        )
        present = {n: d for n, d in docs.items() if d and d.get("consolidated_metadata")}
        entries: dict[str, Any] = {}
        for name, doc in present.items():
            entries.update(root_entries(name, doc))
        root = self.io.get_json("zarr.json")
        if root is None:
            raise StoreError(f"{self.url} has no root group")
        self._put_root(root, entries)
        return sorted(int(n[3:]) for n in present)

    def _put_root(self, root_doc: dict[str, Any], entries: dict[str, Any]) -> None:
        doc = {k: v for k, v in root_doc.items() if k != "consolidated_metadata"}
        doc["consolidated_metadata"] = {
            "kind": "inline",
            "must_understand": False,
            "metadata": dict(sorted(entries.items())),
        }
        self.io.put("zarr.json", json.dumps(doc, indent=2).encode())

    # ------------------------------------------------------------------------------------------
    # writing
    # ------------------------------------------------------------------------------------------
    def write_tile(
        self,
        tile: Tile,
        year: int,
        data: PartitionData,
        lineage: Lineage | Mapping[str, Any],
        *,
        coords: Mapping[str, Sequence[Any]] | None = None,
    ) -> LineageRecord:
        """Write one tile × year partition and commit it with its lineage record.

        ``data`` is an ``xr.Dataset`` or a mapping of variable name → array (numpy, dask or
        DataArray) with the schema's dims minus the year dim, spatially the tile window.
        Dataset/DataArray inputs may carry x/y coords and a CRS; they must match the tile.
        For ``doy`` dims the days written come from the data's ``doy`` coordinate (or
        ``coords={"doy": [...]}``); days a previous run wrote and this one does not are removed.
        Every variable of the schema must be given. Returns the committed record.
        """
        provenance = Lineage.model_validate(
            dict(lineage) if isinstance(lineage, Mapping) else lineage
        )
        reserved = set(LineageRecord.model_fields) - set(Lineage.model_fields)
        clash = sorted(reserved & set(provenance.model_extra or {}))
        if clash:
            raise PartitionDataError(f"lineage keys {clash} are set by the store itself")
        plan = plan_partition(self.schema, tile, year, data, coords)
        self.ensure_zone(tile.zone)
        gname = zone_group_name(tile.zone)
        ikey, lkey = intent_key(gname, tile.id, year), lineage_key(gname, tile.id, year)
        previous = self.read_lineage(tile, year)
        old_intent = self.io.get_json(ikey)
        before = merge_slices(
            previous.slices if previous else None, (old_intent or {}).get("slices")
        )
        token = uuid.uuid4().hex[:16]
        stage = staging_prefix(gname, tile.id, year, token)
        targets = shard_keys(self.schema, tile, year, plan.slices)
        redirect = {k: f"{stage}/{k}" for keys in targets.values() for k in keys}
        intent = WriteIntent(
            tile=tile.id,
            year=year,
            started_at=utc_now(),
            slices=merge_slices(before, plan.slices),
            writer=token,
            staging=sorted({*(old_intent or {}).get("staging", []), token}),
        )
        self.io.put_json(ikey, intent.model_dump(mode="json"))
        try:
            digests = self._stage(gname, plan, redirect)
        except BaseException:
            # Nothing outside the staging prefix was touched: the committed region stands.
            self.io.delete_tree(stage)
            self._restore_intent(ikey, token, old_intent)
            raise
        self._ensure_latest_writer(ikey, token, stage, tile, year)
        record = LineageRecord(
            **provenance.model_dump(),
            product=self.product,
            tile=tile.id,
            zone=tile.zone,
            year=year,
            resolution_m=self.schema.resolution,
            schema_digest=self.schema.digest,
            written_at=utc_now(),
            slices=plan.slices,
            variables=self._regions(tile, year, plan.slices, digests),
        )
        self.io.delete_many([lkey])  # un-commit: from here the region is being replaced
        stale = {d: sorted(set(v) - set(plan.slices.get(d, []))) for d, v in before.items()}
        self.io.delete_many(
            k for keys in shard_keys(self.schema, tile, year, stale).values() for k in keys
        )
        try:
            self.io.move_many({staged: key for key, staged in redirect.items()})
        except FileNotFoundError as exc:
            raise ConcurrentWriteError(
                f"{self.product} {tile.id} {year}: a staged shard vanished while being moved "
                f"into place ({exc}); another write of this partition cleaned up after itself. "
                "The region is uncommitted: re-run it."
            ) from exc
        self._ensure_latest_writer(ikey, token, None, tile, year)
        self.io.put_json(lkey, record.model_dump(mode="json"))
        self._finish(ikey, token, gname, tile, year)
        return record

    def _stage(self, gname: str, plan: PartitionPlan, redirect: dict[str, str]) -> dict[str, str]:
        """Write every piece through a :class:`StagingStore`; returns shard key → digest."""
        staging = StagingStore(self._store(), redirect)
        group = zarr.open_group(staging, path=gname, mode="r+", use_consolidated=True)
        for name, pieces in plan.pieces.items():
            array = group[name].with_config({"write_empty_chunks": True})
            for piece in pieces:
                array[piece.selection] = piece.values()
        digests = dict(staging.digests)
        for key in sorted(set(redirect) - set(digests)):  # zarr skipped the store: read back
            digest, _size = self.io.digest(redirect[key])
            if digest is None:
                raise StoreError(f"{self.url}: staged shard {redirect[key]} was not written")
            digests[key] = digest
        return digests

    def _ensure_latest_writer(
        self, ikey: str, token: str, stage: str | None, tile: Tile, year: int
    ) -> None:
        """Refuse to touch the region when a later write of the same partition has started (its
        intent replaced ours) or even finished (it dropped the intent, ours included)."""
        current = self.io.get_json(ikey) or {}
        if current.get("writer") == token:
            return
        if stage is not None:
            self.io.delete_tree(stage)
        when = f" at {current['started_at']}" if current.get("started_at") else ""
        raise ConcurrentWriteError(
            f"{self.product} {tile.id} {year}: another write of this partition started{when} "
            "while this one ran; this one stopped without committing and the other write's "
            "result stands. Run one writer per partition."
        )

    def _restore_intent(self, ikey: str, token: str, old_intent: dict[str, Any] | None) -> None:
        """After a failed staging: put back the intent we replaced (unless a later writer's is
        there now), so the record describes the region as it was."""
        current = self.io.get_json(ikey) or {}
        if current.get("writer") not in (None, token):
            return
        if old_intent is None:
            self.io.delete_many([ikey])
        else:
            self.io.put_json(ikey, old_intent)

    def _finish(self, ikey: str, token: str, gname: str, tile: Tile, year: int) -> None:
        """Drop the intent (if still ours) and staged leftovers of earlier, crashed writes."""
        current = self.io.get_json(ikey) or {}
        if current.get("writer") not in (None, token):
            return
        self.io.delete_many([ikey])
        for old in current.get("staging", []):
            self.io.delete_tree(staging_prefix(gname, tile.id, year, old))

    # ------------------------------------------------------------------------------------------
    # shard bookkeeping
    # ------------------------------------------------------------------------------------------
    def _regions(
        self, tile: Tile, year: int, slices: dict[str, list[Any]], digests: dict[str, str]
    ) -> dict[str, VariableRegion]:
        ys, xs = tile.pixel_window(self.schema.resolution)
        keys = shard_keys(self.schema, tile, year, slices)
        yi = year_index(self.schema, year)
        out = {}
        for var in self.schema.variables:
            index = {
                self.schema.year_dim: [yi, yi + 1],
                "y": [ys.start, ys.stop],
                "x": [xs.start, xs.stop],
            }
            out[var.name] = VariableRegion(
                index=index,
                shards=keys[var.name],
                digests={k: digests[k] for k in keys[var.name]},
            )
        return out

    def delete_tile(self, tile: Tile, year: int, *, thorough: bool = True) -> None:
        """Remove a partition: un-commit it first, then delete its shards and records.

        ``thorough`` deletes every slice the store's axes allow (e.g. all 366 days) rather than
        only those named by the lineage/intent records — safe even after foreign writes.
        """
        check_tile(self.schema, tile)
        gname = zone_group_name(tile.zone)
        record = self.read_lineage(tile, year)
        intent = self.io.get_json(intent_key(gname, tile.id, year))
        self.io.delete_many([lineage_key(gname, tile.id, year)])
        if thorough:
            slices = {
                d: list(self.schema.coords[d]) for d in SLICED_DIMS if d in self.schema.coords
            }
        else:
            slices = merge_slices(record.slices if record else None, (intent or {}).get("slices"))
        self.io.delete_many(
            k for keys in shard_keys(self.schema, tile, year, slices).values() for k in keys
        )
        for token in (intent or {}).get("staging", []):
            self.io.delete_tree(staging_prefix(gname, tile.id, year, token))
        self.io.delete_many([intent_key(gname, tile.id, year)])


def _abbrev(values: Sequence[Any]) -> str:
    values = list(values)
    return (
        str(values)
        if len(values) <= 6
        else f"[{values[0]}, {values[1]}, ..., {values[-1]}] ({len(values)})"
    )
