"""A deleted row as a history record (who acknowledged it and when, when it cleared)."""

from __future__ import annotations

from correlator.jsonbytes import json_bytes
from correlator.model import CLEARED, Alert
from correlator.store.base import HistoryRecord


def history_record(alert: Alert, deleted_at: float) -> HistoryRecord:
    """The record kept for `alert`, deleted at `deleted_at`.

    The acknowledgement is read from the journal (its first "acknowledged"
    note), since `owner` alone may have been assigned without one.
    """
    ack = next((e for e in alert.journal if e.text == "acknowledged"), None)
    return HistoryRecord(
        identifier=alert.identifier,
        serial=alert.serial,
        first_occurrence=alert.first_occurrence,
        last_occurrence=alert.last_occurrence,
        tally=alert.tally,
        acknowledged_by=ack.who if ack is not None else None,
        acknowledged_at=ack.at if ack is not None else None,
        cleared_at=alert.state_change if alert.status == CLEARED else None,
        deleted_at=deleted_at,
        alert=json_bytes(alert.to_dict()),
    )
