"""Every sentence chat2sql shows a person lives here.

``user_message`` is the one function that turns an error into what the user sees.
It never includes exception text from a driver, a URL with its password, or a secret.
"""

from __future__ import annotations

from chat2sql import errors

NAME_RULES = "lowercase letters, digits, '-' and '_', starting with a letter, at most 63 characters"


def user_message(err: BaseException) -> str:
    match err:
        case errors.InvalidName(name=name):
            return f"'{name}' is not a valid database name: use {NAME_RULES}."
        case errors.UnknownDatabase(name=name, known=known):
            hint = f" Registered: {', '.join(known)}." if known else " No database is registered yet."
            return f"No database named '{name}' is registered.{hint}"
        case errors.DuplicateDatabase(name=name):
            return f"A database named '{name}' is already registered; remove it first or pick another name."
        case errors.InvalidURL(detail=detail):
            return f"That database URL is not valid: {detail}."
        case errors.UnsupportedDialect(backend=backend):
            return f"'{backend}' databases are not supported; use SQLite, PostgreSQL, MySQL or MariaDB."
        case errors.ConnectionFailed(name=name, detail=detail):
            return f"Could not connect to '{name}': {detail}"
        case errors.MissingSecretKey():
            return (
                "Refusing to store a database password without an encryption key: "
                "set CHAT2SQL_SECRET_KEY (a Fernet key)."
            )
        case errors.WrongSecretKey():
            return (
                "The stored database URL cannot be decrypted: CHAT2SQL_SECRET_KEY is not the key "
                "the registry was written with."
            )
        case errors.GuardRejected(rule=rule, reason=reason):
            return f"The query was refused ({rule}): {reason}"
        case errors.PreviewTimeout(timeout_s=timeout_s):
            return f"The preview was stopped after {timeout_s:g} s; try a narrower question."
        case errors.PreviewFailed(detail=detail):
            return f"The database could not run the query: {detail}"
        case errors.Chat2SQLError() if isinstance(getattr(type(err), "message", None), property):
            # Errors of the worker and its clients carry their own safe sentence.
            return str(err.message)  # type: ignore[attr-defined]
        case _:
            return "Something went wrong on our side; the error has been logged."
