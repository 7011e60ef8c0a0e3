"""The message grammar every channel shares.

>>> parse("[db:sales] how many customers?", known={"sales"})
Ask(database='sales', question='how many customers?')
>>> parse("sales: top 5 products", known={"sales"})
Ask(database='sales', question='top 5 products')
>>> parse("note: this is a question", known={"sales"})
Ask(database=None, question='note: this is a question')
>>> parse("admin grant sales #analytics", known=set())
Admin(action='grant', args=('sales', '#analytics'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EXPLICIT = re.compile(r"^\s*\[db:\s*(?P<db>[^\]\s]+)\s*\]\s*(?P<q>.*)$", re.S | re.I)
_PREFIXED = re.compile(r"^\s*(?P<db>[a-z][a-z0-9_-]{0,62})\s*:\s*(?P<q>.+)$", re.S)
ADMIN_ACTIONS = ("register", "list", "describe", "refresh", "remove", "grant", "revoke")


@dataclass(frozen=True)
class Ask:
    database: str | None
    question: str


@dataclass(frozen=True)
class Use:
    database: str


@dataclass(frozen=True)
class Databases:
    pass


@dataclass(frozen=True)
class Help:
    topic: str = ""


@dataclass(frozen=True)
class Admin:
    action: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Empty:
    pass


Command = Ask | Use | Databases | Help | Admin | Empty


def parse(text: str, *, known: set[str] | frozenset[str]) -> Command:
    stripped = text.strip()
    if not stripped:
        return Empty()
    words = stripped.split()
    head = words[0].lower()
    if head == "help" and len(words) <= 2:
        return Help(words[1].lower() if len(words) == 2 else "")
    if head == "databases" and len(words) == 1:
        return Databases()
    if head == "use" and len(words) == 2:
        return Use(words[1])
    if head == "admin":
        action = words[1].lower() if len(words) > 1 else ""
        if action == "register" and len(words) >= 4:
            # admin register NAME URL [description …]: the description keeps its spaces
            description = stripped.split(None, 4)[4] if len(words) > 4 else ""
            return Admin("register", (words[2], words[3], description))
        return Admin(action, tuple(words[2:]))
    explicit = _EXPLICIT.match(stripped)
    if explicit:
        return Ask(explicit["db"], explicit["q"].strip())
    prefixed = _PREFIXED.match(stripped)
    if prefixed and prefixed["db"] in known:
        return Ask(prefixed["db"], prefixed["q"].strip())
    return Ask(None, stripped)
