"""Training of the LPE: strip data from the simulator, the network, and training with IR export."""
