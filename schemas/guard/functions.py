"""The functions, table functions and data types a read-only analytical query may use.

An allowlist, not a denylist: anything not named here is refused by a rule that names it,
so a server function nobody thought of (``pg_show_all_settings()``, ``ts_rewrite(q, 'SELECT …')``,
``sys.format_bytes()``, ``sqlite_compileoption_get()``) is refused by default.

sqlglot parses most standard functions into typed expressions (``exp.Substring``), which the
generator writes back as the target engine's own spelling; the rest stay ``exp.Anonymous``
and are matched by lower-case name per dialect. An admin can extend the list per database
(``schemas functions NAME --allow f``); those names are matched like anonymous ones, and a
schema-qualified name (``analytics.fiscal_quarter``) only when written so.

>>> allowed_scalar("postgres", "date_trunc", ())
True
>>> allowed_scalar("postgres", "pg_read_file", ())
False
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from schemas.dialects import Dialect

# --- typed expressions (dialect-independent: the generator spells them per engine) --------

_STRUCTURAL = """And Or Xor Case If Cast TryCast Coalesce Nullif Greatest Least Exists Extract
Collate Convert ConvertToCharset Nvl2 EqualNull"""

_AGGREGATES = """Count CountIf Sum Avg Min Max AnyValue ApproxDistinct ArrayAgg GroupConcat Stddev
StddevPop StddevSamp Variance VariancePop Corr CovarPop CovarSamp Median PercentileCont
PercentileDisc Mode LogicalAnd LogicalOr BitwiseAndAgg BitwiseOrAgg BitwiseXorAgg JSONArrayAgg
JSONObjectAgg JSONBObjectAgg RegrAvgx RegrAvgy RegrCount RegrIntercept RegrR2 RegrSlope RegrSxx
RegrSxy RegrSyy ArgMax ArgMin First Last Grouping"""

_WINDOW = "RowNumber Rank DenseRank PercentRank CumeDist Ntile Lag Lead FirstValue LastValue NthValue"

_STRING = """Length ByteLength BitLength Lower Upper Initcap Concat ConcatWs Substring SubstringIndex
Left Right Trim Pad Replace Reverse Repeat Space StrPosition SplitPart Ascii Chr Translate Overlay
StartsWith EndsWith RegexpLike RegexpILike RegexpReplace RegexpExtract RegexpCount RegexpInstr
RegexpSubstr RegexpSplit MatchAgainst Format NumberToStr MD5 SHA SHA2 Hex Unhex LowerHex Soundex Levenshtein
Unicode ToBase64 FromBase64 String Split StringToArray ArrayToString Typeof"""

_MATH = """Abs Ceil Floor Round Trunc Sign Sqrt Cbrt Exp Ln Log Pow Pi Degrees Radians Sin Cos Tan
Asin Acos Atan Atan2 Cot Sinh Cosh Tanh Rand WidthBucket SafeDivide IsNan IsInf"""

_DATETIME = """CurrentDate CurrentTime CurrentTimestamp CurrentDatetime Localtime Localtimestamp Date
Datetime Time Timestamp DateAdd DateSub DateDiff DateTrunc TimestampTrunc DatetimeTrunc TimeTrunc
DatetimeAdd DatetimeSub DatetimeDiff TimestampAdd TimestampSub TimestampDiff TimeAdd TimeSub
TimeDiff Day DayOfMonth DayOfWeek DayOfWeekIso DayOfYear Dayname Month Monthname Year Quarter
Week WeekOfYear YearOfWeek Hour Minute Second LastDay AddMonths MonthsBetween StrToDate StrToTime
TimeToStr TimeStrToTime TimeStrToDate TimeStrToUnix TsOrDsAdd TsOrDsDiff TsOrDsToDate
TsOrDsToTimestamp TsOrDsToDatetime TsOrDsToTime TsOrDsToDateStr DateStrToDate DateToDateStr
UnixToTime UnixToStr UnixToTimeStr TimeToUnix StrToUnix UnixSeconds TimeToTimeStr MakeInterval
JustifyDays JustifyHours JustifyInterval ToChar ToNumber ToDays DateFromParts TimestampFromParts
TimeFromParts DateBin ConvertTimezone"""

_JSON_ARRAY = """JSONExtract JSONExtractScalar JSONBExtract JSONBExtractScalar JSONArray JSONObject
JSONArrayContains JSONBContains JSONBExists JSONType JSONKeys ParseJSON JSONExtractArray
JSONValueArray JSONStripNulls JSONFormat Array ArrayContains ArrayOverlaps ArrayContainedBy
ArraySize ArrayConcat ArrayPosition"""

ALLOWED_TYPED: frozenset[str] = frozenset(
    " ".join((_STRUCTURAL, _AGGREGATES, _WINDOW, _STRING, _MATH, _DATETIME, _JSON_ARRAY)).split()
)

# --- anonymous functions, by dialect --------------------------------------------------------

_COMMON_NAMES = """abs avg ceil ceiling coalesce count floor greatest least length lower max min
nullif round sign sqrt sum trim ltrim rtrim upper replace substr substring concat exp ln log log10
power pow mod pi radians degrees sin cos tan asin acos atan atan2 cot"""

_SQLITE_NAMES = """date time datetime julianday strftime unixepoch timediff ifnull iif instr printf
format char unicode hex unhex quote like glob typeof random total group_concat string_agg
concat_ws octet_length log2 trunc json json_extract json_array json_object json_type json_valid
json_array_length json_quote json_group_array json_group_object likely unlikely likelihood
nullif soundex"""

_POSTGRES_NAMES = """age date_part date_trunc to_char to_date to_timestamp to_number make_date
make_time make_timestamp make_timestamptz make_interval justify_days justify_hours
justify_interval isfinite date_bin timezone clock_timestamp statement_timestamp
transaction_timestamp initcap btrim lpad rpad split_part strpos position left right char_length
character_length octet_length bit_length concat_ws format translate reverse repeat
regexp_replace regexp_match regexp_matches regexp_split_to_array regexp_like regexp_count
regexp_instr regexp_substr starts_with string_agg array_agg array_length array_to_string
string_to_array array_position array_positions array_upper array_lower cardinality unnest
generate_series div cbrt trunc random width_bucket percentile_cont percentile_disc mode stddev
stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp regr_slope
regr_intercept regr_r2 regr_count regr_avgx regr_avgy bool_and bool_or every bit_and bit_or
json_build_object jsonb_build_object json_build_array jsonb_build_array json_agg jsonb_agg
json_object_agg jsonb_object_agg json_extract_path json_extract_path_text jsonb_extract_path
jsonb_extract_path_text json_array_length jsonb_array_length json_typeof jsonb_typeof to_json
to_jsonb row_to_json jsonb_strip_nulls json_strip_nulls md5 to_hex chr ascii num_nonnulls
num_nulls scale ceiling factorial gcd lcm ntile"""

_MYSQL_NAMES = """ifnull if date_format str_to_date datediff date_add date_sub adddate subdate
addtime subtime timediff timestampdiff timestampadd year month day dayname monthname dayofweek
dayofmonth dayofyear week weekday weekofyear yearweek quarter hour minute second microsecond
last_day makedate maketime period_diff period_add to_days from_days to_seconds sec_to_time
time_to_sec unix_timestamp from_unixtime curdate curtime date time timestamp extract
concat_ws group_concat substring_index locate instr position lpad rpad repeat space field elt
find_in_set format char_length character_length octet_length bit_length lcase ucase left right
reverse strcmp soundex insert conv truncate rand log2 json_extract json_unquote json_object
json_array json_length json_contains json_contains_path json_keys json_valid json_type
json_depth json_arrayagg json_objectagg json_value std stddev stddev_pop stddev_samp variance
var_pop var_samp bit_and bit_or bit_xor bit_count hex unhex md5 sha1 sha2 crc32 convert cast
regexp_like regexp_replace regexp_substr regexp_instr any_value"""

ALLOWED_NAMES: dict[Dialect, frozenset[str]] = {
    "sqlite": frozenset((_COMMON_NAMES + " " + _SQLITE_NAMES).split()),
    "postgres": frozenset((_COMMON_NAMES + " " + _POSTGRES_NAMES).split()),
    "mysql": frozenset((_COMMON_NAMES + " " + _MYSQL_NAMES).split()),
}

# Table-valued functions that only read their own arguments.
ALLOWED_TABLE_FUNCTIONS: dict[Dialect, frozenset[str]] = {
    "sqlite": frozenset({"json_each", "json_tree"}),
    "postgres": frozenset(
        """generate_series unnest json_array_elements json_array_elements_text jsonb_array_elements
        jsonb_array_elements_text json_each json_each_text jsonb_each jsonb_each_text
        regexp_split_to_table""".split()  # noqa: SIM905 - a word list reads better as text
    ),
    "mysql": frozenset({"json_table"}),
}

# Typed expressions that stand for a table function in FROM.
_TYPED_TABLE_FUNCTIONS = {"ExplodingGenerateSeries": "generate_series", "Unnest": "unnest", "JSONTable": "json_table"}

# --- data types a CAST may name ------------------------------------------------------------

_T = exp.DataType.Type
ALLOWED_TYPES: frozenset[Any] = frozenset(  # of exp.DataType.Type
    {
        *exp.DataType.INTEGER_TYPES,
        *exp.DataType.REAL_TYPES,
        *exp.DataType.TEXT_TYPES,
        *exp.DataType.TEMPORAL_TYPES,
        _T.BOOLEAN,
        _T.BIT,
        _T.JSON,
        _T.JSONB,
        _T.UUID,
        _T.INTERVAL,
        _T.BINARY,
        _T.VARBINARY,
        _T.BLOB,
        _T.ARRAY,
        _T.YEAR,
        _T.UNKNOWN,
    }
)

# --- arguments that size a result: a literal no larger than this --------------------------

MAX_GENERATED_CHARS = 10_000
# typed class -> argument holding the size; anonymous name -> position of the size argument
_SIZED_TYPED = {"Repeat": "times", "Pad": "expression", "Space": "this"}
_SIZED_NAMES = {"repeat": 1, "lpad": 1, "rpad": 1, "space": 0, "zeroblob": 0, "randomblob": 0, "replicate": 1}
_FORMATTERS_TYPED = {"Format": "this"}
_FORMATTER_NAMES = {"printf": 0, "format": 0}


def allowed_scalar(dialect: Dialect, name: str, extra: tuple[str, ...]) -> bool:
    key = name.lower()
    return key in ALLOWED_NAMES[dialect] or key in extra


def allowed_table_function(dialect: Dialect, name: str, extra: tuple[str, ...]) -> bool:
    key = name.lower()
    return key in ALLOWED_TABLE_FUNCTIONS[dialect] or key in extra


def typed_allowed(func: exp.Func, extra: tuple[str, ...]) -> bool:
    if type(func).__name__ in ALLOWED_TYPED:
        return True
    return any(name.lower() in extra for name in func.sql_names())


def display_name(func: exp.Func) -> str:
    if isinstance(func, exp.Anonymous):
        return str(func.name)
    return func.sql_name()


def table_function_name(func: exp.Func) -> str:
    return _TYPED_TABLE_FUNCTIONS.get(type(func).__name__) or display_name(func).lower()


def size_argument(func: exp.Func) -> exp.Expr | None:
    """The argument that sets how large a generated string is, when ``func`` has one."""
    return _argument(func, _SIZED_NAMES, _SIZED_TYPED)


def format_argument(func: exp.Func) -> exp.Expr | None:
    """The format string of printf-style functions, whose widths can also size a result."""
    return _argument(func, _FORMATTER_NAMES, _FORMATTERS_TYPED)


def _argument(func: exp.Func, by_name: dict[str, int], by_type: dict[str, str]) -> exp.Expr | None:
    if isinstance(func, exp.Anonymous):
        index = by_name.get(str(func.name).lower())
        args = func.expressions
        return args[index] if index is not None and index < len(args) else None
    arg = by_type.get(type(func).__name__)
    value = func.args.get(arg) if arg else None
    return value if isinstance(value, exp.Expr) else None


def is_amplifier(func: exp.Func) -> bool:
    return size_argument(func) is not None or format_argument(func) is not None


def sqlite_runtime_names(extra: tuple[str, ...]) -> frozenset[str]:
    """Every function name SQLite may call for a guarded query, for the authorizer's second net.

    The generator writes typed expressions as SQLite's own functions, and some operators call
    functions by name (LIKE, GLOB, REGEXP, ->, ->>)."""
    generated = """abs avg count max min sum total group_concat coalesce ifnull iif nullif
    length lower upper substr substring instr replace trim ltrim rtrim round date time datetime
    julianday strftime unixepoch printf format like glob regexp match -> ->> hex unhex char
    unicode typeof random cast ceil ceiling floor sign sqrt exp ln log log10 log2 pow power mod
    pi trunc json json_extract json_array json_object json_type json_array_length json_group_array
    json_group_object json_each json_tree concat concat_ws octet_length row_number rank
    dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
    string_agg likely unlikely likelihood quote soundex median stddev variance sin cos tan asin
    acos atan atan2 radians degrees cot sinh cosh tanh"""
    return frozenset(generated.split()) | ALLOWED_NAMES["sqlite"] | frozenset(extra)
