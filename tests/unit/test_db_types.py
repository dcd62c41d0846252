"""app.db.UTCDateTime and utcnow, checked against dialect objects without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from app.db import UTCDateTime, utcnow

SQLITE = sqlite.dialect()
POSTGRESQL = postgresql.dialect()
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


@pytest.fixture
def column_type() -> UTCDateTime:
    return UTCDateTime()


def test_utcnow_is_aware_utc():
    now = utcnow()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRESQL], ids=["sqlite", "postgresql"])
def test_naive_datetime_is_refused(column_type, dialect):
    with pytest.raises(ValueError, match="naive"):
        column_type.process_bind_param(datetime(2024, 3, 1, 12, 0), dialect)


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRESQL], ids=["sqlite", "postgresql"])
def test_none_passes_through(column_type, dialect):
    assert column_type.process_bind_param(None, dialect) is None
    assert column_type.process_result_value(None, dialect) is None


def test_postgresql_gets_aware_utc(column_type):
    summer = datetime(2024, 7, 1, 14, 30, tzinfo=AMSTERDAM)  # CEST, UTC+2
    bound = column_type.process_bind_param(summer, POSTGRESQL)
    assert bound == datetime(2024, 7, 1, 12, 30, tzinfo=UTC)
    assert bound.utcoffset() == timedelta(0)


def test_other_offsets_are_converted_to_utc(column_type):
    winter = datetime(2024, 1, 15, 9, 0, tzinfo=AMSTERDAM)  # CET, UTC+1
    new_york = datetime(2024, 1, 15, 3, 0, tzinfo=timezone(timedelta(hours=-5)))
    for value in (winter, new_york):
        bound = column_type.process_bind_param(value, POSTGRESQL)
        assert bound.utcoffset() == timedelta(0)
        assert bound == datetime(2024, 1, 15, 8, 0, tzinfo=UTC)


def test_sqlite_stores_naive_utc(column_type):
    value = datetime(2024, 7, 1, 14, 30, 15, 123456, tzinfo=AMSTERDAM)
    bound = column_type.process_bind_param(value, SQLITE)
    assert bound.tzinfo is None
    assert bound == datetime(2024, 7, 1, 12, 30, 15, 123456)


def test_sqlite_keeps_utc_values_as_they_are(column_type):
    value = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert column_type.process_bind_param(value, SQLITE) == datetime(2024, 3, 1, 12, 0)


def test_naive_result_from_sqlite_comes_back_aware_utc(column_type):
    result = column_type.process_result_value(datetime(2024, 7, 1, 12, 30), SQLITE)
    assert result == datetime(2024, 7, 1, 12, 30, tzinfo=UTC)
    assert result.tzinfo is UTC


def test_aware_result_from_postgresql_comes_back_in_utc(column_type):
    # psycopg returns timestamptz in the connection's time zone.
    stored = datetime(2024, 7, 1, 14, 30, tzinfo=AMSTERDAM)
    result = column_type.process_result_value(stored, POSTGRESQL)
    assert result == stored
    assert result.utcoffset() == timedelta(0)
    assert result.hour == 12


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRESQL], ids=["sqlite", "postgresql"])
def test_round_trip_keeps_the_instant(column_type, dialect):
    # 02:30 on 27 October happens twice in Amsterdam; fold=0 is the first one (CEST).
    # Aware datetimes in such a repeated hour never compare equal across zones, so
    # compare the instants.
    original = datetime(2024, 10, 27, 2, 30, tzinfo=AMSTERDAM)
    bound = column_type.process_bind_param(original, dialect)
    result = column_type.process_result_value(bound, dialect)
    assert result.timestamp() == original.timestamp()
    assert result == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert result.utcoffset() == timedelta(0)


def test_column_is_timezone_aware_and_cacheable():
    assert UTCDateTime.impl.timezone is True
    assert UTCDateTime.cache_ok is True
