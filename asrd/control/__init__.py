"""The daemon process: everything ``asrd run`` does except recognising speech.

A file's way through this room::

    watch.py    inotify/polling events and scans -> candidate paths (ignore.py filters names)
    settle.py   "is it completely written?" - stable size and mtime, looked at twice
    jobs.py     the durable queue (jobs_sqlite.py: SQLite, WAL); one row per source file
    intake.py   a settled path -> a new job, a renamed finished file (its sidecars follow), or nothing
    dispatch.py claims jobs, keeps the model worker busy, classifies failures, writes sidecars
    daemon.py   Daemon: start/step(now)/stop tying them together; timers.py: rescans, idle unload, retries
    driver.py   ``asrd run``: the real clocks, signals and watchdog around a Daemon (start/turn/shutdown)
    service.py  sd_notify, signals; statedir.py: the lock; status.py: what ``asrd status`` shows

Rule: nothing here imports torch, funasr, numpy, PyAV, soundfile or any recognizer module. This room
may import ``asrd.config``, ``asrd.records``, ``asrd.media``, ``asrd.logs``, ``asrd.output`` and the
worker's daemon-side modules (``asrd.worker.protocol``, ``asrd.worker.handle``). A test checks it.
"""
