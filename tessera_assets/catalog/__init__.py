"""Scene catalogs (DESIGN §6) behind one :class:`Catalog` protocol.

One concept per module: :mod:`.base` (the protocol, search parameters, ``CatalogError``),
:mod:`.presets` (the public archives by name), :mod:`.signing` (credentials and Planetary
Computer URL signing), :mod:`.stac_api` (STAC APIs through pystac-client),
:mod:`.geoparquet` (stac-geoparquet through rustac's DuckDB, with :mod:`.duckdb_extensions`
laying out its extensions offline) and :mod:`.factory` (the catalog a configuration names).
"""

from tessera_assets.catalog.base import Catalog, CatalogError
from tessera_assets.catalog.factory import catalog_from_config, catalog_from_settings
from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.catalog.stac_api import StacApiCatalog

__all__ = [
    "Catalog",
    "CatalogError",
    "GeoparquetCatalog",
    "StacApiCatalog",
    "catalog_from_config",
    "catalog_from_settings",
]
