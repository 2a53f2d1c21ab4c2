"""Live task events, streamed to clients as Server-Sent Events.

Whoever commits a task's state change publishes the event after the commit (``publish.TaskEvents``): the API
(``task.queued`` on submit, ``task.canceled`` on cancel) and the workers (``task.started``, ``task.progress``,
``task.output``, ``task.succeeded``/``task.failed``). An event is one entry in three Redis streams, under one
id: the process-wide tail every API process reads (``hub.EventHub``), the task's own stream and the account's
stream, both kept for a while so that a client can resume after the id it saw last (``Last-Event-ID``).

Redis is a carrier, not the record: the task row in PostgreSQL is. A stream that lost its events (Redis
flushed, an event published while Redis was down) is completed from the task row (``streams``): a client
always gets the final state of its task and is never left waiting.
"""

from __future__ import annotations

from shared.tasks import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED
from shared.webhooks import TASK_CANCELED, TASK_FAILED, TASK_STARTED, TASK_SUCCEEDED

TASK_QUEUED = "task.queued"
TASK_PROGRESS = "task.progress"
TASK_OUTPUT = "task.output"

EVENT_TYPES = (TASK_QUEUED, TASK_STARTED, TASK_PROGRESS, TASK_OUTPUT, TASK_SUCCEEDED, TASK_FAILED, TASK_CANCELED)

# The task status each event leaves its task in.
STATUS_AFTER = {
    TASK_QUEUED: QUEUED,
    TASK_STARTED: RUNNING,
    TASK_PROGRESS: RUNNING,
    TASK_OUTPUT: RUNNING,
    TASK_SUCCEEDED: SUCCEEDED,
    TASK_FAILED: FAILED,
    TASK_CANCELED: CANCELED,
}
# The event that tells a task reached this status (the one a stream completed from the database sends).
EVENT_FOR_STATUS = {QUEUED: TASK_QUEUED, RUNNING: TASK_STARTED, SUCCEEDED: TASK_SUCCEEDED, FAILED: TASK_FAILED,
                    CANCELED: TASK_CANCELED}  # fmt: skip
TERMINAL_EVENTS = frozenset((TASK_SUCCEEDED, TASK_FAILED, TASK_CANCELED))
