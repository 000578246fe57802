"""What each sensor's STAC items mean: bands (``bands``), collection profiles (``profiles``),
per-scene decisions (``decisions``: solar day, BOA offset, orbit, QA bits, duplicates), the
reading recipe they add up to (``load_plan``), and the scene manifest that records it
(``manifest``, ``plan_record``) for ingestion to read back (DESIGN §1, §6)."""
