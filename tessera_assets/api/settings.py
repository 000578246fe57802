"""Limits of the read API, from ``TESSERA_API_*`` variables (kept out of the pipeline settings,
whose digest is every region's lineage: serving changes no pixel)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_API_", extra="forbid")
    max_region_pixels: int = Field(
        1_000_000, ge=1, description="largest POST /region answer, in 10 m pixels"
    )
    pca_sample: int = Field(20_000, ge=100, description="pixels the map's colour basis is fit on")
