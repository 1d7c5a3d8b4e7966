"""Encoders behind one small interface (see :func:`vidsearch.models.load_encoder`)."""
