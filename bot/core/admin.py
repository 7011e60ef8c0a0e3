"""Admin commands over chat: register, list, describe, refresh, remove, grant, revoke.

Registration validates the URL and connects before anything is stored; replies never
echo a URL with its password.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.core.grammar import Admin
from bot.store import Where
from chat2sql import errors, messages
from schemas.render import render_schema

if TYPE_CHECKING:
    from bot.core.assistant import Assistant


async def run_admin(assistant: Assistant, command: Admin, where: Where) -> str:
    registry, store = assistant.registry, assistant.store
    args = command.args
    match command.action, len(args):
        case "register", 3:
            name, url, description = args
            entry = await asyncio.to_thread(
                registry.add,
                name,
                url,
                description=description,
                registered_by=f"{where.platform}:{where.user_id}",
            )
            store.set_origin(entry.name, platform=where.platform, workspace=where.workspace)
            return messages.registered(entry.name, entry.dialect, len(entry.schema.tables))
        case "list", 0:
            entries = registry.list()
            if not entries:
                return messages.user_message(errors.NoDatabases())
            return "\n".join(
                f"• `{e.name}` ({e.dialect}, {len(e.schema.tables)} tables) {e.url_masked}"
                + (f" — {e.description}" if e.description else "")
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
