"""The run harness: benchmark matrices into cells, cells into rows, rows into results files and reports."""
