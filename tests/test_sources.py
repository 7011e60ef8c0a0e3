"""Model sources: parsing, the embedded model's verification, and hub downloads that are
never used half-finished."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference import sources
from inference.sources import SourceError, parse_source, resolve


@pytest.mark.parametrize(
    "text",
    ["hub:Qwen/Qwen1.5-1.8B-Chat", "hub:Qwen/Qwen1.5-1.8B-Chat@", "hub:noslash@abc", "pypi:other-model", ""],
)
def test_bad_sources(text: str) -> None:
    with pytest.raises(SourceError):
        parse_source(text)


def test_local_sources(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert resolve(parse_source(str(tmp_path / "m")), cache_dir=tmp_path / "cache") == tmp_path / "m"
    with pytest.raises(SourceError):
        resolve(parse_source(str(tmp_path / "missing")), cache_dir=tmp_path / "cache")


def test_corrupt_embedded_parts_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "part01.bin"
    fake.write_bytes(b"not the model")
    monkeypatch.setattr(sources, "embedded_parts", lambda: [fake])
    with pytest.raises(SourceError, match="sha256"):
        sources.join_embedded_gguf(tmp_path / "gguf")
    assert list((tmp_path / "gguf").iterdir()) == []


def test_embedded_gguf_is_verified(embedded_model: Path) -> None:
    gguf = sources.join_embedded_gguf(embedded_model.parents[1] / "gguf")
    assert gguf.stat().st_size == 491_400_064
    assert (embedded_model / ".complete").is_file() and (embedded_model / "model.safetensors").is_file()


def test_interrupted_download_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    calls: list[dict[str, object]] = []

    def interrupted(**kwargs: object) -> str:
        calls.append(kwargs)
        Path(str(kwargs["local_dir"]), "config.json").write_text("{}")  # half a download
        raise ConnectionError("network went away")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", interrupted)
    source = parse_source("hub:org/model@0123abcd")
    with pytest.raises(SourceError, match="could not download"):
        resolve(source, cache_dir=tmp_path, hf_token="hf_secret")
    assert calls[0]["revision"] == "0123abcd" and calls[0]["repo_id"] == "org/model"
    final = tmp_path / "hub" / "org--model@0123abcd"
    assert not final.exists()

    def complete(**kwargs: object) -> str:
        Path(str(kwargs["local_dir"]), "config.json").write_text("{}")
        return str(kwargs["local_dir"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", complete)
    assert resolve(source, cache_dir=tmp_path) == final and (final / ".complete").is_file()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", interrupted)
    assert resolve(source, cache_dir=tmp_path) == final  # complete: no second download
