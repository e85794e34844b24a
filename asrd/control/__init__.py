"""The daemon process: everything ``asrd run`` does except recognising speech.

A file's way through this room::

    watch.py     inotify/polling events and scans -> candidate paths (ignore.py filters names;
                 mountcache.py warns when a mount caches longer than the settle time)
    settle.py    "is it completely written?" - stable size and mtime, looked at twice
    intake.py    a settled path -> a new job, a renamed finished file (its sidecars follow), or nothing
    jobs.py      the durable queue: records and the JobStore protocol; jobs_base.py its rules (once),
                 jobs_sqlite.py (SQLite, WAL; jobs_schema.py its tables, migrations and rows) and
                 jobs_memory.py (the twin); fingerprint.py
    schedule.py  [schedule]: holds backlog until its window and everything during quiet hours (through
                 the job's not_before), a CPU-only spec while quiet; schedule_series.py reads the price or
                 carbon series on a helper thread; planview.py is ``asrd plan``; wait_log.py keeps each
                 job's class and the signal when it was held and let go (beside the energy log)
    dispatch.py  claims jobs, places them on workers, failure policy, writes sidecars; inboxviews.py:
                 each inbox's effective settings and the worker's EngineSpec, from the config
    pool.py      the model workers, one per device (gpus.py finds GPUs without torch): backoff,
                 idle unload, leases
    daemon.py    Daemon: start/step(now)/stop tying them together; timers.py: rescans, idle unload, retries
                 watched.py: the watched folders (watcher, ignore rules, settle tracker each)
    driver.py    ``asrd run``: the real clocks, signals and watchdog around a Daemon

After a file is done::

    library.py   the transcript index and search (library_sqlite.py FTS5, library_memory.py twin)
    notify.py    durable notifications (notify_send.py: the helper process that sends them), report.py
    mediaservers.py  Jellyfin/Emby/Plex refresh; metrics.py: Prometheus; energy_book.py, energy_log.py

Around them: service.py (sd_notify, signals), statedir.py (the lock), status.py (``asrd status``),
actions.py (what the dashboard asks of the loop), inboxctl.py, reconcile.py, runoptions.py,
apiinbox.py (the Bazarr/OpenAI uploads' private inbox), speed.py, leftovers.py.

Rule: nothing here imports torch, funasr, numpy, PyAV, soundfile or any recognizer module. This room
may import ``asrd.config``, ``asrd.records``, ``asrd.media``, ``asrd.logs``, ``asrd.output``,
``asrd.energy`` and the worker's daemon-side modules (``asrd.worker.protocol``, ``asrd.worker.handle``).
tests/unit/test_boundary.py checks it.
"""
