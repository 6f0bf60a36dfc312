"""Which SQL statements leave a pooled connection's session as they found it.

``PostgresPool`` skips asyncpg's reset query (a round trip as long as the statement itself) after
a statement that cannot have left anything for it to undo. The test is lexical and errs towards
the reset: a read or write verb, and no call but SQL keywords, type names and built-in functions
that set, lock, open and listen to nothing.
"""

from __future__ import annotations

import re

__all__ = ["leaves_session_alone"]

_NEUTRAL_VERBS = frozenset({"select", "insert", "update", "delete", "with", "values", "table"})
# Words a statement may put before "(" and still leave nothing for the reset query to undo: SQL
# keywords, type names, and built-in functions that set, lock, open and listen to nothing. Any
# other call (a function of the user's may call set_config or take an advisory lock), a quoted
# name before "(", or a verb not above means the full reset.
_NEUTRAL_CALL_WORDS = """
    all and any array as between by case cast check conflict distinct do else escape except
    exists filter from group having ilike in intersect is join lateral like limit not offset on
    only or order over partition range returning row rows select set similar some then union
    using values when where window with within
    bigint bit boolean char character date decimal double float int integer interval numeric
    precision real smallint text time timestamp timestamptz varchar uuid json jsonb
    abs age array_agg array_length array_position avg bool_and bool_or btrim cardinality ceil
    char_length coalesce concat concat_ws count current_setting date_part date_trunc dense_rank
    every extract first_value floor gen_random_uuid generate_series greatest json_agg
    json_array_elements json_build_array json_build_object json_object_agg jsonb_agg
    jsonb_array_elements jsonb_build_array jsonb_build_object jsonb_object_agg jsonb_set lag
    last_value lead least left length lower lpad ltrim make_interval max md5 min mod now nullif
    percentile_cont percentile_disc pg_backend_pid pg_sleep position power random rank replace
    right round row_number row_to_json rpad rtrim split_part sqrt string_agg substring sum
    to_char to_date to_json to_jsonb to_timestamp trim trunc unnest upper
"""
_NEUTRAL_CALLS = frozenset(_NEUTRAL_CALL_WORDS.split())
_CALLS = re.compile(r'(\.?\w+|")\s*\(')  # a schema-qualified name keeps its dot: not neutral
_COLUMN_LIST = re.compile(r'\binto\s+[\w."]+\s*\(', re.IGNORECASE)  # INSERT INTO t (a, b)
_verdicts: dict[str, bool] = {}


def leaves_session_alone(query: str) -> bool:
    """Whether ``query`` cannot have left anything for the reset query to undo (settings,
    session advisory locks, cursors, LISTEN): one statement of a read or write verb calling only
    SQL keywords, type names and harmless built-ins. In doubt, false: the full reset."""
    known = _verdicts.get(query)
    if known is None:
        words = query.lstrip(" \t\r\n(").split(None, 1)
        known = (
            bool(words)
            and words[0].lower() in _NEUTRAL_VERBS
            and ";" not in query.rstrip(" \t\r\n;")  # execute() without arguments runs several
            and all(
                word.lower() in _NEUTRAL_CALLS
                for word in _CALLS.findall(_COLUMN_LIST.sub(" ", query))
            )
        )
        if len(_verdicts) >= 4096:  # statements are usually constants; a flood of them is not
            _verdicts.clear()
        _verdicts[query] = known
    return known
