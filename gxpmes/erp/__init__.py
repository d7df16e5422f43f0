"""ERP exchange: a transactional outbox delivered to AMQP or folders, confirmed by ConfirmBOD,
and production orders, materials and lots taken in from ERP.

One job per module: :mod:`~gxpmes.erp.schema` (tables), :mod:`~gxpmes.erp.outbox`
(documents written with their GMP event), :mod:`~gxpmes.erp.bod` (BOD envelope,
ConfirmBOD), :mod:`~gxpmes.erp.delivery` (the sender and its transports:
:mod:`~gxpmes.erp.delivery.amqp`, :mod:`~gxpmes.erp.delivery.folder`),
:mod:`~gxpmes.erp.confirmations` (ConfirmBOD / Acknowledge matched to sent
messages, missing confirmations), :mod:`~gxpmes.erp.inbound` (orders, materials
and lots in), :mod:`~gxpmes.erp.exceptions` (problems shown in review) and
:mod:`~gxpmes.erp.status` (counts and the status line).
"""
