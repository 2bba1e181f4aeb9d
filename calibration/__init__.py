"""Camera and hand-eye calibration tools. Not built yet: see issue 8."""
