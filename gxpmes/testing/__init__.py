"""Validation support for users' own test suites (GAMP 5 / CSA).

Installed as a pytest plugin (entry point ``pytest11``): it provides the
``gxp_plant`` fixture, a pytest-bdd step library in plain language
(:mod:`gxpmes.testing.steps`) and the ``--gxp-trace`` traceability matrix.
"""

from gxpmes.testing.plant import TestPlant, build_plant

__all__ = ["TestPlant", "build_plant"]
