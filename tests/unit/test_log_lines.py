"""What the processes' log lines hold: arq's periodic-job lines at DEBUG, JSON lines without uvicorn's ANSI copy."""

from __future__ import annotations

import json
import logging

import pytest

from shared.infra.logs import JsonFormatter, PeriodicJobsAtDebug

ARQ_START = "%6.2fs → %s(%s)%s"


def test_periodic_jobs_and_health_records_log_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    arq = logging.getLogger("arq.worker")
    periodic = PeriodicJobsAtDebug()
    arq.addFilter(periodic)
    try:
        with caplog.at_level(logging.INFO):
            arq.info(ARQ_START, 1.0, "cron:sweep", "", "")
            arq.info("recording health: %s", "j_complete=4")
            arq.info(ARQ_START, 0.0, "0192f:run_task", "'0192f'", "")
        assert [r.getMessage() for r in caplog.records] == ["  0.00s → 0192f:run_task('0192f')"]
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            arq.info(ARQ_START, 1.0, "cron:webhook_sweep", "", "")
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("DEBUG", "  1.00s → cron:webhook_sweep()")]
    finally:
        arq.removeFilter(periodic)


def test_json_lines_leave_out_uvicorns_colored_copy_of_the_message() -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (42,), None)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"  # what uvicorn adds for its own console
    line = json.loads(JsonFormatter("web").format(record))
    assert line["message"] == "Started server process [42]"
    assert "color_message" not in line and "\x1b" not in json.dumps(line)
