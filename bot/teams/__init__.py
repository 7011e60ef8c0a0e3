"""Microsoft Teams, on the Microsoft 365 Agents SDK: ``TeamsPlatform`` in ``bot.teams.app``.

This package's ``__init__`` imports nothing from the SDK, so the migrations can map
``bot.teams.store``'s tables without loading it.
"""
