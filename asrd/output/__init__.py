"""From recognised segments to the files people read, without torch or numpy.

    assemble.py   a file's results, in time order, into one ``Transcript``
    textguard.py  guards before anything is written: model tags, runaway repetition, non-speech
    text.py       CJK-aware text helpers shared by the writers (joining, paragraphs, pieces)
    cues.py       subtitle cues cut by token timing; cuerules.py: the rules and their checker
    formats.py    rendering .txt .srt .vtt .json
    sidecars.py   naming, atomic writing next to the source, moving with a renamed source
    ownership.py  proof that asrd wrote a file: user.asrd xattr and/or the job database

The worker assembles transcripts; the daemon renders and writes sidecars (only the daemon writes).
"""
