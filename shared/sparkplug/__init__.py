"""Sparkplug B 3.0 (Eclipse Sparkplug), the SCADA-facing language both sides can speak besides the
system's own JSON contract: the payload schema (`sparkplug_b.proto` and its generated module), the
topic namespace, the primary host's STATE, and the edge-node session that edge boxes and the cloud's
facility node both run."""
