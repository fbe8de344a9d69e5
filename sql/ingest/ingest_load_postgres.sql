-- Loads DuckDB's postgres extension, installed earlier.
LOAD postgres;
