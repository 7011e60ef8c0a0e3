"""The evaluation harness, on top of the whole bot: Spider-layout sets run through the same
core a chat user reaches (``harness``), their metrics (``metrics``), saved reports paired
(``compare``), the shipped sets built from the sample databases (``samples``, ``sets/``) and
recorded model answers replayed (``replay``).

The measuring commands keep their names: ``python -m inference.eval``,
``python -m inference.eval_compare`` and ``python -m inference.eval_samples`` run the modules
here (``inference/eval*.py`` are one-line aliases, nothing in ``inference`` imports this package).
"""
