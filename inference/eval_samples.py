"""``python -m inference.eval_samples``: the measuring command's name, kept; it runs ``evals.samples``
(the harness sits above the bot, so nothing here imports it)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("evals.samples", run_name="__main__", alter_sys=True)
