"""How the cluster harness turns its progress samples into the recovery figures it records and asserts."""

from __future__ import annotations

from bench.cluster.checks import Sample, rate, recovery, violations


def timeline(finished_per_s: list[int], submitted_per_s: int = 10) -> list[Sample]:
    samples, done = [], 0
    for t, finished in enumerate(finished_per_s):  # finished_per_s[t]: tasks finished between t and t + 1
        samples.append(Sample(float(t), created=submitted_per_s * t, terminal=done, running=0))
        done += finished
    return samples


def test_a_stall_is_measured_from_the_fault_end_to_full_rate_and_to_the_backlog_caught_up() -> None:
    # 10 tasks/s finished until 20 s, nothing during a 10-s fault, 10/s for 3 s more, then 30/s catching up
    samples = timeline([10] * 20 + [0] * 10 + [10] * 3 + [30] * 10 + [10] * 10)

    found = recovery(samples, fault_at=20, fault_end=30, submit_rate=10)

    assert found["rate_before_per_s"] == 10
    assert found["lowest_rate_during_per_s"] == 0
    assert found["throughput_back_s"] == 0  # a window from 30 s on finishes 10/s again at once
    assert found["peak_backlog"] > found["backlog_before"] + 90
    # the backlog of ~100 tasks drains at 20/s net from 33 s: back within 10 tasks of before at about 38 s
    assert found["caught_up_s"] is not None and 7 <= found["caught_up_s"] <= 10


def test_a_cluster_that_never_comes_back_has_no_recovery_time() -> None:
    samples = timeline([10] * 20 + [0] * 30)

    found = recovery(samples, fault_at=20, fault_end=25, submit_rate=10)

    assert found["throughput_back_s"] is None
    assert found["caught_up_s"] is None
    assert rate(samples, 30, 40) == 0


def test_every_broken_invariant_is_named() -> None:
    end = {"tasks": 9, "accepted_by_client": 10, "not_terminal": 2, "holds_pending": 2, "charged_twice": 1,
           "upstream_created_twice": 1, "duplicate_tasks": 0, "ledger_check_ok": False,
           "ledger_problems": ["x"]}  # fmt: skip

    assert violations(end) == [
        "2 tasks not terminal",
        "1 accepted tasks missing",
        "holds_pending = 2",
        "charged_twice = 1",
        "upstream_created_twice = 1",
        "ledger check: ['x']",
    ]
