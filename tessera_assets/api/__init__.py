"""The read API (``tessera-assets serve``): point and area queries, map tiles and a small map
page over the stores, without downloading tiles. FastAPI over the domain; no Dagster."""
