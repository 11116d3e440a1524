"""CI gates on top of everything: performance regressions (perf_suite/) and accuracy bounds of trained checkpoints."""
