"""The FastAPI application: routes over :class:`~tessera_assets.api.reader.EmbeddingReader`.

Errors are one-line JSON ``{"detail": ...}``: 400 bad coordinates/bbox/tile address, 404 a year
or place not computed, 413 an area over ``TESSERA_API_MAX_REGION_PIXELS``, 422 malformed
parameters (FastAPI's own validation)."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI, HTTPException, Query, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from tessera_assets.api.encode import FORMATS, encode
from tessera_assets.api.page import PAGE
from tessera_assets.api.reader import BadRequest, EmbeddingReader, NotComputed, TooLarge
from tessera_assets.api.settings import ApiSettings
from tessera_assets.config import PipelineSettings
from tessera_assets.ops.previews import to_png

STATUS = {BadRequest: 400, NotComputed: 404, TooLarge: 413}


class RegionRequest(BaseModel):
    bbox: tuple[float, float, float, float] = Field(description="west, south, east, north")
    year: int
    format: Literal["zarr", "geotiff"] = "zarr"


def _http(exc: Exception) -> HTTPException:
    return HTTPException(STATUS[type(exc)], str(exc))


def create_app(settings: PipelineSettings, api: ApiSettings | None = None) -> FastAPI:
    api = api or ApiSettings()
    reader = EmbeddingReader(
        settings, max_region_pixels=api.max_region_pixels, pca_sample=api.pca_sample
    )
    app = FastAPI(title="TESSERA embeddings", description=__doc__)
    app.state.reader = reader

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    @app.get("/coverage")
    def coverage() -> dict:
        """The computed (committed) tile-years, with their lon/lat bounds."""
        return reader.coverage()

    @app.get("/embedding")
    def embedding(lon: float = Query(...), lat: float = Query(...), year: int = Query(...)) -> dict:
        """The 128-d vector at a point, its int8 codes and scale, and its provenance."""
        try:
            return reader.point(lon, lat, year)
        except (BadRequest, NotComputed) as exc:
            raise _http(exc) from exc

    @app.post("/region")
    def region(req: RegionRequest) -> Response:
        """An area as a zipped Zarr (codes + scales) or a float32 GeoTIFF."""
        try:
            ds = reader.region(req.bbox, req.year)
        except (BadRequest, NotComputed, TooLarge) as exc:
            raise _http(exc) from exc
        suffix = "zarr.zip" if req.format == "zarr" else "tif"
        return Response(
            encode(ds, req.format),
            media_type=FORMATS[req.format],
            headers={
                "Content-Disposition": f'attachment; filename="embeddings_{req.year}.{suffix}"'
            },
        )

    @app.get("/tiles/{z}/{x}/{y}.png")
    def tile(z: int, x: int, y: int, year: int = Query(...)) -> Response:
        """A web-mercator map tile in PCA false colour from the pyramid."""
        try:
            rgba = reader.tile_rgba(z, x, y, year)
        except (BadRequest, NotComputed) as exc:
            raise _http(exc) from exc
        return Response(to_png(rgba), media_type="image/png")

    return app
