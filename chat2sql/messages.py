"""Every sentence chat2sql shows a person lives here.

``user_message`` is the one function that turns an error into what the user sees.
It never includes exception text from a driver, a URL with its password, or a secret.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from chat2sql import errors

NAME_RULES = "lowercase letters, digits, '-' and '_', starting with a letter, at most 63 characters"


def user_message(err: BaseException) -> str:
    match err:
        case errors.InvalidName(name=name):
            return f"'{name}' is not a valid database name: use {NAME_RULES}."
        case errors.UnknownDatabase(name=name, known=known, here=True):
            hint = (
                f" Available here: {', '.join(known)}." if known else " No database is available in this channel yet."
            )
            return f"No database named '{name}' is registered.{hint}"
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
        case errors.PrivilegedAccount(name=name, findings=findings):
            return (
                f"Refusing to register '{name}': its account can do more than read ({'; '.join(findings)}). "
                "Register it with a read-only account (SELECT only), or pass --allow-privileged if you mean it."
            )
        case errors.InvalidFunctionName(function=function):
            shown = function if len(function) <= 80 else function[:80] + "…"
            return (
                f"'{shown}' is not a function name: use an identifier such as `date_trunc` "
                "or `schema.function` (letters, digits, '_', starting with a letter or '_')."
            )
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
            return f"I could not produce a safe, valid query for that: {reason.rstrip('.')} ({rule})."
        case errors.PreviewTimeout(timeout_s=timeout_s, elapsed_s=elapsed_s):
            return (
                f"The preview was stopped after {timeout_s:g} s, its time limit "
                f"(it ran {elapsed_s:.1f} s in all); try a narrower question."
            )
        case errors.PreviewTooLarge(limit_bytes=limit):
            return (
                f"The preview was stopped: it needed more than {limit // 1_000_000:,} MB of memory. "
                "Try a question that returns less text."
            )
        case errors.DatabaseUnreachable():
            return "The database could not be reached right now; please try again in a moment."
        case errors.PreviewFailed(detail=detail):
            return f"The database could not run the query: {detail}"
        case errors.InvalidQuestion(reason=reason):
            return f"I can't use that question: {reason}."
        case errors.NoDatabases():
            return "No database is registered yet. An admin can add one with `admin register NAME URL`."
        case errors.NeedDatabase(choices=choices):
            names = ", ".join(f"`{c}`" for c in choices)
            return (
                f"Which database? Ask again as `[db:NAME] your question` or set one with `use NAME`. Choices: {names}."
            )
        case errors.Unmatched(database=database, other_databases=others):
            where = f" Or did you mean {', '.join(f'`{o}`' for o in others)}?" if others else ""
            return (
                f"I couldn't match your question to anything in `{database}`. Which data do you mean? "
                f"Pick a table below or rephrase with the names you see in `Show schema`.{where}"
            )
        case errors.NotAllowedHere(name=name):
            return (
                f"The database '{name}' is not available in this channel. "
                f"An admin can allow it with `admin grant {name} CHANNEL`."
            )
        case errors.NothingAllowedHere():
            return (
                "No database is available in this channel yet. "
                "An admin can allow one here with `admin grant NAME CHANNEL`."
            )
        case errors.RateLimited(retry_after_s=retry, scope=scope):
            who = "this workspace is" if scope == "workspace" else "you are"
            return f"Easy there: {who} asking faster than the limit. Try again in {max(1, round(retry))} s."
        case errors.AdminOnly():
            return "Sorry, only chat2sql admins can do that. Nothing was changed."
        case errors.UnknownCommand(usage=usage):
            return f"I didn't understand that. Usage: {usage}"
        case errors.UserFacingError():
            return err.message
        case _:
            return "Something went wrong on our side; the error has been logged."


GUARD_FAILED_TWICE = "Pick the data to use below, or rephrase the question."
REPHRASE = "Try rephrasing the question."


# --- the shared services and settings behind every question (chat2sql/, bot/core/experiment.py) ---

RATE_LIMITER_UNAVAILABLE = "The rate limiter is unavailable right now; please try again shortly."
CACHE_UNAVAILABLE = "The response cache is unavailable right now; answers are computed without it."


def invalid_experiment(reason: str) -> str:
    """``reason`` names the setting's field and what is wrong with it (pydantic's words)."""
    return f"CHAT2SQL_EXPERIMENT is not valid: {reason}"


HELP = """Ask me a question about your data and I'll write the SQL.

• `how many customers per country?` — uses this channel's database
• `[db:NAME] question` or `NAME: question` — ask a specific database
• `use NAME` — set this channel's default database
• `databases` — what I can query here
• `help` — this message

Admins: `admin register NAME URL [description] [--allow-privileged]`, `admin list`, `admin describe NAME`,
`admin refresh NAME`, `admin remove NAME`, `admin grant NAME CHANNEL`, `admin revoke NAME CHANNEL`,
`admin functions NAME [allow|disallow FUNC…]`.
Examples: `admin examples NAME`, `admin example add NAME QUESTION => SQL`, `admin example remove ID`.
Glossary: `admin define NAME "term" => meaning` (or a metric: `admin define NAME revenue => SUM(t.col)`;
say `term` or `metric` before the name to choose), `admin describe NAME TABLE.COLUMN => meaning`,
`admin hide NAME TABLE.COLUMN`, `admin unhide NAME TABLE.COLUMN`, `admin undefine NAME "term"`,
`admin glossary NAME [history]`.
Every query is checked and runs read-only."""

ADMIN_USAGE = (
    "`admin register NAME URL [description]` | `admin list` | `admin describe NAME` | `admin refresh NAME` | "
    "`admin remove NAME` | `admin grant NAME CHANNEL` | `admin revoke NAME CHANNEL` | "
    "`admin examples NAME` | `admin example add NAME QUESTION => SQL` | `admin example remove ID` | "
    "`admin functions NAME [allow|disallow FUNC…]` | "
    '`admin define NAME [term|metric] "NAME" => DEFINITION` | `admin describe NAME TABLE.COLUMN => TEXT` | '
    '`admin hide NAME TABLE.COLUMN` | `admin unhide NAME TABLE.COLUMN` | `admin undefine NAME "NAME"` | '
    "`admin glossary NAME [history]`"
)


def example_kept(database: str) -> str:
    return f" Kept as a verified example for `{database}`: similar questions will be shown it."


def example_refused(reason: str) -> str:
    return f" It was not kept as an example: {reason}."


EXAMPLE_FOR_ADMINS = " An admin can make a correction a verified example (`admin example add`)."


def example_added(example_id: int, database: str) -> str:
    return f"Example #{example_id} added to `{database}`."


def example_removed(example_id: int, database: str) -> str:
    return f"Example #{example_id} removed from `{database}`."


def no_example(example_id: int) -> str:
    return f"There is no example #{example_id}."


def no_examples(database: str) -> str:
    return (
        f"`{database}` has no verified examples yet: an admin's 👍 on a good answer keeps one, "
        f"or `admin example add {database} QUESTION => SQL`."
    )


# --- the glossary (admin define / describe / hide / unhide / undefine / glossary) -------------

GLOSSARY_KIND_WORDS = {"term": "term", "metric": "metric", "column": "column description", "hidden": "hidden column"}


def glossary_invalid(what: str, problem: str) -> str:
    return f"That glossary {what} {problem}. Nothing was changed."


def glossary_unknown_column(database: str, column: str, table: str | None, *, table_exists: bool) -> str:
    if table is None:
        found = f"no table of `{database}` has a column `{column}`"
    elif not table_exists:
        found = f"`{database}` has no table `{table}` (for `{table}.{column}`)"
    else:
        found = f"the table `{table}` of `{database}` has no column `{column}`"
    return f"Unknown column: {found}. Check `admin describe {database}`; nothing was changed."


def glossary_invalid_metric(database: str, problem: str) -> str:
    return (
        f"That metric for `{database}` is not valid: {problem}. Write one SQL expression over its columns, "
        "e.g. `SUM(orders.amount)`, or say `term` before the name for a definition in words. Nothing was changed."
    )


def glossary_hidden_in_use(database: str, column: str, metric: str | None) -> str:
    if metric is None:
        return f"`{column}` is hidden on `{database}`, so a metric cannot use it. Nothing was changed."
    return (
        f"The metric `{metric}` of `{database}` uses `{column}`: undefine it before hiding the column. "
        "Nothing was changed."
    )


def glossary_unchanged(database: str, kind: str, name: str, version: int) -> str:
    return f"The {GLOSSARY_KIND_WORDS.get(kind, kind)} `{name}` of `{database}` is unchanged (still v{version})."


def glossary_defined(database: str, kind: str, name: str, version: int) -> str:
    if kind == "hidden":
        return f"`{name}` of `{database}` is now hidden: the model no longer sees it or its values."
    what = GLOSSARY_KIND_WORDS.get(kind, kind)
    return f"Stored the {what} `{name}` for `{database}` (v{version})."


def glossary_removed(database: str, name: str, *, hidden: bool) -> str:
    if hidden:
        return f"`{name}` of `{database}` is visible to the model again."
    return f"Removed `{name}` from the glossary of `{database}` (its history is kept)."


def glossary_not_found(database: str, name: str, *, hidden: bool) -> str:
    if hidden:
        return f"`{name}` is not hidden on `{database}`. Nothing was changed."
    return f"The glossary of `{database}` has no entry `{name}`. See `admin glossary {database}`."


def glossary_empty(database: str) -> str:
    return f'`{database}` has no glossary entries yet: `admin define {database} "term" => meaning` adds one.'


def glossary_title(database: str, count: int, *, history: bool) -> str:
    if history:
        return f"Glossary history of `{database}` ({count} versions):"
    return f"Glossary of `{database}` ({count} entries):"


def glossary_line(kind: str, name: str, definition: str, version: int, *, active: bool = True) -> str:
    what = GLOSSARY_KIND_WORDS.get(kind, kind)
    text = "" if kind == "hidden" else (f" = {definition}" if kind == "metric" else f": {definition}")
    state = "" if active else ", inactive"
    return f"• {what} `{name}`{text} (v{version}{state})"


def glossary_used(hint: str, version: int) -> str:
    """A line of an answer's explanation: a glossary entry the answer relies on."""
    return f"Glossary: {hint} (v{version})"


def registry_unusable(reason: str) -> str:
    return f"the registry database cannot be used: {reason}"


def registered(name: str, dialect: str, tables: int) -> str:
    return f"Registered `{name}` ({dialect}, {tables} tables). Ask away: `[db:{name}] your question`."


def account_note(summary: str, *, privileged: bool) -> str:
    """``summary`` comes from the server's catalogue: role and privilege names, no secrets."""
    if privileged:
        return f" ⚠️ Registered with --allow-privileged. Account {summary}."
    return f" Account {summary}."


def allowed_functions(name: str, functions: tuple[str, ...]) -> str:
    if not functions:
        return f"`{name}` allows no extra SQL functions beyond the guard's own list."
    return f"Extra SQL functions allowed on `{name}`: {', '.join(f'`{f}`' for f in functions)}."


def refreshed(name: str, tables: int, changed: bool) -> str:
    return f"Refreshed `{name}`: {tables} tables, schema {'changed' if changed else 'unchanged'}."


def removed(name: str) -> str:
    return f"Removed `{name}`."


def granted(name: str, channel: str, allowed: bool) -> str:
    return f"`{name}` is now {'allowed' if allowed else 'not allowed'} in {channel}."


def default_set(name: str) -> str:
    return f"This channel now asks `{name}` by default."


def databases_here(entries: list[tuple[str, str, int, str, bool]]) -> str:
    """The ``databases`` command's list: (name, dialect, tables, description, default here) each."""
    lines = [
        f"• `{name}` ({dialect}, {tables} tables){' — default here' if default else ''}"
        + (f": {description}" if description else "")
        for name, dialect, tables, description, default in entries
    ]
    return "Databases you can ask here:\n" + "\n".join(lines)


def no_databases_here() -> str:
    return "No database is available in this channel yet."


def feedback_thanks(rating: str) -> str:
    return "Thanks for the feedback!" if rating == "up" else "Thanks — I stored your correction for review."


# --- the bot's state: feedback and the audit log (bot/store.py, python -m bot audit) ---------


def no_answer_to_rate(audit_id: int) -> str:
    return f"There is no answer #{audit_id} to give feedback on."


def invalid_rating(rating: str) -> str:
    return f"'{rating}' is not a rating; use 'up' or 'down'."


def invalid_since(text: str) -> str:
    return (
        f"'{text}' is not a start time: use an ISO date or time such as 2026-01-31 "
        "or 2026-01-31T09:00 (UTC unless it names a zone), or an age such as 7d or 12h."
    )


# Each step of a question's flow, as a verb phrase: Slack shows "chat2sql is <phrase>" in an
# assistant thread, Teams the phrase capitalized as a stream's informative update.
PROGRESS = {
    "finding_tables": "finding the tables…",
    "writing_sql": "writing the SQL…",
    "checking": "checking it against the schema…",
    "retrying": "fixing a problem and trying again…",
    "warming_up": "waiting for the model to warm up…",
}


def suggested_count(table: str) -> str:
    """A suggested first question about a database that has no verified examples yet."""
    return f"How many rows does {table} have?"


# --- the model: the worker, its API keys and the clients that call it (inference/, deploy/) --

# What the bot's inference clients raise (inference/client/errors.py)
MODEL_SERVICE_FAILED = "The model service failed; please try again later."
MODEL_WARMING_UP = "The model is warming up; your answer will follow in a minute or so."
MODEL_SERVICE_UNAVAILABLE = "The model service is not available right now; please try again later."


def model_busy(retry_after_s: float | None) -> str:
    if retry_after_s is None:
        return "The model is busy right now; please try again in a moment."
    return f"The model is busy right now; please try again in {math.ceil(retry_after_s)} s."


def model_timeout(timeout_s: float) -> str:
    return f"The model did not answer within {timeout_s:g} s; please try again."


def model_refused(status: int, detail: str | None) -> str:
    """``detail`` only from our own worker, whose sentences are written to be shown."""
    if detail:
        return f"The model service refused the request: {detail}"
    if status in (401, 403):
        return "The model service refused our credentials; ask an admin to check the API key."
    if status == 404:
        return "The model service does not know the model or adapter that was asked for."
    return "The model service could not process the request."


# What the worker answers (inference/service.py, inference/prompts.py, inference/server.py)
MODEL_STILL_LOADING = "The model is still loading; retry in a few seconds."
MODEL_LOAD_FAILED = "The model failed to load; the worker needs attention."
PROMPT_TOO_LONG = "The question is too long for the model's input; please shorten it."
GENERATION_FAILED = "The model failed to generate an answer; please retry."


def unknown_adapter(name: str, known: Sequence[str]) -> str:
    return f"Unknown adapter '{name}'; loaded: {', '.join(known) or 'none'}."


def unknown_prompt_format(name: str, known: Sequence[str]) -> str:
    return f"Unknown prompt format '{name}'; known: {', '.join(known)}."


def body_too_large(limit: int) -> str:
    return f"The request body is larger than the worker accepts ({limit:,} bytes)."


def model_source_problem(detail: str) -> str:
    return f"Model source problem: {detail}"


# The worker's API keys (inference/keys.py, python -m inference keys)
def invalid_key_name(name: str) -> str:
    return f"'{name}' is not a valid key name: use {NAME_RULES}."


def invalid_tier(tier: str, tiers: Iterable[str]) -> str:
    return f"'{tier}' is not a tier; use one of: {', '.join(tiers)}."


def duplicate_key_name(name: str) -> str:
    return f"An API key named '{name}' already exists (revoked keys keep their name); pick another name."


def invalid_key_databases(name: str) -> str:
    return f"'{name}' is not a valid database name for --databases: use {NAME_RULES}, comma-separated."


def unknown_key_name(name: str) -> str:
    return f"No API key named '{name}' exists."


def deploy_config_invalid(path: Path, detail: str) -> str:
    """deploy/config.yaml (or ``CHAT2SQL_DEPLOY_CONFIG``) cannot be used: the file and what is wrong."""
    return f"{path}: {detail}"


# --- the console (python -m bot ask|chat|demo) ----------------------------------------------

CONSOLE_NO_DATABASES = (
    "No database is registered yet. To try the samples, `make demo` (or `python -m bot demo`) builds "
    "three and asks them; to use your own, `python -m schemas add NAME URL`, or "
    "`admin register NAME URL` in `python -m bot chat`."
)
CONSOLE_LOADING_MODEL = "Loading the model in the background (a few seconds; the very first start verifies it once)…"
CONSOLE_BANNER = "chat2sql console — type `help`, or `quit` to leave."
CONSOLE_HINT = (
    "(type `run` for a preview, `explain` to explain the SQL, `chart` for a chart, "
    "`good` or `bad [corrected SQL]` for feedback)"
)
CONSOLE_CHOOSE = "(type a number to choose)"
MORE_ROWS_NOT_SHOWN = "more rows not shown"  # a text preview (console, MCP) stopped at its row limit
CONSOLE_SAMPLES_NEXT = "Next: `python -m bot chat` to ask your own questions; see README for registering your database."


def console_samples_ready(built: list[str]) -> str:
    """``python -m bot demo``: the sample databases it built (none: they were there already)."""
    return f"sample databases ready ({', '.join(built) if built else 'already registered'})"


def console_answer_note(database: str, latency_ms: float, *, cached: bool, warnings: Sequence[str], trace: str) -> str:
    """The line under an answer's SQL (the console prints it as an SQL comment)."""
    notes = [f"database: {database}", f"{latency_ms:.0f} ms"]
    if cached:
        notes.append("cached")
    notes += list(warnings)
    return f"{' · '.join(notes)} · trace {trace}"


def console_preview_note(rows: int, elapsed_ms: float, *, more_rows: bool) -> str:
    more = f", {MORE_ROWS_NOT_SHOWN}" if more_rows else ""
    return f"({rows} rows{more}, {elapsed_ms:.0f} ms)"


# --- Slack ----------------------------------------------------------------------------------

SLACK_WORKING = "⏳ Working on it…"
SLACK_RUN_PREVIEW = "Run preview"
SLACK_SHOW_SCHEMA = "Show schema"
SLACK_CUT = "✂️ Cut to fit Slack's message limits."
SLACK_MORE_ROWS = "the preview stops at its row limit; run the SQL yourself for everything"
SLACK_CORRECTION_PROMPT = (
    "What should the SQL have been? Paste the corrected query (optional): admins review corrections, "
    "and they help the next answers."
)
SLACK_CORRECTION_TOO_LONG = "That is longer than a query we can keep; please shorten it."
SLACK_CORRECTION_TITLE = "Correct this answer"  # the 👎 modal: its title, buttons and input label
SLACK_CORRECTION_SEND = "Send"
SLACK_CORRECTION_CANCEL = "Cancel"
SLACK_CORRECTION_LABEL = "Corrected SQL"
SLACK_FILE_FAILED = "The full result could not be attached as a file."
SLACK_PREVIEW_TEXT = "Preview"  # a preview message's notification text
SLACK_ASSISTANT_PROMPTS_TITLE = "Try asking"
SLACK_ASSISTANT_NONE = (
    "Hi! I turn questions into checked, read-only SQL, but no database is available to you here yet: "
    "ask an admin to register one (`/sql admin register NAME URL`)."
)


def slack_assistant_greeting(databases: list[tuple[str, str | None]], *, default: str | None) -> str:
    """The first message of an assistant thread: what the user may ask about."""
    lines = [
        f"• `{name}`{' — the default of the channel you are viewing' if name == default else ''}"
        + (f": {' '.join(description.split())}" if description else "")
        for name, description in databases
    ]
    return (
        "Hi! Ask me a question about your data and I'll write checked, read-only SQL for it, "
        "with a button to preview the rows.\nDatabases you can ask about:\n"
        + "\n".join(lines)
        + "\nName one with `[db:NAME]` at the start of a question."
    )


def slack_asked(user_id: str, question: str) -> str:
    """Above an answer posted for someone else's question; ``question`` is already escaped."""
    return f"<@{user_id}> asked: {question}"


def slack_answer_note(database: str, latency_ms: float, *, cached: bool) -> str:
    notes = [f"database `{database}`", f"{latency_ms / 1000:.1f} s"]
    if cached:
        notes.append("cached answer")
    return " · ".join(notes)


def slack_answer_text(database: str, sql: str) -> str:
    """An answer message's notification text."""
    return f"SQL for {database}: {sql}"


def slack_preview_note(rows: int, elapsed_ms: float, *, shown: int, more_rows: bool) -> str:
    """``shown`` < ``rows``: the message's table is cut and the CSV below holds every row."""
    note = f"{rows} row{'s' if rows != 1 else ''} · {elapsed_ms:.0f} ms"
    if shown < rows:
        note += f" · showing {shown}, all {rows} in the CSV below"
    if more_rows:
        note += f" · {SLACK_MORE_ROWS}"
    return note


def slack_preview_file_title(audit_id: int) -> str:
    return f"Preview of answer {audit_id}"


def slack_schema_title(database: str) -> str:
    return f"Schema of `{database}`:"


def slack_schema_text(database: str) -> str:
    """A schema message's notification text."""
    return f"Schema of {database}"


# --- Microsoft Teams --------------------------------------------------------------------------

TEAMS_WORKING = "⏳ Working on it — this one takes a little longer. I'll post the answer here."
TEAMS_RUN_PREVIEW = "Run preview"
TEAMS_SHOW_SCHEMA = "Show schema"
TEAMS_THUMBS_UP = "👍"
TEAMS_THUMBS_DOWN = "👎"
TEAMS_SEND_THUMBS_DOWN = "Send 👎"
TEAMS_CORRECTION_PLACEHOLDER = "What should the SQL have been? (optional)"
TEAMS_CORRECTION_TOO_LONG = "That correction is longer than a query we can keep; please shorten it."
TEAMS_UNKNOWN_ACTION = "That button belongs to an older version of this app; ask the question again."
TEAMS_NO_ROWS = "The query returned no rows."
TEAMS_STREAM_START = "Working on it…"
TEAMS_STREAM_TOO_LONG = "⏳ This one takes longer than Teams lets me show progress for; I'll post the answer here."
TEAMS_STREAM_ANSWER = "Here is the checked SQL."
INFORMATIVE_UPDATE_CHARS = 1000  # Teams' limit on a stream's informative update


def teams_answer_title(database: str) -> str:
    return f"SQL for **{database}**"


TEAMS_FACT_DATABASE = "Database"  # the titles of an answer card's facts
TEAMS_FACT_LATENCY = "Latency"
TEAMS_FACT_TRACE = "Trace"


def teams_latency(latency_ms: float, *, cached: bool) -> str:
    return f"{latency_ms:.0f} ms" + (" (cached)" if cached else "")


def teams_preview_note(rows: int, elapsed_ms: float, *, more_rows: bool, cut: bool) -> str:
    notes = [f"{rows} rows", f"{elapsed_ms:.0f} ms"]
    if more_rows:
        notes.append("the preview stops at its row limit")
    if cut:
        notes.append("✂️ cut to fit a Teams message")
    return " · ".join(notes)


def teams_schema_title(database: str) -> str:
    return f"Schema of **{database}**"


# --- Explain and charts (plain English from the SQL's structure; charts from a spec) ---------

EXPLAIN = "Explain"
CHART = "Chart"
EXPLAIN_GONE = "That answer can no longer be explained."
PREVIEW_GONE = "That answer can no longer be previewed."
EXPLAIN_UNREADABLE = "I can't read this query's structure, so I won't guess what it does."
EXPLAIN_CUT = "✂️ The rest of this explanation was cut; the query has more parts."
CHART_UNSUITABLE = (
    "This result can't be charted: a chart needs one label or date column and one numeric column, "
    "with at least two rows."
)
CHART_TOO_LARGE = "The chart came out too large to send here; try a question with fewer rows."
CHART_UPLOAD_FAILED = "The chart could not be attached as an image."
MORE_CHOICES = "More choices"


def explain_title(database: str) -> str:
    return f"What this query on {database} does:"


def chart_note(shown: int, total: int, *, more_rows: bool) -> str:
    notes = []
    if shown < total:
        notes.append(f"first {shown} of {total} rows")
    if more_rows:
        notes.append("the preview stopped at its row limit")
    return "; ".join(notes)


def choices_cut(hidden: int) -> str:
    return f"…and {hidden} more; ask again naming the one you mean."


# --- the MCP server (bot/mcp_server.py) ---------------------------------------------------------

OWN_SQL_QUESTION = "(own SQL, previewed through the MCP server)"  # the audit row's question
MCP_INSTRUCTIONS = (
    "chat2sql answers questions about company databases with checked, read-only SQL. "
    "Call list_databases first; describe_schema shows what the model sees; ask writes SQL for a "
    "question (it does not run it); run_preview runs SQL through the guard on a read-only "
    "connection, a few rows at most; explain says in plain English what SQL does."
)
MCP_NO_KEY = "Send an API key as 'Authorization: Bearer <key>' (python -m inference keys create)."


def mcp_preview_note(rows: int, *, more_rows: bool) -> str:
    more = f", {MORE_ROWS_NOT_SHOWN}" if more_rows else ""
    return f"({rows} rows{more})"


def mcp_schema_name(database: str) -> str:
    """The name of a database's schema resource, as MCP clients list it."""
    return f"{database} schema"


def mcp_schema_description(database: str, dialect: str) -> str:
    """A schema resource's description when the database was registered without one."""
    return f"The {dialect} database {database}"


def worker_deploy_config(path: str) -> str:
    return (
        f"CHAT2SQL_DEPLOY_CONFIG is set ({path}): start the worker with `python -m deploy.worker`, "
        "which applies that file (same --host/--port), or unset it to serve these settings as they are."
    )
