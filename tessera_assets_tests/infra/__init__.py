"""Real services on loopback for the production-like tests: Postgres, an S3-protocol server
(moto), a Ray cluster, and a Dagster webserver + daemon over them."""
