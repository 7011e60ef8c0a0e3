"""Typed errors with one root.

Errors carry facts, never secrets. ``messages.user_message`` turns any of them into the text a
person sees: from its facts, or, for a ``UserFacingError``, from the sentence its ``message``
picks there.
"""

from __future__ import annotations


class Chat2SQLError(Exception):
    """Root of every error chat2sql raises on purpose."""


class UserFacingError(Chat2SQLError):
    """An error whose ``message`` picks its safe sentence from ``chat2sql.messages`` (no secrets,
    no driver text; tests/test_messages.py keeps the text there); ``messages.user_message``
    shows it as it is."""

    @property
    def message(self) -> str:
        raise NotImplementedError


class RegistryError(Chat2SQLError):
    """A registry operation was refused."""


class InvalidName(RegistryError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class UnknownDatabase(RegistryError):
    """``known``: every registered name, or with ``here`` only those usable where it was asked."""

    def __init__(self, name: str, known: tuple[str, ...] = (), *, here: bool = False) -> None:
        super().__init__(name)
        self.name = name
        self.known = known
        self.here = here


class DuplicateDatabase(RegistryError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class InvalidURL(RegistryError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedDialect(RegistryError):
    def __init__(self, backend: str) -> None:
        super().__init__(backend)
        self.backend = backend


class ConnectionFailed(RegistryError):
    """The target database could not be reached or introspected.

    ``detail`` is already redacted: it never holds a password.
    """

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(name, detail)
        self.name = name
        self.detail = detail


class PrivilegedAccount(RegistryError):
    """The registered account could do more than read (superuser, server files);
    ``findings`` are catalogue facts (role and privilege names), never secrets."""

    def __init__(self, name: str, findings: tuple[str, ...]) -> None:
        super().__init__(name, findings)
        self.name = name
        self.findings = findings


class InvalidFunctionName(RegistryError):
    def __init__(self, function: str) -> None:
        super().__init__(function)
        self.function = function


class MissingSecretKey(RegistryError):
    pass


class WrongSecretKey(RegistryError):
    pass


class GuardRejected(Chat2SQLError):
    """The SQL guard refused a statement; ``rule`` names the rule that did."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(rule, reason)
        self.rule = rule
        self.reason = reason


class PreviewError(Chat2SQLError):
    pass


class PreviewTimeout(PreviewError):
    """The preview passed its limit; ``elapsed_s`` is how long it really ran, measured by the
    client (the limit when unknown)."""

    def __init__(self, timeout_s: float, elapsed_s: float | None = None) -> None:
        super().__init__(timeout_s)
        self.timeout_s = timeout_s
        self.elapsed_s = timeout_s if elapsed_s is None else elapsed_s


class PreviewTooLarge(PreviewError):
    """One value or the result as a whole outgrew what a preview may hold in memory."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(limit_bytes)
        self.limit_bytes = limit_bytes


class DatabaseUnreachable(PreviewError):
    """The registered database could not be reached (the details stay in the log)."""


class PreviewFailed(PreviewError):
    """The database refused or failed the query; ``detail`` is redacted."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BotError(Chat2SQLError):
    """A question or command the bot cannot act on, for a reason the user can fix."""


class InvalidQuestion(BotError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoDatabases(BotError):
    pass


class NeedDatabase(BotError):
    def __init__(self, choices: tuple[str, ...]) -> None:
        super().__init__(choices)
        self.choices = choices


class Unmatched(BotError):
    """The question names nothing in the database's schema: ask which data it means."""

    def __init__(self, database: str, tables: tuple[str, ...], other_databases: tuple[str, ...] = ()) -> None:
        super().__init__(database, tables, other_databases)
        self.database = database
        self.tables = tables
        self.other_databases = other_databases


class NotAllowedHere(BotError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class RateLimited(BotError):
    def __init__(self, retry_after_s: float, scope: str) -> None:
        super().__init__(retry_after_s, scope)
        self.retry_after_s = retry_after_s
        self.scope = scope


class NothingAllowedHere(BotError):
    pass


class AdminOnly(BotError):
    pass


class UnknownCommand(BotError):
    def __init__(self, usage: str) -> None:
        super().__init__(usage)
        self.usage = usage
