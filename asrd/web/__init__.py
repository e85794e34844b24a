"""The dashboard: a Starlette app on its own thread inside the daemon (``[web] enabled = true``).

Imported only when enabled (extra ``asrd[web]``). It reads the daemon through ``port.DaemonPort`` and
changes nothing itself: actions are queued to the daemon loop (``asrd.control.actions``).
``hook`` (no web imports) is what the daemon calls; ``twin.MemoryPort`` stands in for it in tests.
"""
