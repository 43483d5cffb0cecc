"""depotwatch shared code: layout, message contract, simulator, MQTT adapter."""

__version__ = "0.1.0"
