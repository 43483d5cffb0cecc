"""The LPE (Locomotive Position Estimator) at the edge: OpenVINO inference on the strip (shared.strip)
rectifies each frame into, and decoding."""
