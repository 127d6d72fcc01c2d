"""The benchmark harness: ``python -m bench`` (``make bench``).

It drives sirsync only through its public surfaces (the ``sirsync sync`` command with ``SIRSYNC_*``
settings, or ``build_runtime`` and ``cycle.run()`` on the sandbox's clock) and counts API calls with the
sandbox's own per-route counters, so that it measures a later, concurrent sirsync unchanged.
"""
