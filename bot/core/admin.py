"""Admin commands over chat: register, list, describe, refresh, remove, grant, revoke, functions,
and the glossary (define, describe a column, hide, unhide, undefine, glossary).

Registration validates the URL and connects before anything is stored; replies never
echo a URL with its password.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core import examples
from bot.core.grammar import Admin
from bot.core.ports import BotState
from bot.core.text import clean_text, one_line
from bot.core.types import VerifiedExample, Where
from chat2sql import errors, messages
from chat2sql.tokens import reject_control_tokens
from schemas import guard
from schemas.glossary import GlossaryEntry, GlossaryUnchanged
from schemas.registry import RegisteredDatabase, Registry, validate_function
from schemas.render import render_schema


@dataclass(frozen=True, kw_only=True)
class AdminDesk:
    """What the admin commands write to: the registry itself (registration connects and
    introspects: every call runs in a worker thread) and the bot's state."""

    registry: Registry
    state: BotState


@dataclass(frozen=True, kw_only=True)
class _Call:
    desk: AdminDesk
    args: tuple[str, ...]
    where: Where
    text: str  # the whole message: ``example add`` reads its question and SQL from it

    @property
    def by(self) -> str:
        return f"{self.where.platform}:{self.where.user_id}"

    async def entry(self, name: str) -> RegisteredDatabase:
        return await asyncio.to_thread(self.desk.registry.get, name)


# A command's handler: its reply, or None when its arguments fit none of its forms.
_Handler = Callable[[_Call], Awaitable[str | None]]


async def run_admin(desk: AdminDesk, command: Admin, where: Where, text: str = "") -> str:
    """One admin command (the caller checked that ``where.user_id`` is an admin)."""
    handler = COMMANDS.get(command.action)
    reply = await handler(_Call(desk=desk, args=command.args, where=where, text=text)) if handler else None
    if reply is None:
        raise errors.UnknownCommand(messages.ADMIN_USAGE)
    return reply


async def _examples(call: _Call) -> str | None:
    if len(call.args) != 1:
        return None
    entry = await call.entry(call.args[0])
    await examples.current(call.desk.state, entry)  # re-checks after a schema change
    found = await call.desk.state.examples(entry.name)
    if not found:
        return messages.no_examples(entry.name)
    return "\n".join(_example_line(e) for e in found)


async def _example(call: _Call) -> str | None:
    args = call.args
    if args and args[0].lower() == "add":
        return await _add_example(call)
    if len(args) == 2 and args[0].lower() == "remove" and args[1].lstrip("#").isdigit():
        example_id = int(args[1].lstrip("#"))
        removed = await call.desk.state.remove_example(example_id)
        if removed is None:
            return messages.no_example(example_id)
        return messages.example_removed(removed.id, removed.database)
    return None


async def _register(call: _Call) -> str | None:
    if len(call.args) != 3:
        return None
    name, url, description, allow_privileged = _register_args(*call.args)
    entry = await asyncio.to_thread(
        lambda: call.desk.registry.add(
            name,
            url,
            description=one_line(description),  # shown in `databases`: one plain line
            registered_by=call.by,
            allow_privileged=allow_privileged,
        )
    )
    await call.desk.state.set_origin(entry.name, platform=call.where.platform, workspace=call.where.workspace)
    note = ""
    if entry.account is not None and entry.dialect != "sqlite":
        note = messages.account_note(entry.account.summary(), privileged=entry.account.privileged)
    return messages.registered(entry.name, entry.dialect, len(entry.schema.tables)) + note


async def _functions(call: _Call) -> str | None:
    args = call.args
    if len(args) == 1:
        entry = await call.entry(args[0])
        return messages.allowed_functions(entry.name, entry.allowed_functions)
    if len(args) >= 3 and args[1].lower() in ("allow", "disallow"):
        name, verb, functions = args[0], args[1].lower(), args[2:]
        entry = await call.entry(name)
        named = {validate_function(f) for f in functions}
        current = set(entry.allowed_functions)
        wanted = current | named if verb == "allow" else current - named
        entry = await asyncio.to_thread(call.desk.registry.set_allowed_functions, name, wanted)
        return messages.allowed_functions(entry.name, entry.allowed_functions)
    return None


async def _list(call: _Call) -> str | None:
    if call.args:
        return None
    entries = await asyncio.to_thread(call.desk.registry.list)
    if not entries:
        return messages.user_message(errors.NoDatabases())
    return "\n".join(
        f"• `{e.name}` ({e.dialect}, {len(e.schema.tables)} tables) {e.url_masked}"
        + (f" — {one_line(e.description)}" if e.description else "")
        for e in entries
    )


async def _describe(call: _Call) -> str | None:
    if len(call.args) == 3:  # ``describe NAME TABLE.COLUMN => text``: the glossary's
        return await _glossary(call, "describe")
    if len(call.args) != 1:
        return None
    return render_schema((await call.entry(call.args[0])).schema)


async def _refresh(call: _Call) -> str | None:
    if len(call.args) != 1:
        return None
    entry, changed = await asyncio.to_thread(call.desk.registry.refresh, call.args[0])
    return messages.refreshed(entry.name, len(entry.schema.tables), changed)


async def _remove(call: _Call) -> str | None:
    if len(call.args) != 1:
        return None
    await asyncio.to_thread(call.desk.registry.remove, call.args[0])
    await call.desk.state.forget(call.args[0])
    return messages.removed(call.args[0])


def _access(grant: bool) -> _Handler:
    async def change(call: _Call) -> str | None:
        if len(call.args) != 2:
            return None
        name, channel = call.args
        await call.entry(name)  # UnknownDatabase
        where = call.where
        target = Where(platform=where.platform, workspace=where.workspace, channel=channel, user_id=where.user_id)
        await (call.desk.state.grant if grant else call.desk.state.revoke)(name, target)
        return messages.granted(name, channel, grant)

    return change


def _glossary_command(action: str) -> _Handler:
    async def run(call: _Call) -> str | None:
        return await _glossary(call, action)

    return run


async def _glossary(call: _Call, action: str) -> str | None:
    """``define``, ``describe NAME TABLE.COLUMN => text``, ``hide``, ``unhide``, ``undefine``,
    ``glossary NAME [history]``; every refusal changes nothing."""
    glossary, args, by = call.desk.registry.glossary, call.args, call.by
    try:
        match action, len(args):
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
            case (("unhide" | "undefine"), 2):
                removing = "hidden" if action == "unhide" else None
                await asyncio.to_thread(glossary.remove, args[0], removing, args[1], by=by)
                return messages.glossary_removed(args[0], args[1], hidden=action == "unhide")
            case "glossary", 1:
                found = await call.entry(args[0])
                return _glossary_listing(found.name, await asyncio.to_thread(glossary.entries, found.name))
            case "glossary", 2 if args[1].lower() == "history":
                found = await call.entry(args[0])
                versions = await asyncio.to_thread(glossary.history, found.name)
                return _glossary_listing(found.name, versions, history=True)
    except GlossaryUnchanged as same:  # not a failure: the admin's definition is the one in force
        return same.message
    return None


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


async def _add_example(call: _Call) -> str:
    """``admin example add NAME QUESTION => SQL``: kept only if the SQL passes the guard."""
    match = _EXAMPLE_ADD.match(call.text)
    if match is None:
        raise errors.UnknownCommand(messages.ADMIN_USAGE)
    entry = await call.entry(match["db"])
    question, sql = one_line(match["question"]), clean_text(match["sql"]).strip().rstrip(";").strip()
    try:  # an example goes into every similar question's prompt, where a control token fails them all
        reject_control_tokens(question)
        reject_control_tokens(sql)
    except ValueError as err:
        raise errors.InvalidQuestion(str(err)) from None
    verdict = await asyncio.to_thread(guard.check, sql, entry.schema, allowed_functions=entry.allowed_functions)
    if not verdict.ok:
        raise errors.GuardRejected(str(verdict.rule), str(verdict.reason))
    example_id = await call.desk.state.add_example(
        database=entry.name,
        question=question,
        sql=sql,
        source="admin",
        created_by=call.by,
        schema_hash=entry.schema_hash,
    )
    return messages.example_added(example_id, entry.name)


def _example_line(e: VerifiedExample) -> str:
    aside = f" — set aside: {e.reason}" if e.status == "set_aside" else ""
    return f"• #{e.id} ({e.source}) {e.question} → `{e.sql}`{aside}"


# The admin commands, by the word after ``admin`` (the grammar: ``bot.core.grammar``).
COMMANDS: dict[str, _Handler] = {
    "register": _register,
    "list": _list,
    "describe": _describe,
    "refresh": _refresh,
    "remove": _remove,
    "grant": _access(grant=True),
    "revoke": _access(grant=False),
    "functions": _functions,
    "examples": _examples,
    "example": _example,
    **{action: _glossary_command(action) for action in ("define", "undefine", "hide", "unhide", "glossary")},
}
