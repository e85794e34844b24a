"""asrd: a local speech-to-text daemon that gives audio and video files transcripts and subtitles.

Two processes, three rooms. The daemon process (``control/``) watches inboxes, keeps the durable job
queue and never holds a model: it imports no torch, numpy, PyAV or recognizer code. The model lives in
a spawned worker process (``worker/`` plus ``recognizer/``), which exits when idle so the GPU can
power down. What turns results into files people read (``output/``) is pure Python that both sides
may use: the daemon writes sidecars, the worker assembles transcripts.

Module map::

    cli.py            the ``asrd`` command line (entry point)
    config/           the typed configuration tree (TOML + ASRD_* environment): sections, services
    transcribe.py     the in-process runner behind ``asrd transcribe`` and ``asrd bench``
    bench.py          ``asrd bench``: asrd against FunASR's own pipelines
    records.py        frozen records passed between stages (time as integer sample offsets)
    media.py          leaf constants: media extensions, the sidecar temp-file prefix
    logs.py           logging for every asrd process (journal-aware)
    control/          the daemon process: watch -> settle -> jobs -> dispatch -> sidecars
    web/              the dashboard and its APIs: a thread in the daemon, only when [web] is on
    energy/           energy records, grid intensity, reports; series, window planner, schedule policy
    worker/           the model worker process: decode -> VAD -> batch -> recognize
    output/           transcripts into .txt .srt .vtt .json: assembly, text guards, cues, writers
    recognizer/       the recognizer interface, the FunASR engine and its fake twin
    testing/          what exists only for tests and benchmarks (test models, twins, references)
"""

__version__ = "0.1.0"
