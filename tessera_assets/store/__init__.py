"""Zone-wide Zarr v3 stores written region by region (DESIGN §4): schema, zone documents, the
intent → shards → commit write protocol, reads, lineage records and object I/O."""
