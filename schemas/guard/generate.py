"""SQL text out of the AST, in a form every engine of the dialect family runs.

sqlglot's MySQL output targets MySQL 8; MariaDB lacks some of its spellings
(``REGEXP_LIKE``), so MySQL-family output uses the operator forms both accept.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL

from schemas.dialects import Dialect


def _regexp(gen: Any, node: exp.RegexpLike) -> str:
    if node.args.get("flag"):
        return str(gen.function_fallback_sql(node))
    return str(gen.binary(node, "REGEXP"))


class MySQLPortable(MySQL):
    """MySQL 8 and MariaDB 10.x alike."""

    class Generator(MySQL.Generator):  # type: ignore[valid-type,misc]
        TRANSFORMS: ClassVar[dict[type[exp.Expr], Any]] = {
            **MySQL.Generator.TRANSFORMS,
            exp.RegexpLike: _regexp,
        }


def to_sql(tree: exp.Expr, dialect: Dialect) -> str:
    # Comments are dropped: MySQL would run the inside of /*! ... */.
    return tree.sql(dialect=MySQLPortable if dialect == "mysql" else dialect, comments=False)
