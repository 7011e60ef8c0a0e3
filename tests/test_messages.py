"""User-facing text lives in ``chat2sql.messages``: an error's ``message`` only picks a sentence there.

The walk reads every product module's syntax tree, finds the subclasses of ``UserFacingError``
(by base-class name, through any depth of subclassing, across modules), and fails on a string
literal or f-string inside their ``message``: a sentence written there is a sentence
``messages.py`` does not hold. Facts (``self.detail``, a name) may be passed along as they are.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("chat2sql", "schemas", "samples", "inference", "bot", "evals", "deploy")
ROOT_ERROR = "UserFacingError"


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):  # errors.UserFacingError
            names.add(base.attr)
    return names


def _classes(sources: dict[str, str]) -> list[tuple[str, ast.ClassDef]]:
    return [
        (where, node)
        for where, source in sources.items()
        for node in ast.walk(ast.parse(source, filename=where))
        if isinstance(node, ast.ClassDef)
    ]


def _user_facing(classes: list[tuple[str, ast.ClassDef]]) -> list[tuple[str, ast.ClassDef]]:
    """The classes that derive from ``UserFacingError``, directly or not (names resolved loosely:
    a same-named class elsewhere counts too, which only makes the check stricter)."""
    names = {ROOT_ERROR}
    while True:
        more = {node.name for _, node in classes if _base_names(node) & names} - names
        if not more:
            return [(where, node) for where, node in classes if node.name in names]
        names |= more


def _literals(node: ast.AST) -> list[ast.AST]:
    """String literals and f-strings under ``node``, but not its docstring nor a value compared
    with (``self.kind == "hidden"`` is a fact's test, not text); an f-string counts once."""
    body = getattr(node, "body", [])
    docstring = body[0].value if body and isinstance(body[0], ast.Expr) else None
    found: list[ast.AST] = []
    skipped: set[int] = set()
    for child in ast.walk(node):
        if child is docstring or id(child) in skipped:
            continue
        if isinstance(child, ast.Compare):
            skipped.update(id(part) for part in (child.left, *child.comparators) if isinstance(part, ast.Constant))
        elif isinstance(child, ast.JoinedStr):
            skipped.update(id(part) for part in ast.walk(child))
            found.append(child)
        elif isinstance(child, ast.Constant) and isinstance(child.value, str):
            found.append(child)
    return found


def _targets(node: ast.Assign | ast.AnnAssign) -> set[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {t.id for t in targets if isinstance(t, ast.Name)}


def violations(sources: dict[str, str]) -> list[str]:
    """``file:line Class.message: text`` for each sentence written inside a ``message``."""
    out: list[tuple[str, int, str]] = []
    for where, cls in _user_facing(_classes(sources)):
        for item in cls.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == "message":
                spots = _literals(item)
            elif isinstance(item, ast.Assign | ast.AnnAssign) and "message" in _targets(item):
                spots = _literals(item)  # a class attribute ``message = "..."``
            else:
                continue
            out += [(where, s.lineno, f"{cls.name}.message: {ast.unparse(s)[:80]}") for s in spots]
    return [f"{where}:{line} {text}" for where, line, text in sorted(out)]


def _product_sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text()
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_user_facing_errors_take_their_sentences_from_messages() -> None:
    found = violations(_product_sources())
    assert found == [], "move these sentences to chat2sql/messages.py:\n" + "\n".join(found)


def test_the_walk_sees_what_it_should() -> None:
    """The checker itself: it finds the real subclasses, at any depth, and flags what it must."""
    seen = {(where, node.name) for where, node in _user_facing(_classes(_product_sources()))}
    assert ("chat2sql/cache.py", "CacheUnavailable") in seen  # a direct subclass
    assert ("bot/audit.py", "InvalidSince") in seen  # through BotStoreError
    assert ("schemas/glossary.py", "GlossaryUnchanged") in seen  # through GlossaryError, another module's root
    sample = '''
from chat2sql import errors, messages

class Base(errors.UserFacingError):
    pass

class Plain(Base):
    @property
    def message(self) -> str:
        """Docstrings are fine."""
        return messages.CACHE_UNAVAILABLE

class Passed(Base):
    @property
    def message(self) -> str:
        return self.detail

class Written(Base):
    @property
    def message(self) -> str:
        return f"No answer #{self.audit_id}."

class Joined(Base):
    @property
    def message(self) -> str:
        return "; ".join(self.findings)

class Attribute(Base):
    message = "Something."

class Compared(Base):
    @property
    def message(self) -> str:
        return messages.glossary_not_found(self.database, self.name, hidden=self.kind == "hidden")

class Unrelated:
    @property
    def message(self) -> str:
        return "not an error: not checked"
'''
    flagged = violations({"sample.py": sample})
    assert [line.split()[1] for line in flagged] == ["Written.message:", "Joined.message:", "Attribute.message:"]
