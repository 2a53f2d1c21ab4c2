"""Billing: credit packs sold through Stripe Checkout, orders, refunds of unused credits.

* ``products``       the price list (``products.toml``)
* ``stripe_gateway`` the only module that talks to Stripe
* ``orders``         checkout and the order views
* ``payments``       what a payment, a closed checkout or an outside refund does to an order and the ledger
* ``events``         Stripe webhook deliveries: verify, store once, process in a worker
* ``refunds``        refunds of an order's unused credits through the API
* ``sweeps``         re-delivery of lost work: events, refunds, stale checkouts
"""
