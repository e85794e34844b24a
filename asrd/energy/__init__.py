"""Energy per transcript: the records the worker sends, grid intensity, and the reports built from them.

Everything here is plain Python the daemon may import. The meters and the ledger that fill these records
run only in the model worker (``asrd.worker.meters``, ``asrd.worker.ledger``): reading NVML keeps a GPU
awake, so the daemon never does.
"""
