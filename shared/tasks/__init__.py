"""Generation tasks: submit, read, cancel (API side) and claim, execute, settle (worker side).

State machine (every path ends in exactly one terminal state, with the credit hold resolved in the same
transaction as the status change):

    queued --claim--> running --complete--> succeeded   (hold posted: actual cost charged, rest released)
      |                  |------fail------> failed      (hold voided)
      |------------------+-----cancel-----> canceled    (hold voided)
      |------fail (deadline, model gone)--> failed
"""

from typing import Literal, get_args

TaskStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]  # as the API shows it

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"

STATUSES: tuple[str, ...] = get_args(TaskStatus)
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELED)
