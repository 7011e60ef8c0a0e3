"""Moved to ``tests.support.models``; this path stays while bench/ and test_deploy_modal.py
import it (then delete this file)."""

from tests.support.models import (
    EMBEDDED,
    TEST_CACHE,
    build_gguf_lora,
    build_tiny_adapter,
    build_tiny_model,
    embedded_gguf,
    embedded_model_dir,
)

__all__ = [
    "EMBEDDED",
    "TEST_CACHE",
    "build_gguf_lora",
    "build_tiny_adapter",
    "build_tiny_model",
    "embedded_gguf",
    "embedded_model_dir",
]
