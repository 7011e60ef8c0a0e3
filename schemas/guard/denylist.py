"""Functions a preview must never call, per dialect.

Patterns are ``fnmatch`` globs over lower-case function names. They cover side effects
(writes, locks, sequences, notifications, settings), files, network and processes,
other backends, and deliberate delays.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from schemas.dialects import Dialect

_COMMON = (
    "sleep",
    "pg_sleep*",
    "benchmark",
    "load_file",
    "load_extension",
    "readfile",
    "writefile",
    "dblink*",
    "sys_exec",
    "sys_eval",
)

_POSTGRES = (
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_*",
    "pg_stat_file",
    "pg_file_*",
    "pg_current_logfile",
    "lo_*",
    "loread",
    "lowrite",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile*",
    "pg_signal_backend",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_*",
    "pg_drop_*",
    "pg_replication_*",
    "pg_logical_*",
    "pg_backup_*",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_wal_replay_*",
    "pg_log_backend_memory_contexts",
    "pg_stat_reset*",
    "pg_export_snapshot",
    "pg_import_system_collations",
    "pg_advisory*",
    "pg_try_advisory*",
    "pg_notify",
    "set_config",
    "current_setting",
    "nextval",
    "setval",
    "txid_current*",
    "pg_current_xact_id*",
    "query_to_xml*",
    "table_to_xml*",
    "schema_to_xml*",
    "database_to_xml*",
    "cursor_to_xml*",
    "ts_stat",
    "pg_truncate_*",
    "pg_event_trigger_*",
    "pg_hba_file_rules",
)

_MYSQL = (
    "get_lock",
    "release_lock",
    "release_all_locks",
    "is_free_lock",
    "is_used_lock",
    "master_pos_wait",
    "source_pos_wait",
    "master_gtid_wait",
    "wait_for_executed_gtid_set",
    "wait_until_sql_thread_after_gtids",
    "sys_get",
    "sys_set",
    "last_insert_id",
    "uuid_short",
    "load_data",
    "sleep_*",
)

_SQLITE = (
    "edit",
    "fts3_tokenizer",
    "fsdir",
    "randomblob",
    "zeroblob",
    "sqlite_dbpage",
    "zipfile",
    "pragma_*",
    "shell",
    "system",
)

DENYLIST: dict[Dialect, tuple[str, ...]] = {
    "postgres": _COMMON + _POSTGRES,
    "mysql": _COMMON + _MYSQL,
    "sqlite": _COMMON + _SQLITE,
}


def is_denied(dialect: Dialect, function_name: str) -> bool:
    """True when ``function_name`` matches a denied pattern for ``dialect``.

    >>> is_denied("postgres", "PG_SLEEP_FOR")
    True
    >>> is_denied("postgres", "count")
    False
    """
    name = function_name.lower()
    return any(fnmatchcase(name, pattern) for pattern in DENYLIST[dialect])
