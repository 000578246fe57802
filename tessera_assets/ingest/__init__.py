"""From COGs to cubes on the tile grid: GDAL/COG reading, raw cubes, validity masks and value
harmonisation into the masked / calibrated cubes the model families expect (DESIGN §1)."""
