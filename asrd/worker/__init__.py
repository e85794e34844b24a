"""The model worker process: started with ``spawn`` by the daemon, holds the model, exits when idle.

Daemon side (safe to import from ``control``): ``protocol.py`` (the messages and ``EngineSpec``) and
``handle.py`` (spawning the process and talking to it). Everything else runs inside the worker::

    main.py       the process entry point: load the model, run tasks, report results
    engine.py     many files in flight, their speech batched together
    feeds.py      decode -> resample -> VAD ahead of the model, bounded memory
    audio.py      decoding any file to 16 kHz mono (decoders.py: libsndfile and PyAV backends;
                  rawfile.py: the guarded file under them and the headers asrd reads itself)
    vad.py        webrtc voice activity detection (vad_fsmn.py: FunASR's FSMN-VAD)
    batching.py   which waiting spans form the next batch
    threads.py    how the CPUs are shared between the model and the front end

The recognizers themselves live in ``asrd.recognizer``.
"""
