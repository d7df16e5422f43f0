"""The witness as a state machine: random growth, forks and submissions of one log.

Against an independent RFC 6962 reference (tests/rfc9162_reference.py): the
witness never cosigns two checkpoints that are not one append-only history,
its size never goes down, and it never refuses a correct submission.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path

import rfc9162_reference as ref
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from audit.note import NoteSigner, sign_note, split_note
from audit.witness import Cosigner, KnownLog, LogKey, Witness, WitnessStore, format_add_checkpoint

ORIGIN = "site-a.example/audit/model"
LOG = NoteSigner("site-a.example/audit", Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
WITNESS = Cosigner("w.example/w", Ed25519PrivateKey.from_private_bytes(b"\x02" * 32))


def body(entries: list[bytes]) -> str:
    root = base64.b64encode(ref.mth(entries)).decode()
    return f"{ORIGIN}\n{len(entries)}\n{root}\n"


class WitnessMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="witness-model-"))
        self.store = WitnessStore.open(self.folder / "w.db")
        known = KnownLog(ORIGIN, (LogKey.from_verifier(LOG.verifier),))
        self.witness = Witness(WITNESS, self.store, [known])
        self.branches: list[list[bytes]] = []
        self.cosigned: list[tuple[int, bytes]] = []  # (size, root) in the order cosigned
        self.counter = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _entries(self, count: int) -> list[bytes]:
        self.counter += count
        return [f"e{self.counter - i}".encode() for i in range(count)]

    @initialize(size=st.integers(0, 6))
    def start(self, size: int) -> None:
        self.branches.append(self._entries(size))

    @rule(data=st.data(), count=st.integers(1, 9))
    def grow(self, data: st.DataObject, count: int) -> None:
        branch = data.draw(st.sampled_from(self.branches), label="branch")
        branch.extend(self._entries(count))

    @rule(data=st.data(), extra=st.integers(0, 5))
    def fork(self, data: st.DataObject, extra: int) -> None:
        branch = data.draw(st.sampled_from(self.branches), label="branch")
        at = data.draw(st.integers(0, len(branch)), label="at")
        self.branches.append(branch[:at] + self._entries(extra))

    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        entries = list(data.draw(st.sampled_from(self.branches), label="branch"))
        size = len(entries)
        held, held_root = (self.cosigned and max(self.cosigned)) or (0, None)
        old = data.draw(st.sampled_from(sorted({0, held, size, min(held + 1, size)})), label="old")
        honest_proof = data.draw(st.booleans(), label="honest proof")
        proof = ref.proof(old, entries) if 0 < old < size else []
        if not honest_proof and proof:
            proof[0] = bytes(b ^ 0xFF for b in proof[0])
        text = body(entries)
        note = sign_note(text, LOG)
        answer = self.witness.add_checkpoint(format_add_checkpoint(old, proof, note))
        root = ref.mth(entries)
        extends = size >= held and (held == 0 or ref.mth(entries[:held]) == held_root)
        correct = old == held and old <= size and extends and (honest_proof or not proof)
        if answer.status == 200:
            _, (signature,) = split_note(text + "\n" + answer.body.decode())
            WITNESS.verifier.verify(text, signature)
            # One append-only history: every earlier cosigned tree is a prefix of this one.
            for earlier_size, earlier_root in self.cosigned:
                assert earlier_size <= size
                assert ref.mth(entries[:earlier_size]) == earlier_root
            self.cosigned.append((size, root))
        else:
            assert 400 <= answer.status < 500, answer
        assert (answer.status == 200) == correct, (answer, old, held, size, extends)

    @invariant()
    def state_is_the_largest_cosigned(self) -> None:
        state = self.store.get(ORIGIN)
        if not self.cosigned:
            assert state is None
        else:
            assert state is not None and (state.tree_size, state.root) == max(self.cosigned)
            assert self.witness.state_problem(state) is None


WitnessMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_witness_state_machine = WitnessMachine.TestCase
