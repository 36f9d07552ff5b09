"""The failure drills, short form (``make chaos`` runs the long one): each
injects its fault under a stream of writes, bus events and open sockets
through the replicated system, then checks that nothing was lost or doubled,
that every /readyz went 503 during an outage and 200 after, and that every
client came back by itself. A failed drill's message is its full report."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from agenthq_devctl.chaos import DRILLS, SHORT, ReadyzWatch, Rig, _longest_gap, _wrong, run_drill
from agenthq_devctl.supervisor import Stack

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("drill", list(DRILLS))
async def test_drill(rig: Rig, drill: str) -> None:
    result = await run_drill(rig, drill, SHORT)
    print(result.report())
    assert result.passed, result.report()


def _listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp{,6})."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # LISTEN
                found.append(address)
    return found


async def test_private_servers_listen_on_loopback_only(rig: Rig) -> None:
    infra = rig.infra
    loopback = "0100007F"  # 127.0.0.1, as /proc/net/tcp writes it
    for port in (infra.postgres.port, infra.redis.port, infra.rabbit.port, infra.rabbit.dist_port):
        assert _listening(port) == [loopback], port
    # Not the machine's servers: their own ports, and a node with a cookie of its own.
    assert {infra.postgres.port, infra.redis.port, infra.rabbit.port}.isdisjoint({5432, 6379, 5672})
    assert infra.rabbit.node.startswith("agenthq-chaos-")
    assert (infra.rabbit.home / ".erlang.cookie").stat().st_mode & 0o077 == 0


def test_readiness_timeline_arithmetic() -> None:
    """The drills' bookkeeping: transitions, first-seen, gaps, lost/doubled."""
    watch = ReadyzWatch(Stack(log_dir=Path("/nonexistent")), interval=1.0)
    t0 = time.monotonic()
    watch.transitions["a"] = [(t0, 200), (t0 + 2, 503), (t0 + 7, 200)]
    assert watch.status_at("a", t0 + 1) == 200
    assert watch.first("a", t0 + 1, lambda s: s == 503) == t0 + 2
    assert watch.first("a", t0 + 3, lambda s: s == 503) == t0 + 3  # still down then
    assert watch.first("a", t0 + 3, lambda s: s == 200) == t0 + 7
    assert watch.seen_between("a", t0 + 1, t0 + 5) == {200, 503}
    assert watch.first("b", t0, lambda s: s == 200) is None
    assert _longest_gap([t0 + 1, t0 + 4, t0 + 5], t0, t0 + 6) == pytest.approx(3)
    lost, doubled = _wrong(Counter({"x": 1, "y": 2}), ["x", "y", "z"])
    assert lost == ["z"] and doubled == ["y x2"]
