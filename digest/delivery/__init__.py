"""Delivery backends. See :mod:`digest.delivery.base` for the contract and
:mod:`digest.delivery.registry` for the backends by name.

This package imports none of its modules: a dry run, which connects to nothing, loads no
backend (nor their HTTP and DKIM libraries); the backend is imported when it is made."""
