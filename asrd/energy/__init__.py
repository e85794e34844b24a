"""Energy per transcript: the records the worker sends, grid intensity, and the reports built from them.

Everything here is plain Python the daemon may import. The meters and the ledger that fill these records
run only in the model worker (``asrd.worker.meters``, ``asrd.worker.ledger``): reading NVML keeps a GPU
awake, so the daemon never does.

Scheduling ([schedule]): signals.py parses price/carbon series, feed.py reads them from a file or URL,
hours.py turns local-time spans into intervals, planner.py picks the backlog's window and policy.py
decides which queued files wait (``asrd.control.schedule`` applies it).
"""
