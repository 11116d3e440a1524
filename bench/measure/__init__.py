"""Measurement: the timer, the systems under test, and what is recorded around them.

`timing` times a callable; `engines` are the systems under test (kept apart from the timer, as in
MLPerf LoadGen); `train_step`, `accuracy`, `roofline`, `memory`, `environment` measure the rest.
"""
