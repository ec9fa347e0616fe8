"""DuckDB engine over the lake: views, the query functions and the Python API."""
