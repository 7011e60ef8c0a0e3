"""``python -m deploy.worker [--host H] [--port P]``: the self-hosted worker with the deployment's
file applied. ``CHAT2SQL_DEPLOY_CONFIG`` names the file (the images set ``deploy/config.yaml``)
and ``CHAT2SQL_DEPLOY_PROFILE`` picks its profile; the settings it gives (model, adapters,
batching) reach ``inference.wiring.build_worker_app``, which takes settings as they come.
Without the variable this is ``python -m inference serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fastapi import FastAPI

from chat2sql import log as chat2sql_log
from chat2sql.settings import Settings
from deploy.config import DeployConfigError, settings_with_deploy_config
from inference.engine import GenerationEngine
from inference.wiring import build_worker_app, serve_worker


def build(settings: Settings, *, load_engine: Callable[[], GenerationEngine] | None = None) -> FastAPI:
    """The worker's app, ``settings`` with the deployment's file applied (``DeployConfigError``
    when the file is refused: nothing starts)."""
    return build_worker_app(settings_with_deploy_config(settings), load_engine=load_engine)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    settings = Settings()
    chat2sql_log.configure(settings.log_level, settings.log_format)
    try:
        app = build(settings)
    except DeployConfigError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    serve_worker(app, settings, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
