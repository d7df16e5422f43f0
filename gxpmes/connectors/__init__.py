"""OT connectors: OPC UA and MQTT / Sparkplug B into the EBR capture API, with store-and-forward.

Every value received is decoded (bad input is counted and refused with a
reason, never crashing the connector), written durably to a local spool and
only then acknowledged to its source; a forwarder drains the spool into
:meth:`gxpmes.ebr.engine.BatchEngine.capture` in order, retrying while the
database is unavailable and recording each value once.
"""
