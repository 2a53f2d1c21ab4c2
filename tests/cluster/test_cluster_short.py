"""The cluster harness's short form (bench/cluster): a real multi-host deployment in network namespaces, one
fault per test, and the end state a user and the operator rely on afterwards.

It needs root, network namespaces and Debian's haproxy, pgbouncer, redis-server, iptables and PostgreSQL 15
(``make test`` installs the packages when it can: ``make cluster-deps``); otherwise it is skipped with the
reason. The full form with every scenario and 2,000 tasks is ``make cluster-test``.
"""

from __future__ import annotations

import pytest

from bench.cluster.hosts import machine_allows
from bench.cluster.scenarios import SCENARIOS, Load, run_scenario

WHY_NOT = machine_allows()

pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"cluster tests skipped: {WHY_NOT}")


@pytest.mark.timeout(150)
@pytest.mark.parametrize("key", ["b", "g"])
def test_cluster_recovers_with_every_invariant(key: str) -> None:
    """(b) a worker host cut off from PostgreSQL and PgBouncer; (g) two of three worker hosts SIGKILLed: every
    task the client got accepted ends, nothing is charged or run upstream twice, the ledger checks clean, the
    chat stream through the other hosts keeps answering, and throughput comes back."""
    load = Load.short()
    result = run_scenario(SCENARIOS[key], load)

    assert result["violations"] == []
    end = result["end_state"]
    assert end["accepted_by_client"] == load.tasks
    assert end["statuses"].get("succeeded") == load.tasks
    assert end["upstream_jobs"] == load.tasks
    chat = result["client"]["chat"]
    assert chat["requests"] > 0 and chat["ok"] == chat["requests"], chat
    assert result["throughput_back_s"] is not None, result
