"""Shared plumbing under every layer: files and digests, registry clients, environment, tables, precision names, top-1."""
