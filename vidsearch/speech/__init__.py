"""What is said in a video (L0): subtitles, audio, speech recognizers, one transcript type.

- :mod:`~vidsearch.speech.transcript`: :class:`Transcript` of timed :class:`Line` s with word times,
  and SRT/WebVTT/JSON export;
- :mod:`~vidsearch.speech.subtitles`: sidecar files and embedded streams;
- :mod:`~vidsearch.speech.audio`: the default audio track at 16 kHz mono;
- :mod:`~vidsearch.speech.backends`: the :class:`Transcriber` protocol, ``open_transcriber``,
  PocketSphinx; :mod:`~vidsearch.speech.whisper`: faster-whisper;
- :mod:`~vidsearch.speech.sources`: the best words a video has.

The package imports nothing heavy itself.
"""
