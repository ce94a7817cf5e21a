"""Compatibility shim: the search space moved to ``ltray.methods.space`` (0.2). A study started
by 0.1 pickled its searcher, and with it ``ltray.space.Space``, in Tune's files; they still
unpickle (Tune's ``ExperimentAnalysis``, a notebook). ``--resume`` no longer reads them."""

from ltray.methods.space import Space, declared_ranges, default_points, split_config  # noqa: F401
