"""The pipeline's products: which schema, path and store each product has (the registry), and
the cube, embeddings (TESSERA layout) and coarse layouts."""
