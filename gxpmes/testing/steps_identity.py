"""Steps for account controls: signed role grants, the conflict matrix, one-time and
expired passwords, lockout under parallel guessing, user ids that read alike.

Registered next to :mod:`gxpmes.testing.steps` by the plugin; same conventions
(*When* steps keep refusals for *Then* steps).
"""

from __future__ import annotations

import secrets

from pytest_bdd import given, parsers, then, when
from sqlalchemy import insert, text

from audit.canonical import format_timestamp
from gxpmes.identity import Credentials, SignableRecord
from gxpmes.identity.schema import AuthPendingRow
from gxpmes.records.verify import verify_record
from gxpmes.testing.plant import USERS, TestPlant
from gxpmes.testing.steps import _attempt

__all__: list[str] = []  # steps register themselves


def _roles(text_: str) -> list[str]:
    return [r.strip() for r in text_.split(",") if r.strip()]


def _admin(plant: TestPlant, user: str) -> Credentials:
    return Credentials(user, USERS[user][2], plant.session(user))


@when(parsers.parse('"{admin}" grants "{user}" the roles "{roles}" with reason "{reason}"'))
def grant_roles(plant: TestPlant, admin: str, user: str, roles: str, reason: str) -> None:
    _attempt(
        plant,
        lambda: plant.accounts.set_roles(_admin(plant, admin), user, _roles(roles), reason=reason),
    )


@when(
    parsers.parse(
        '"{admin}" creates user "{user}" named "{name}" with role "{role}" '
        'and one-time password "{password}"'
    )
)
def create_with_password(
    plant: TestPlant, admin: str, user: str, name: str, role: str, password: str
) -> None:
    _attempt(
        plant,
        lambda: plant.accounts.create_user(_admin(plant, admin), user, name, [role], password),
    )


@when(
    parsers.parse('"{user}" signs the record "{record}" as "{meaning}" with password "{password}"')
)
def sign_with_password(
    plant: TestPlant, user: str, record: str, meaning: str, password: str
) -> None:
    signable = SignableRecord("document", record, {"title": record, "revision": 1}, record)
    plant.state["signature"] = _attempt(
        plant, lambda: plant.signatures.sign(signable, meaning, Credentials(user, password))
    )


@when(parsers.parse('"{user}" replaces password "{old}" by "{new}"'))
def replace_password(plant: TestPlant, user: str, old: str, new: str) -> None:
    _attempt(plant, lambda: plant.identity.change_password(user, old, new))


@given(parsers.parse("{days:d} days pass"))
@when(parsers.parse("{days:d} days pass"))
def days_pass(plant: TestPlant, days: int) -> None:
    plant.clock.advance(days=days)


@given(parsers.parse('{count:d} password checks of "{user}" are in progress elsewhere'))
def checks_in_progress(plant: TestPlant, count: int, user: str) -> None:
    with plant.db.transaction() as conn:
        for _ in range(count):
            conn.execute(
                insert(AuthPendingRow).values(
                    check_id=secrets.token_hex(16),
                    user_id=user,
                    started_at=format_timestamp(plant.clock()),
                )
            )


@when(parsers.parse('someone gives "{user}" the role "{role}" with SQL'))
def roles_by_sql(plant: TestPlant, user: str, role: str) -> None:
    roles = "\n".join(sorted(plant.identity.user(user).roles | {role}))
    with plant.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE gx_user SET roles = :r WHERE user_id = :u"), {"r": roles, "u": user}
        )


@then(parsers.parse('verification names the "{column}" of user "{user}"'))
def verification_names(plant: TestPlant, column: str, user: str) -> None:
    report = verify_record(
        plant.db.engine, head_keys=plant.trusted_keys(), signature_keys=plant.signature_keys()
    )
    assert any(
        p.table == "gx_user" and p.key == user and p.column == column for p in report.problems
    ), [p.line() for p in report.problems]


@then(parsers.parse('the account change of "{user}" is signed "Authorised" by "{admin}"'))
def change_signed(plant: TestPlant, user: str, admin: str) -> None:
    signatures = plant.signatures.signatures_in_scope(f"account:{user}")
    assert signatures and signatures[-1].meaning == "Authorised"
    assert signatures[-1].signer_id == admin
