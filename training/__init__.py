"""Training and conversion of the shipped models: the edge's LPE and the cloud's recognisers."""
