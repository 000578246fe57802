"""Tile inference: per-pixel observation series cut into strips, embedded by a Ray actor pool."""
