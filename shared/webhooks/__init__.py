"""Webhooks: signed, retried and logged deliveries of task events, and of the account's own alerts.

* Destinations: the account's endpoints (``endpoints.py``: URL, event filter, own ``whsec_`` secret,
  rotation with a grace period, enable/disable) and a task's own ``webhook_url`` (signed with the account's
  signing secret, created on first use).
* Outbox (``outbox.py``): the transaction that moves a task to a terminal state also inserts the event and
  its deliveries, and notifies the workers (PostgreSQL ``NOTIFY``, delivered on commit) which enqueue one
  delivery job each; a sweep enqueues any delivery whose job was lost (``dispatch.py``).
* Delivery (``delivery.py``): a worker job claims the delivery, signs the body per the Standard Webhooks
  specification (``signing.py``), POSTs it through the URL guard, logs the attempt and schedules the next one.
* The log (``log.py``): deliveries and their attempts, listed and retried through the API.
"""

TASK_STARTED = "task.started"
TASK_SUCCEEDED = "task.succeeded"
TASK_FAILED = "task.failed"
TASK_CANCELED = "task.canceled"

# An account's own events (``shared.alerts``): the balance fell below its threshold; a key's spend in its budget
# period crossed a threshold. An endpoint receives them when its ``events`` list them.
ACCOUNT_BALANCE_LOW = "account.balance_low"
KEY_BUDGET_THRESHOLD = "key.budget_threshold"
ACCOUNT_EVENTS = (ACCOUNT_BALANCE_LOW, KEY_BUDGET_THRESHOLD)

EVENT_TYPES = (TASK_STARTED, TASK_SUCCEEDED, TASK_FAILED, TASK_CANCELED, *ACCOUNT_EVENTS)
TERMINAL_EVENTS = (TASK_SUCCEEDED, TASK_FAILED, TASK_CANCELED)
DEFAULT_EVENTS = TERMINAL_EVENTS

# Delay before attempt n (n = 1..8): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
RETRY_SCHEDULE_S = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_S)
