"""tessera_assets: a Dagster asset graph that turns open satellite archives into per-pixel
TESSERA embeddings. Domain modules live here; everything Dagster lives in ``defs/``."""

__version__ = "0.1.0"
