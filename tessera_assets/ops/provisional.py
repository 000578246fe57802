"""Whether a tile-year's products may still change (docs/operations.md, "provisional").

Catalogs publish scenes late and archives catch up slowly, so a year's embeddings are flagged
provisional until the year is over, a grace period has passed and its manifest reaches close
to 31 December. The flag is recorded in metadata and lineage; the coarse product inherits the
fine product's flag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

import pystac

from tessera_assets.config import SceneWatchSettings


def provisional_status(
    year: int,
    last_scene_day: date | None,
    today: date,
    *,
    grace_days: int = 30,
    end_gap_days: int = 20,
) -> tuple[bool, str]:
    """Whether a tile-year's products are provisional (may still change), and why.

    A year is provisional until ``grace_days`` after it ends (catalogs publish late), and while
    its last scene is more than ``end_gap_days`` before 31 December (the archive has not
    caught up, or scenes are missing)."""
    year_end = date(year, 12, 31)
    if today <= year_end + timedelta(days=grace_days):
        if today <= year_end:
            return True, f"{year} is not over yet (today is {today.isoformat()})"
        return True, (f"{year} ended less than {grace_days} days ago; late scenes may "
                      "still arrive")
    if last_scene_day is None:
        return True, f"no scene for {year} in the manifest"
    gap = (year_end - last_scene_day).days
    if gap > end_gap_days:
        return True, (f"the last scene is {last_scene_day.isoformat()}, {gap} days before the "
                      f"end of {year}")
    return False, f"{year} is complete (last scene {last_scene_day.isoformat()})"


def last_scene_day(items: Iterable[pystac.Item]) -> date | None:
    """The latest solar day among manifest items (``tessera:solar_day``), if any."""
    days = [date.fromisoformat(str(it.properties["tessera:solar_day"])) for it in items
            if it.properties.get("tessera:solar_day")]
    return max(days, default=None)


def manifest_provisional(items: Iterable[pystac.Item], year: int, today: date,
                         watch: SceneWatchSettings) -> tuple[bool, str]:
    """:func:`provisional_status` of a manifest's items with the configured thresholds."""
    return provisional_status(year, last_scene_day(items), today,
                              grace_days=watch.provisional_grace_days,
                              end_gap_days=watch.provisional_end_gap_days)


def inherited_provisional(fine_record: Mapping[str, Any], year: int, today: date) -> bool:
    """A derived product's flag: the fine partition's recorded one; without a record, a year
    not over yet counts as provisional."""
    return bool(fine_record.get("provisional", year >= today.year))
