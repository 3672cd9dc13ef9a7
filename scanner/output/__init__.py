"""Output stage: the Arrow schema and the Parquet dataset writer."""
