"""Admin commands over chat: register, list, describe, refresh, remove, grant, revoke, functions,
and the glossary (define, describe a column, hide, unhide, undefine, glossary).

Registration validates the URL and connects before anything is stored; replies never
echo a URL with its password.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from bot.core import examples
from bot.core.grammar import Admin
from bot.core.text import clean_text, one_line
from bot.store import VerifiedExample, Where
from chat2sql import errors, messages
from chat2sql.tokens import reject_control_tokens
from schemas import guard
from schemas.glossary import GlossaryEntry, GlossaryUnchanged
from schemas.registry import validate_function
from schemas.render import render_schema

if TYPE_CHECKING:
    from bot.core.assistant import Assistant


async def run_admin(assistant: Assistant, command: Admin, where: Where, text: str = "") -> str:
    registry, store = assistant.registry, assistant.store
    args = command.args
    if command.action in _GLOSSARY_ACTIONS or (command.action == "describe" and len(args) == 3):
        return await _glossary(assistant, command, where)
    match command.action, len(args):
        case "examples", 1:
            entry = registry.get(args[0])
            await asyncio.to_thread(examples.current, store, entry)  # re-checks after a schema change
            found = store.examples(entry.name)
            if not found:
                return messages.no_examples(entry.name)
            return "\n".join(_example_line(e) for e in found)
        case "example", n if n >= 1 and args[0].lower() == "add":
            return await _add_example(assistant, text, where)
        case "example", 2 if args[0].lower() == "remove" and args[1].lstrip("#").isdigit():
            removed = store.remove_example(int(args[1].lstrip("#")))
            if removed is None:
                return messages.no_example(int(args[1].lstrip("#")))
            return messages.example_removed(removed.id, removed.database)
        case "register", 3:
            name, url, description, allow_privileged = _register_args(*args)
            entry = await asyncio.to_thread(
                registry.add,
                name,
                url,
                description=one_line(description),  # shown in `databases`: one plain line
                registered_by=f"{where.platform}:{where.user_id}",
                allow_privileged=allow_privileged,
            )
            store.set_origin(entry.name, platform=where.platform, workspace=where.workspace)
            note = ""
            if entry.account is not None and entry.dialect != "sqlite":
                note = messages.account_note(entry.account.summary(), privileged=entry.account.privileged)
            return messages.registered(entry.name, entry.dialect, len(entry.schema.tables)) + note
        case "functions", 1:
            entry = registry.get(args[0])
            return messages.allowed_functions(entry.name, entry.allowed_functions)
        case "functions", n if n >= 3 and args[1].lower() in ("allow", "disallow"):
            name, verb, functions = args[0], args[1].lower(), args[2:]
            entry = registry.get(name)
            named = {validate_function(f) for f in functions}
            current = set(entry.allowed_functions)
            wanted = current | named if verb == "allow" else current - named
            entry = await asyncio.to_thread(registry.set_allowed_functions, name, wanted)
            return messages.allowed_functions(entry.name, entry.allowed_functions)
        case "list", 0:
            entries = registry.list()
            if not entries:
                return messages.user_message(errors.NoDatabases())
            return "\n".join(
                f"• `{e.name}` ({e.dialect}, {len(e.schema.tables)} tables) {e.url_masked}"
                + (f" — {one_line(e.description)}" if e.description else "")
                for e in entries
            )
        case "describe", 1:
            return render_schema(registry.get(args[0]).schema)
        case "refresh", 1:
            entry, changed = await asyncio.to_thread(registry.refresh, args[0])
            return messages.refreshed(entry.name, len(entry.schema.tables), changed)
        case "remove", 1:
            registry.remove(args[0])
            store.forget(args[0])
            return messages.removed(args[0])
        case ("grant" | "revoke") as action, 2:
            name, channel = args
            registry.get(name)
            target = Where(platform=where.platform, workspace=where.workspace, channel=channel, user_id=where.user_id)
            (store.grant if action == "grant" else store.revoke)(name, target)
            return messages.granted(name, channel, action == "grant")
    raise errors.UnknownCommand(messages.ADMIN_USAGE)


_GLOSSARY_ACTIONS = frozenset({"define", "undefine", "hide", "unhide", "glossary"})


async def _glossary(assistant: Assistant, command: Admin, where: Where) -> str:
    """``define``, ``describe NAME TABLE.COLUMN => text``, ``hide``, ``unhide``, ``undefine``,
    ``glossary NAME [history]``; every refusal changes nothing."""
    glossary, args, by = assistant.registry.glossary, command.args, f"{where.platform}:{where.user_id}"
    try:
        match command.action, len(args):
            case "define", 4:
                database, kind, name, definition = args
                entry = await asyncio.to_thread(glossary.define, database, kind or None, name, definition, by=by)
                return messages.glossary_defined(entry.database, entry.kind, entry.name, entry.version)
            case "describe", 3:
                database, column, text = args
                entry = await asyncio.to_thread(glossary.define, database, "column", column, text, by=by)
                return messages.glossary_defined(entry.database, entry.kind, entry.name, entry.version)
            case "hide", 2:
                entry = await asyncio.to_thread(glossary.define, args[0], "hidden", args[1], "", by=by)
                return messages.glossary_defined(entry.database, entry.kind, entry.name, entry.version)
            case ("unhide" | "undefine") as action, 2:
                removing = "hidden" if action == "unhide" else None
                await asyncio.to_thread(glossary.remove, args[0], removing, args[1], by=by)
                return messages.glossary_removed(args[0], args[1], hidden=action == "unhide")
            case "glossary", 1:
                entry_ = assistant.registry.get(args[0])
                return _glossary_listing(entry_.name, await asyncio.to_thread(glossary.entries, entry_.name))
            case "glossary", 2 if args[1].lower() == "history":
                entry_ = assistant.registry.get(args[0])
                versions = await asyncio.to_thread(glossary.history, entry_.name)
                return _glossary_listing(entry_.name, versions, history=True)
    except GlossaryUnchanged as same:  # not a failure: the admin's definition is the one in force
        return same.message
    raise errors.UnknownCommand(messages.ADMIN_USAGE)


def _glossary_listing(database: str, entries: tuple[GlossaryEntry, ...], *, history: bool = False) -> str:
    if not entries:
        return messages.glossary_empty(database)
    lines = [messages.glossary_line(e.kind, e.name, e.definition, e.version, active=e.active) for e in entries]
    return "\n".join([messages.glossary_title(database, len(entries), history=history), *lines])


ALLOW_PRIVILEGED = "--allow-privileged"
_ALLOW_FLAG = re.compile(rf"(?:^|\s){re.escape(ALLOW_PRIVILEGED)}(?=\s|$)")


def _register_args(name: str, url: str, description: str) -> tuple[str, str, str, bool]:
    """``admin register NAME URL [description] [--allow-privileged]``; the flag may come
    anywhere after the name and is taken out of the description."""
    allow = url == ALLOW_PRIVILEGED or _ALLOW_FLAG.search(description) is not None
    description = _ALLOW_FLAG.sub(" ", description).strip()
    if url == ALLOW_PRIVILEGED:
        rest = description.split(None, 1)
        if not rest:
            raise errors.UnknownCommand(messages.ADMIN_USAGE)
        url, description = rest[0], rest[1] if len(rest) > 1 else ""
    return name, url, description, allow


_EXAMPLE_ADD = re.compile(
    r"^\s*admin\s+example\s+add\s+(?P<db>\S+)\s+(?P<question>.+?)\s+=>\s+(?P<sql>.+)$", re.S | re.I
)


async def _add_example(assistant: Assistant, text: str, where: Where) -> str:
    """``admin example add NAME QUESTION => SQL``: kept only if the SQL passes the guard."""
    match = _EXAMPLE_ADD.match(text)
    if match is None:
        raise errors.UnknownCommand(messages.ADMIN_USAGE)
    entry = assistant.registry.get(match["db"])
    question, sql = one_line(match["question"]), clean_text(match["sql"]).strip().rstrip(";").strip()
    try:  # an example goes into every similar question's prompt, where a control token fails them all
        reject_control_tokens(question)
        reject_control_tokens(sql)
    except ValueError as err:
        raise errors.InvalidQuestion(str(err)) from None
    verdict = await asyncio.to_thread(guard.check, sql, entry.schema, allowed_functions=entry.allowed_functions)
    if not verdict.ok:
        raise errors.GuardRejected(str(verdict.rule), str(verdict.reason))
    example_id = assistant.store.add_example(
        database=entry.name,
        question=question,
        sql=sql,
        source="admin",
        created_by=f"{where.platform}:{where.user_id}",
        schema_hash=entry.schema_hash,
    )
    return messages.example_added(example_id, entry.name)


def _example_line(e: VerifiedExample) -> str:
    aside = f" — set aside: {e.reason}" if e.status == "set_aside" else ""
    return f"• #{e.id} ({e.source}) {e.question} → `{e.sql}`{aside}"
