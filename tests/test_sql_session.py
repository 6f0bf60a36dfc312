"""Which statements ``PostgresPool`` gives back without asyncpg's reset query: only those that
cannot have left anything for it to undo; everything in doubt gets the reset."""

from __future__ import annotations

import pytest

from ai_spine_tools.outbound._sql_session import leaves_session_alone


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, name, city, score FROM bench_users WHERE id = $1",
        "select count(*) from users where city = $1",
        "  (SELECT 1) UNION (SELECT 2)",
        "INSERT INTO users (name, city) VALUES ($1, $2) RETURNING id",
        "INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = $2",
        "UPDATE counters SET n = n + 1 WHERE id = ANY($1::int[])",
        "DELETE FROM sessions WHERE expires < now() - interval '1 day'",
        "WITH recent AS (SELECT * FROM t WHERE at > $1) SELECT count(*) FROM recent",
        "SELECT jsonb_build_object('id', id, 'tags', array_agg(tag)) FROM t GROUP BY id",
        "SELECT coalesce(max(score), 0)::numeric(10, 2) FROM users",
        "VALUES (1), (2)",
        "TABLE users",
        "SELECT 1;",
    ],
)
def test_plain_reads_and_writes_leave_the_session_alone(query: str) -> None:
    assert leaves_session_alone(query)


@pytest.mark.parametrize(
    "query",
    [
        "SET search_path TO other",
        "RESET ALL",
        "BEGIN",
        "LISTEN jobs",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "SELECT set_config('app.tenant', $1, false)",
        "SELECT SET_CONFIG('app.tenant', $1, false)",
        "SELECT pg_advisory_lock($1)",
        "SELECT pg_try_advisory_lock_shared($1)",
        "SELECT set_tenant($1)",  # the schema's own function: it may do anything
        'SELECT "count"(1)',  # a quoted name is never taken for a built-in
        "SELECT public.count(1)",  # nor a schema-qualified one
        "INSERT INTO audit (who) VALUES (current_user_fn())",
        "/* a comment first */ SELECT 1",
        "EXPLAIN ANALYZE SELECT 1",
        "CALL refresh_all()",
        "SELECT 1; SET search_path TO other",  # execute() without arguments runs both
        "UPDATE t SET n = 1;\nSET application_name = 'x';",
        "",
        "   ",
    ],
)
def test_anything_that_may_change_the_session_gets_the_reset(query: str) -> None:
    assert not leaves_session_alone(query)


def test_the_verdicts_kept_stay_bounded() -> None:
    from ai_spine_tools.outbound import _sql_session

    for n in range(5000):
        leaves_session_alone(f"SELECT {n}")
    assert len(_sql_session._verdicts) <= 4096
    assert leaves_session_alone("SELECT 1")
