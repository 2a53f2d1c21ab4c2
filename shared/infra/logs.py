"""Logging set-up for every process: one JSON object per line (``LOG_FORMAT=json``, the default) or plain
text, each record with the ``request_id`` of the HTTP request and the ``task_id`` of the task it concerns
when there is one, so ``grep <task id>`` follows a task from the API process to the worker that ran it."""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import socket
import sys
from typing import Any

import msgspec

from shared.infra.tracing import current_trace_id

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
task_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)

_encode = msgspec.json.Encoder().encode
# Attributes every record has, and uvicorn's ``color_message`` (its message with ANSI colours, for its own console)
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class ContextFilter(logging.Filter):
    """Puts the current request id and task id on every record (None outside of one), and while tracing the
    trace id (``shared.infra.tracing``), so that a line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        if getattr(record, "task_id", None) is None:
            record.task_id = task_id.get()
        if getattr(record, "trace_id", None) is None:
            record.trace_id = current_trace_id()
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process_name = process
        self.host = socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.process_name,
            "host": self.host,
            "pid": os.getpid(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and value is not None:
                entry[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{name}={getattr(record, name)}" for name in ("request_id", "task_id") if getattr(record, name, None)]
        return f"{line} [{' '.join(ids)}]" if ids else line


class PeriodicJobsAtDebug(logging.Filter):
    """arq logs the start and the end of every job, and each health record, at INFO. For the periodic jobs (the
    sweeps, every 15 s) and the health records that is a line every few seconds with nothing to act on, and the
    console of ``conduit run`` would scroll its banner away: they are logged at DEBUG instead (what a sweep did
    is logged by the sweep itself when it did something)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        periodic = record.msg == "recording health: %s" or (
            isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], str) and args[1].startswith("cron:")
        )
        if not periodic or record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def configure_logging(level: str = "INFO", *, fmt: str = "json", process: str = "conduit") -> None:
    # No line shows the caller's source line, thread or process names: the logging module need not look them up
    # for every record (the optimisations of the logging HOWTO; the access log writes a line per request).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process) if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    arq = logging.getLogger("arq.worker")
    arq.filters[:] = [PeriodicJobsAtDebug()]
    # httpx logs every request at INFO: one line per upstream call on the chat completion path.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
