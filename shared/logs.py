"""Logging set-up for every process."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # arq logs every job start and finish at INFO; that is noise at hundreds of jobs per second.
    logging.getLogger("arq.worker").setLevel(logging.getLevelName(level) if level == "DEBUG" else logging.INFO)
    # httpx logs every request at INFO: one line per upstream call on the chat completion path (issue 4).
    logging.getLogger("httpx").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
