"""Alerts before money runs out: a low-balance threshold per account, and thresholds (percentages) of each key's
period budget. ``settings`` reads and changes them; ``sweep`` finds the crossings and tells people.

Each crossing sends, once, one mail to every owner, admin and billing member of the account, and one signed
webhook event (``account.balance_low`` / ``key.budget_threshold``) to the account's endpoints that list it (the
webhook outbox). "Once" is a conditional UPDATE of the alert's state, so concurrent sweeps alert once; the
balance alert is re-armed when the balance is back at or above the threshold, a budget's when a new period
begins.
"""
