"""The simulator: a depot's world, its cameras' pictures and their ground truth, for the demo, tests,
training and benchmarks. Production code never imports it: `sim://` sources reach an edge node through
the source openers the composition root hands it."""
