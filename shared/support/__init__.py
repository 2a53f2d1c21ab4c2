"""Support tickets: a thread of messages between an account and support staff, with attachments.

* ``tickets``: create, list, read, reply, close and reopen — for the ticket's owner and for staff (role
  ``support`` or ``admin``); another account's ticket is "not found".
* ``attachments``: files checked by their content against an allow-list, capped in size and number, kept in
  storage and served only through the authenticated ticket routes.
* Conduit API keys pasted into a subject, a message, a text attachment or an attachment's file name are
  replaced before anything is stored (``shared.accounts.redaction``), and the author is told to rotate them.

Status: ``open`` (waiting for staff) -> ``pending`` (staff answered, waiting for the user) -> ``closed``; a
message from the user puts a pending ticket back to ``open``; a closed ticket takes no messages until it is
reopened (``open`` again).
"""

CATEGORIES = ("account", "billing", "technical", "product")
STATUSES = ("open", "pending", "closed")
STAFF_ROLES = frozenset({"support", "admin"})
