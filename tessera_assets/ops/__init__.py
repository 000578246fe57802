"""Operations: backfill planning, the AOI registry and request inbox, the STAC scene watch,
provisional status and previews."""
