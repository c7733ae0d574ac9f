"""One live stack for the whole fault suite (starting one costs tens of seconds): its own Redis and
moto server, which the cases kill, pause and restart, the reaper loop, and short limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import BIG_VERSION, ENV, RESULTS, Harness
from tests.live.stack import LiveStack


@pytest.fixture(scope="session")
def live() -> Iterator[Harness]:
    with LiveStack("faults", reaper=True, env=ENV) as stack:
        token = stack.make_user("alice", admin_of="CIEL")
        stack.shell(BIG_VERSION)
        harness = Harness(stack, token)
        harness.run_clean("tgz")
        harness.run_clean("zip")
        yield harness


@pytest.fixture
def faults(live: Harness) -> Iterator[Harness]:
    """The stack with no export of the version, every process up (even after a case that failed
    half-way through its fault)."""
    live.revive()
    live.reset()
    yield live


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not RESULTS:
        return
    terminalreporter.section("fault cases: outcome and time to recovery")
    terminalreporter.write_line(f"{'case':<58} {'outcome':<10} {'recovered':>9}  error")
    for outcome in RESULTS:
        terminalreporter.write_line(
            f"{outcome.case:<58} {outcome.state:<10} {outcome.seconds:>8.1f}s  {outcome.error[:90]}"
        )
