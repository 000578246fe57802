"""Scene catalogs (DESIGN §6): presets for the public archives, URL signing, the STAC API
and stac-geoparquet backends behind one ``Catalog`` protocol."""
