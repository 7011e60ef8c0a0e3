"""Who may run admin commands: ``CHAT2SQL_ADMINS=slack:U123,teams:<aad id>,console:*``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Admins:
    pairs: frozenset[tuple[str, str]]

    @classmethod
    def parse(cls, text: str) -> Admins:
        """
        >>> Admins.parse("slack:U1, console:*").allows("console", "anyone")
        True
        >>> Admins.parse("slack:U1").allows("slack", "U2")
        False
        """
        pairs = set()
        for item in text.split(","):
            platform, sep, user = item.strip().partition(":")
            if sep and platform and user:
                pairs.add((platform.strip().lower(), user.strip()))
        return cls(frozenset(pairs))

    def allows(self, platform: str, user_id: str) -> bool:
        platform = platform.lower()
        return (platform, "*") in self.pairs or (platform, user_id) in self.pairs
