"""Machine-speed yardstick: normalises a stored baseline measured at another time or place."""


def test_calibration_matmul(measure):
    import perf_systems

    measure(perf_systems.make_calibration_matmul(), role="calibration")
