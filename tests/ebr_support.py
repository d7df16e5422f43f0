"""The shared test installation (from gxpmes.testing, which users' suites reuse too)."""

from __future__ import annotations

from gxpmes.testing.plant import BLEND, HEAT, MIX, USERS, granulation_recipe
from gxpmes.testing.plant import TestPlant as Plant
from gxpmes.testing.plant import build_plant as make_plant

__all__ = ["BLEND", "HEAT", "MIX", "USERS", "Plant", "granulation_recipe", "make_plant"]
