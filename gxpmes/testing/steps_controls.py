"""Steps for the controls of 21 CFR 11.200 and 11.10(d) that a scenario must be able to
fail on: a short idle timeout, signing inside a session, a person holding two roles.

Registered next to :mod:`gxpmes.testing.steps` by the plugin; same conventions
(*When* steps keep refusals for *Then* steps).
"""

from __future__ import annotations

from dataclasses import replace

from pytest_bdd import given, parsers, then, when

from gxpmes.identity import Credentials, SignableRecord
from gxpmes.testing.plant import USERS, TestPlant
from gxpmes.testing.steps import _attempt

__all__: list[str] = []  # steps register themselves


@given(parsers.parse("the idle timeout is {minutes:d} minutes"))
def idle_timeout(plant: TestPlant, minutes: int) -> None:
    plant.identity.policy = replace(plant.identity.policy, idle_timeout_minutes=minutes)


@given(parsers.parse('"{user}" also holds the role "{role}"'))
def also_holds_role(plant: TestPlant, user: str, role: str) -> None:
    roles = sorted(plant.identity.user(user).roles | {role})
    plant.accounts.set_roles(
        plant.admin_creds(), user, roles, reason="validation: a person holding two roles"
    )


def _sign_in_session(plant: TestPlant, user: str, record: str, meaning: str, password: str) -> None:
    signable = SignableRecord("document", record, {"title": record, "revision": 1}, record)
    plant.state["record"] = signable
    credentials = Credentials(user, password, session=plant.session(user))
    plant.state["signature"] = _attempt(
        plant, lambda: plant.signatures.sign(signable, meaning, credentials)
    )


@when(parsers.parse('"{user}" signs the record "{record}" as "{meaning}" in the session'))
def sign_in_session(plant: TestPlant, user: str, record: str, meaning: str) -> None:
    _sign_in_session(plant, user, record, meaning, USERS[user][2])


WRONG_PASSWORD = "Not-Your-Password-1!"
"""A password of the right form that is nobody's."""


@when(
    parsers.parse(
        '"{user}" signs the record "{record}" as "{meaning}" in the session with a wrong password'
    )
)
def sign_in_session_wrongly(plant: TestPlant, user: str, record: str, meaning: str) -> None:
    _sign_in_session(plant, user, record, meaning, WRONG_PASSWORD)


@when(parsers.parse('"{user}" signs the record "{record}" as "{meaning}" with a wrong password'))
def sign_wrongly(plant: TestPlant, user: str, record: str, meaning: str) -> None:
    signable = SignableRecord("document", record, {"title": record, "revision": 1}, record)
    plant.state["record"] = signable
    plant.state["signature"] = _attempt(
        plant, lambda: plant.signatures.sign(signable, meaning, Credentials(user, WRONG_PASSWORD))
    )


@then(parsers.parse('no signature of "{record}" exists'))
def no_signature(plant: TestPlant, record: str) -> None:
    signable = SignableRecord("document", record, {"title": record, "revision": 1}, record)
    assert plant.signatures.signatures_for(signable) == []


@then(parsers.parse('the record "{record}" carries {count:d} signature(s)'))
def signature_count(plant: TestPlant, record: str, count: int) -> None:
    signable = SignableRecord("document", record, {"title": record, "revision": 1}, record)
    assert len(plant.signatures.signatures_for(signable)) == count
