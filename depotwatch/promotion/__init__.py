"""Promoting a shadow flow to prod and rolling it back, on both sides at once: the edge rollout's flows
file (edge_flows) and the cloud's config (cloud_config), joined in one step (promote)."""
