"""The LPE (Locomotive Position Estimator) at the edge: strip rectification, OpenVINO inference, decoding."""
