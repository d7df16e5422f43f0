"""Bindings generated from MESA's B2MML XSDs by ``python -m isa95.b2mml.generate``."""
