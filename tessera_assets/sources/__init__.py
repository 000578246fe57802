"""What each sensor's STAC items mean: bands, collection profiles, per-scene decisions (solar day,
BOA offset, orbit, duplicates) and the scene manifest that records them (DESIGN §1, §6)."""
