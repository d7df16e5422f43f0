"""Binds every .feature file here to pytest; the steps come from gxpmes.testing."""

from pytest_bdd import scenarios

scenarios(".")
