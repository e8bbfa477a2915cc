"""Creations and tokens: users spend tokens to generate videos, keep them as drafts, publish
some. One implementation, two transports (callables in main.py, the HTTP API).

    document.py   the creation document: states, price, ids, the public view
    create.py     create = charge + record in one transaction, then enqueue the worker
    drafts.py     list, get, delete, publish (owner only)
    worker.py     `creationworker`: generate, then draft or failed + refund
    http_api.py   `generateapi`: the same operations over HTTP

Money (balances, the immutable ledger, refunds exactly once): core/ledger.py. The design:
docs/creations.md.
"""
