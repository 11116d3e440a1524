"""Shared plumbing under every layer: files and digests, registry clients, environment, tables, precision names, top-1,
the command line's manners (console: Ctrl-C, TensorFlow's start-up noise, warnings) and progress."""
