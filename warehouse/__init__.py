"""The raw landing and the DuckDB warehouse: raw-file resolution, the mart readers and table writer the
other layers share, and the synthetic log generator (``warehouse.generator``)."""
