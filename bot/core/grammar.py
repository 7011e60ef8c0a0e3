"""The message grammar every channel shares.

>>> parse("[db:sales] how many customers?", known={"sales"})
Ask(database='sales', question='how many customers?')
>>> parse("sales: top 5 products", known={"sales"})
Ask(database='sales', question='top 5 products')
>>> parse("note: this is a question", known={"sales"})
Ask(database=None, question='note: this is a question')
>>> parse("admin grant sales #analytics", known=set())
Admin(action='grant', args=('sales', '#analytics'))
>>> parse('admin define sales "active customer" => ordered in the last 90 days', known=set())
Admin(action='define', args=('sales', '', 'active customer', 'ordered in the last 90 days'))
>>> parse("admin define sales metric revenue => SUM(sales.amount)", known=set())
Admin(action='define', args=('sales', 'metric', 'revenue', 'SUM(sales.amount)'))
>>> parse("admin describe sales customers.segment => SMB, Mid-Market or Enterprise", known=set())
Admin(action='describe', args=('sales', 'customers.segment', 'SMB, Mid-Market or Enterprise'))
>>> parse('admin undefine sales "active customer"', known=set())
Admin(action='undefine', args=('sales', 'active customer'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EXPLICIT = re.compile(r"^\s*\[db:\s*(?P<db>[^\]\s]+)\s*\]\s*(?P<q>.*)$", re.S | re.I)
_PREFIXED = re.compile(r"^\s*(?P<db>[a-z][a-z0-9_-]{0,62})\s*:\s*(?P<q>.+)$", re.S)
ADMIN_ACTIONS = ("register", "list", "describe", "refresh", "remove", "grant", "revoke")
GLOSSARY_KINDS = ("term", "metric")
# admin define NAME [term|metric] "a name" => definition; admin describe NAME TABLE.COLUMN => text
_DEFINE = re.compile(
    r"^\s*admin\s+define\s+(?P<db>\S+)(?:\s+(?P<kind>term|metric)(?=\s))?\s*(?P<name>.*?)\s*=>\s*(?P<text>.*)$",
    re.S | re.I,
)
_DESCRIBE = re.compile(r"^\s*admin\s+describe\s+(?P<db>\S+)\s+(?P<name>.*?)\s*=>\s*(?P<text>.*)$", re.S | re.I)
_UNDEFINE = re.compile(r"^\s*admin\s+undefine\s+(?P<db>\S+)\s+(?P<name>.*?)\s*$", re.S | re.I)
_QUOTES = ('"', "'", "“”", "‘’")


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
        glossary = _glossary(action, stripped)
        if glossary is not None:
            return glossary
        return Admin(action, tuple(words[2:]))
    explicit = _EXPLICIT.match(stripped)
    if explicit:
        return Ask(explicit["db"], explicit["q"].strip())
    prefixed = _PREFIXED.match(stripped)
    if prefixed and prefixed["db"] in known:
        return Ask(prefixed["db"], prefixed["q"].strip())
    return Ask(None, stripped)


def _glossary(action: str, text: str) -> Admin | None:
    """The glossary commands whose names and definitions keep their spaces; a quoted name
    (straight or curly quotes, as Slack sends them) is unquoted."""
    if action == "define" and (match := _DEFINE.match(text)):
        kind = (match["kind"] or "").lower()
        return Admin("define", (match["db"], kind, _unquote(match["name"]), match["text"].strip()))
    if action == "describe" and (match := _DESCRIBE.match(text)):
        return Admin("describe", (match["db"], _unquote(match["name"]), match["text"].strip()))
    if action == "undefine" and (match := _UNDEFINE.match(text)):
        return Admin("undefine", (match["db"], _unquote(match["name"])))
    return None


def _unquote(name: str) -> str:
    name = name.strip()
    for quote in _QUOTES:
        if len(name) >= 2 and name[0] == quote[0] and name[-1] == quote[-1]:
            return name[1:-1].strip()
    return name
