"""Generation tasks: submit, read, cancel (API side) and claim, execute, settle (worker side).

State machine (every path ends in exactly one terminal state, with the credit hold resolved in the same
transaction as the status change):

    queued --claim--> running --complete--> succeeded   (hold posted: actual cost charged, rest released)
      |                  |------fail------> failed      (hold voided)
      |------------------+-----cancel-----> canceled    (hold voided)
      |------fail (deadline, model gone)--> failed
"""

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"

STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED)
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELED)
