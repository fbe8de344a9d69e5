-- Installs DuckDB's postgres extension (downloads it: needs the network once).
INSTALL postgres;
