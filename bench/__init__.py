"""Benchmarks, each run as `python -m bench.<name>`: edge, cloud, LPE, recognition, flows, mutation."""
