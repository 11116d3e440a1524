"""CI gates: performance regressions (interleaved or stored baselines) and accuracy bounds."""
