"""The evaluation data: a Spider-layout set read and checked (``load_dataset``, its
optional glossary), and one configuration of the assistant to measure (``EvalConfig``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from bot.core.text import one_line
from chat2sql.settings import Settings
from evals.metrics import (
    hardness,
)
from inference.protocol import MAX_SAMPLES

_FLAGS = frozenset({"retry", "examples", "clarify", "values", "glossary", "repairs", "regroup"})
_CONFIG_KEYS = frozenset({"name", "adapter", "prompt_format", "schema_budget", "candidates", "temperature"}) | _FLAGS
GLOSSARY_FILE = "glossary.json"
_TRUE, _FALSE = frozenset({"on", "true", "yes", "1"}), frozenset({"off", "false", "no", "0"})


class EvalError(Exception):
    """A data set or configuration the harness cannot use (the CLI prints it and exits 2)."""


@dataclass(frozen=True, kw_only=True)
class Example:
    db_id: str
    question: str
    query: str
    difficulty: str | None = None


@dataclass(frozen=True, kw_only=True)
class GlossaryItem:
    """One ``glossary.json`` entry, defined in the throw-away registry for ``glossary=on``."""

    db_id: str
    kind: str | None
    name: str
    definition: str


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    name: str = "default"
    adapter: str | None = None
    prompt_format: str = "schema"
    schema_budget: int = 1500
    retry: bool = True
    examples: bool = False
    clarify: bool = False
    candidates: int = 0
    temperature: float = 0.7
    values: bool = True
    glossary: bool = True
    repairs: bool = True
    regroup: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> EvalConfig:
        """The bot's configuration (``bot.wiring.assistant_config``), so a setting that the bot
        reads reaches the harness the same way."""
        from bot.wiring import assistant_config

        config = assistant_config(settings)
        return cls(
            adapter=config.adapter,
            prompt_format=config.prompt_format,
            schema_budget=config.schema_budget_tokens,
            candidates=config.candidates,
            temperature=config.temperature,
            values=config.value_links,
            glossary=config.glossary,
            repairs=config.schema_repairs,
            regroup=config.grouping_repairs,
        )

    def updated(self, spec: str) -> EvalConfig:
        """This configuration with the keys of ``spec`` (a file, or ``key=value,...``) changed.

        >>> EvalConfig().updated("prompt_format=seed, retry=off").retry
        False
        >>> EvalConfig().updated("candidates=4, temperature=0.5, values=off").candidates
        4
        """
        path = Path(spec)
        values: dict[str, Any]
        if path.suffix.lower() in (".json", ".yaml", ".yml") and "=" not in spec:
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
            except (OSError, ValueError) as err:
                raise EvalError(f"cannot read the configuration {spec}: {_reason(err)}") from None
            except yaml.YAMLError as err:
                raise EvalError(f"{spec} is not valid YAML or JSON: {one_line(str(err))}") from None
            if not isinstance(loaded, dict):
                raise EvalError(f"{spec}: a configuration file holds one mapping")
            values = {"name": path.stem, **loaded}
        else:
            values = {}
            for item in filter(None, (p.strip() for p in spec.split(","))):
                key, sep, value = item.partition("=")
                if not sep:
                    raise EvalError(f"{spec!r}: expected key=value pairs or a .json/.yaml file")
                values[key.strip()] = value.strip()
            values.setdefault("name", spec)
        unknown = {str(k) for k in values} - _CONFIG_KEYS
        if unknown:
            raise EvalError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return replace(self, **{k: _coerce(k, v) for k, v in values.items()})


def _coerce(key: str, value: Any) -> Any:
    if key in _FLAGS:
        text = str(value).lower()
        if text not in _TRUE | _FALSE:
            raise EvalError(f"{key} must be on or off, not {value!r}")
        return text in _TRUE
    if key == "schema_budget":
        return _number(key, value, int, low=1, high=None)
    if key == "candidates":
        return _number(key, value, int, low=0, high=MAX_SAMPLES)
    if key == "temperature":
        number = _number(key, value, float, low=None, high=2.0)
        if not number > 0:
            raise EvalError(f"temperature must be above 0 and at most 2, not {value!r}")
        return number
    if key == "adapter":
        return None if value in (None, "", "none", "default") else str(value)
    return str(value)


def _number(key: str, value: Any, kind: type[int] | type[float], *, low: float | None, high: float | None) -> Any:
    """``value`` as ``kind`` within [low, high], or an EvalError that says what is allowed."""
    bounds = (
        f"from {low} to {high}"
        if low is not None and high is not None
        else (f"at least {low}" if low is not None else f"at most {high}")
    )
    expected = f"{key} must be {'a whole number' if kind is int else 'a number'} {bounds}, not {value!r}"
    if isinstance(value, bool):  # YAML's on/off
        raise EvalError(expected)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise EvalError(expected) from None
    if kind is int and isinstance(value, float) and value != number:
        raise EvalError(expected)
    if number != number or (low is not None and number < low) or (high is not None and number > high):
        raise EvalError(expected)  # NaN too
    return number


def _reason(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, IsADirectoryError):
        return "it is a folder"
    if isinstance(err, OSError):
        return one_line(err.strerror or str(err))
    return one_line(str(err))


def read_json(path: Path) -> Any:
    """The content of a JSON file, or an EvalError that says in one line why not."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        raise EvalError(f"cannot read {path}: {_reason(err)}") from None
    try:
        return json.loads(text)
    except ValueError as err:
        raise EvalError(f"cannot read {path}: not valid JSON ({one_line(str(err))})") from None


def _known_databases(folder: Path) -> set[str]:
    """The ``db_id`` of every database ``tables.json`` describes."""
    path = folder / "tables.json"
    tables = read_json(path)
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise EvalError(f"{path}: expected a list of database descriptions")
    known = set()
    for index, table in enumerate(tables):
        db_id = table.get("db_id")
        if not isinstance(db_id, str) or not db_id.strip():
            raise EvalError(f"{path} entry {index}: no db_id")
        known.add(db_id)
    return known


def _text_field(item: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = item.get(key)
    if value is None and optional:
        return None
    if value is None:
        raise EvalError(f"{where}: missing {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise EvalError(f"{where}: {key!r} must be non-empty text")
    return value


def load_dataset(folder: Path, *, limit: int | None = None) -> list[Example]:
    """The questions of ``folder`` (the first ``limit``), checked: every problem is one EvalError."""
    if limit is not None and limit < 1:
        raise EvalError(f"--limit must be at least 1, not {limit}")
    if not folder.is_dir():
        raise EvalError(f"cannot read {folder}: no such folder")
    dev = folder / "dev.json"
    items = read_json(dev)
    known = _known_databases(folder)
    if not isinstance(items, list):
        raise EvalError(f"{dev}: expected a list of questions")
    if not items:
        raise EvalError(f"{dev} has no questions")
    examples = []
    for index, item in enumerate(items[:limit]):
        where = f"{dev} item {index}"
        if not isinstance(item, dict):
            raise EvalError(f"{where}: expected an object with db_id, question and query")
        db_id, question, query = (_text_field(item, key, where) for key in ("db_id", "question", "query"))
        assert db_id is not None and question is not None and query is not None
        level = item.get("difficulty") or item.get("hardness") or None
        if level is not None and not isinstance(level, str):
            raise EvalError(f"{where}: 'difficulty' must be text such as easy, medium, hard or extra")
        if level is None:
            try:
                level = hardness(query)
            except ValueError:
                level = None  # gold SQL that sqlglot cannot read: counted in "all" only
        examples.append(Example(db_id=db_id, question=question, query=query, difficulty=level))
    for db_id in sorted({e.db_id for e in examples}):
        if db_id not in known:
            raise EvalError(f"{db_id} is not in {folder / 'tables.json'}")
        if not database_path(folder, db_id).is_file():
            raise EvalError(
                f"{database_path(folder, db_id)} is missing (the shipped set: python -m inference.eval_samples DIR)"
            )
    return examples


def load_glossary(folder: Path) -> list[GlossaryItem]:
    """``glossary.json`` of ``folder``, checked; empty when there is none."""
    path = folder / GLOSSARY_FILE
    if not path.exists():
        return []
    entries = read_json(path)
    if not isinstance(entries, list):
        raise EvalError(f"{path}: expected a list of entries")
    known = _known_databases(folder)
    out = []
    for index, entry in enumerate(entries):
        where = f"{path} entry {index}"
        if not isinstance(entry, dict):
            raise EvalError(f"{where}: expected an object with db_id, kind, name and definition")
        db_id, name = _text_field(entry, "db_id", where), _text_field(entry, "name", where)
        assert db_id is not None and name is not None
        kind = _text_field(entry, "kind", where, optional=True)
        definition = entry.get("definition", "" if kind == "hidden" else None)
        if not isinstance(definition, str) or (kind != "hidden" and not definition.strip()):
            raise EvalError(f"{where}: 'definition' must be non-empty text")
        if db_id not in known:
            raise EvalError(f"{where}: {db_id} is not in {folder / 'tables.json'}")
        out.append(GlossaryItem(db_id=db_id, kind=kind, name=name, definition=definition))
    return out


def database_path(folder: Path, db_id: str) -> Path:
    return folder / "database" / db_id / f"{db_id}.sqlite"
