"""Compatibility shim: the search space moved to ``ltray.methods.space`` (0.2). Tune pickles a
study's searcher, and with it ``Space``, by reference: a study started before the move names
``ltray.space.Space``, and ``--resume`` must find it here."""

from ltray.methods.space import Space, declared_ranges, default_points, split_config  # noqa: F401
