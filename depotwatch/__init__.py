"""The composition root: the `depotwatch` command, the demo supervisor, recording and replay of a flow,
model promotion and the embedded broker. It wires edge, cloud and the simulator; none of them imports it."""
