"""Read-only state shared by the sensor renderers while one archive is generated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tessera_assets.demo.geo import to_lonlat
from tessera_assets.demo.grids import Grid, area_grid, base_grid
from tessera_assets.demo.landcover import Landscape, build_landscape
from tessera_assets.demo.spec import DemoSpec

DATA_DIR = "data"


@dataclass(frozen=True)
class DemoContext:
    """The spec, its grids and landscape, and where files go.

    Files are written under ``write_root`` (a staging folder) but their STAC hrefs point at
    ``final_root``, where the staging folder is moved once everything has been written.
    """

    spec: DemoSpec
    base: Grid
    area10: Grid
    area20: Grid
    land: Landscape
    centre_lonlat: tuple[float, float]
    write_root: Path
    final_root: Path

    @classmethod
    def create(cls, spec: DemoSpec, write_root: Path, final_root: Path) -> DemoContext:
        base = base_grid(spec)
        x0, y0, x1, y1 = spec.bounds
        lon, lat = to_lonlat(spec.epsg, [(x0 + x1) / 2], [(y0 + y1) / 2])
        return cls(
            spec=spec,
            base=base,
            area10=area_grid(spec, 10.0),
            area20=area_grid(spec, 20.0),
            land=build_landscape(spec, base),
            centre_lonlat=(lon[0], lat[0]),
            write_root=write_root,
            final_root=final_root.resolve(),
        )

    def file(self, relative: str) -> tuple[Path, str]:
        """Where to write a data file (under ``data/``) now, and the absolute ``file://`` href
        it will have once the archive is in place."""
        relative = f"{DATA_DIR}/{relative}"
        return self.write_root / relative, (self.final_root / relative).as_uri()
