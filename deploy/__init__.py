"""Deployment: the deploy config (``config.yaml``), the Modal apps (GPU worker, bot), the
self-hosted Docker images and compose files, and the cost model."""
