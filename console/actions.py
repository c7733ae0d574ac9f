"""How the console's actions run and report.

Every action calls the same function as the API or the commands (``queue_export`` for a
rebuild, ``delete_export`` for a delete, the mirror's ``schedule`` for "sync now"), one object at
a time, through :func:`run_action`, which tells the admin what happened to each.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest
from redis.exceptions import RedisError
from rest_framework.exceptions import APIException

# One object's outcome: a few words saying what happened ("deleted", "queued", "already being
# produced"). Outcomes are grouped in the message the admin shows.
Operation = Callable[[Any, Any], str]


def run_action(request: HttpRequest, objects: Iterable[Any], operation: Operation) -> dict[str, list[str]]:
    """``operation(obj, user)`` for each object; one admin message per outcome, naming the
    objects. An API error (a 409, a 503 of a Redis that is away) is that object's outcome."""
    outcomes: dict[str, list[str]] = defaultdict(list)
    failed: set[str] = set()
    for obj in objects:
        try:
            outcome = operation(obj, request.user)
        except APIException as exc:
            outcome = str(exc.detail)
            failed.add(outcome)
        except RedisError as exc:
            outcome = f"the job queue is unavailable ({type(exc).__name__})"
            failed.add(outcome)
        outcomes[outcome].append(str(obj))
    for outcome, names in outcomes.items():
        level = messages.ERROR if outcome in failed else messages.SUCCESS
        messages.add_message(request, level, f"{outcome[:1].upper()}{outcome[1:]}: {', '.join(names)}")
    return dict(outcomes)
