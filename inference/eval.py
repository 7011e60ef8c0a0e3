"""``python -m inference.eval``: the measuring command's name, kept; it runs ``evals.harness``
(the harness sits above the bot, so nothing here imports it)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("evals.harness", run_name="__main__", alter_sys=True)
