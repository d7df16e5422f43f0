"""Bare OperationsRequest / OperationsResponse (V0600 also ProductionRequest /
ProductionResponse) ↔ the request and response models schedules and performance hold.

The schedule and performance mappers read and write them; a bare one is read as
the only request (response) of a schedule (performance) that has nothing else,
so element names, checks, ``unmapped`` and ``binding_of`` are those of the
nouns that hold them.
"""

from __future__ import annotations

from typing import Any

from isa95.b2mml.mapping.operations import (
    _Names,
    _performance_from_tree,
    _performance_to_tree,
    _schedule_from_tree,
    _schedule_to_tree,
)
from isa95.b2mml.mapping.trees import Tracked
from isa95.operations import (
    OperationsPerformance,
    OperationsRequest,
    OperationsResponse,
    OperationsSchedule,
)


def _holder(tree: dict[str, Any], name: str) -> Tracked:
    """A schedule/performance tree holding only ``tree`` (errors name ``tree``'s path)."""
    holder = Tracked({name: [tree]}, tree.path if isinstance(tree, Tracked) else "")
    return holder


def request_to_tree(names: _Names) -> Any:
    def to_tree(model: OperationsRequest, version: str) -> dict[str, Any]:
        schedule = OperationsSchedule(requests=[model])
        tree: dict[str, Any] = _schedule_to_tree(schedule, version, names)[names.request][0]
        return tree

    return to_tree


def request_from_tree(names: _Names) -> Any:
    def from_tree(tree: dict[str, Any], version: str) -> OperationsRequest:
        schedule = _schedule_from_tree(_holder(tree, names.request), version, names)
        request: OperationsRequest = schedule.requests[0]
        return request

    return from_tree


def response_to_tree(names: _Names) -> Any:
    def to_tree(model: OperationsResponse, version: str) -> dict[str, Any]:
        performance = OperationsPerformance(responses=[model])
        tree: dict[str, Any] = _performance_to_tree(performance, version, names)[names.response][0]
        return tree

    return to_tree


def response_from_tree(names: _Names) -> Any:
    def from_tree(tree: dict[str, Any], version: str) -> OperationsResponse:
        performance = _performance_from_tree(_holder(tree, names.response), version, names)
        response: OperationsResponse = performance.responses[0]
        return response

    return from_tree
