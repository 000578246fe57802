"""tessera_assets."""
