"""Teams: an account (the billing entity that owns the balance, keys, tasks, orders and tickets) has members,
people who sign in as themselves, each with a role (``roles``: the one table of who may do what). Owners and
admins invite people by mail (``invitations``), change roles and remove members (``members``); every such
change, and every key, budget and billing change, is written to the account's audit trail (``audit``)."""
