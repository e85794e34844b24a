"""asrd: a local speech-to-text daemon that gives audio and video files transcripts and subtitles."""

__version__ = "0.1.0"
