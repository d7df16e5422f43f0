"""The batch record as a projection of the signed audit log.

Every change to GMP-relevant state is one audit entry that carries the row
images it produced (:mod:`gxpmes.records.images`); the relational tables are
projections written in the same transaction (:mod:`gxpmes.records.writer`).
:func:`gxpmes.records.verify.verify_record` proves it: it verifies the log,
replays it through the same projector into scratch state and compares every
projected table both ways, then re-verifies every signature.
"""
