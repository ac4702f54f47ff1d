"""The engine's changes as the pipeline hands them on: numbered sink records, outbox
actions for receivers, deleted rows' history, and the incidents the API shows.

Kept apart from the pipeline's committing because a restore makes the same
records again from the journal (without a batch) and a snapshot saves the
numbering, so both numberings must come from one place.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from correlator.jsonbytes import json_bytes
from correlator.model import DELETED, NOTIFICATION, Change
from correlator.sinks.base import Record
from correlator.store.base import Action, Batch
from correlator.store.history import history_record

MAX_INCIDENTS = 10_000  # closed incidents kept for the API beyond the open ones


class ChangeRecords:
    """Numbers the changes of one scope; builds records only when a sink reads them."""

    def __init__(self, scope: str, publishing: bool, delivers: Callable[[str], int]) -> None:
        self.scope = scope
        self.publishing = publishing  # False: no sink, the seq still counts, nothing is built
        self.delivers = delivers  # a receiver's integrations the daemon delivers to
        self.change_seq = 0  # published records
        self.notifications = 0  # numbers the outbox's actions
        # incidents as last published, by id: every open one and the latest closed ones
        self.incidents: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def add(self, changes: Sequence[Change], out: list[Record], batch: Batch | None) -> None:
        """Serialize each change now (it carries the live row) as a numbered sink record."""
        for change in changes:
            if change.kind == NOTIFICATION:  # for receivers, not for the change stream
                self.notifications += 1
                if batch is not None:
                    self._outbox(change, batch)
                continue
            if change.incident is not None:
                self._remember_incident(change.incident)
            self.change_seq += 1
            alert = change.alert
            if self.publishing:
                body: dict[str, Any] = change.to_dict()
                body["seq"] = self.change_seq
                identifier = alert.identifier if alert is not None else _incident_id(change)
                out.append(Record(self.change_seq, identifier, change.kind, json_bytes(body)))
            if batch is not None and change.kind == DELETED and alert is not None:
                batch.history.append(history_record(alert, change.at))

    def state(self) -> dict[str, Any]:
        """What a snapshot keeps of the numbering and the incidents."""
        return {
            "change_seq": self.change_seq,
            "notifications": self.notifications,
            "incidents": list(self.incidents.values()),
        }

    def restore(self, saved: dict[str, Any]) -> None:
        self.change_seq = saved["change_seq"]
        self.notifications = saved.get("notifications", 0)
        for view in saved["incidents"]:
            self.incidents[str(view["id"])] = view

    def _outbox(self, change: Change, batch: Batch) -> None:
        """One action per integration of the receiver, in this batch's transaction."""
        receiver = str(change.receiver)
        count = self.delivers(receiver)
        if not count:
            return
        key = f"{self.scope}:n{self.notifications}"  # the same after a replay: idempotent
        payload = json_bytes(change.to_dict())
        for i in range(count):
            action = Action(f"{key}:{i}", self.scope, receiver, payload, change.at, due=change.at)
            batch.outbox.append(action)

    def _remember_incident(self, view: dict[str, Any]) -> None:
        incidents = self.incidents
        incidents[str(view["id"])] = view
        incidents.move_to_end(str(view["id"]))
        if len(incidents) > MAX_INCIDENTS:  # forget the oldest closed one
            closed = next((k for k, v in incidents.items() if v["status"] == "closed"), None)
            if closed is not None:
                del incidents[closed]


def _incident_id(change: Change) -> str:
    incident = change.incident or {}
    return str(incident.get("id", ""))
