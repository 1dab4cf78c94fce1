"""The database's functions are their source files, and every function has one.

Each `services/plume/**/sql/*.sql` file is one `CREATE OR REPLACE FUNCTION` statement: the
readable source of a function the migrations create. A migration never reads these files;
it holds a frozen copy of their text, so that replaying history always builds what it built
when it was written. These tests hold the two together: the function in the migrated
database is exactly its file (body, comments inside it, signature and options), and no
function of the application's lacks a file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "services" / "plume"
SOURCES = sorted(PACKAGE.glob("**/sql/*.sql"))

# The statement a source file holds, after its header comments.
_STATEMENT = re.compile(
    r"\A(?:\s*--[^\n]*\n)*\s*CREATE OR REPLACE FUNCTION\s+(?:public\.)?(\w+)\s*\(", re.IGNORECASE
)

_DEFINITIONS = """
    SELECT pg_get_functiondef(p.oid)
    FROM pg_proc AS p
    WHERE p.pronamespace = 'public'::regnamespace AND p.proname = %s
    ORDER BY p.oid
"""

# The functions the migrations created: plpgsql or sql, in schema public, not an
# extension's.
_MIGRATED_FUNCTIONS = """
    SELECT p.proname, pg_get_function_identity_arguments(p.oid)
    FROM pg_proc AS p
    JOIN pg_language AS l ON l.oid = p.prolang
    WHERE p.pronamespace = 'public'::regnamespace
      AND l.lanname IN ('plpgsql', 'sql')
      AND NOT EXISTS (
          SELECT FROM pg_depend AS d
          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
      )
    ORDER BY p.proname
"""

_HOW_TO_FIX = (
    "A migration never reads the .sql files: it holds a frozen copy of their text. If the "
    "file is right, add a new migration that executes a frozen copy of it (CREATE OR "
    "REPLACE, as migrations/versions/2026-12-06-0900_ledger_functions_as_source.py does), "
    "and never edit an existing migration. If the database is right, make the file what "
    "pg_get_functiondef shows."
)


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def defined_function(source: Path) -> str:
    """The name of the function the file defines (its one statement)."""
    match = _STATEMENT.match(source.read_text())
    if match is None:
        pytest.fail(
            f"{relative(source)} must be one CREATE OR REPLACE FUNCTION statement, after "
            "comment lines only",
            pytrace=False,
        )
    return match.group(1)


@pytest.fixture
def connection(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """The migrated test database, as its owner, in a transaction that is rolled back."""
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url) as connection:
        try:
            yield connection
        finally:
            connection.rollback()


def definitions(connection: psycopg.Connection[tuple[object, ...]], name: str) -> list[str]:
    return [str(row[0]) for row in connection.execute(_DEFINITIONS, (name,))]


def test_the_sources_are_found() -> None:
    assert {path.name for path in SOURCES} >= {
        "quota_reserve.sql",
        "quota_settle.sql",
        "quota_extend.sql",
        "quota_release_expired.sql",
        "quota_ledger_copy_limits.sql",
    }


def test_each_file_defines_the_function_it_is_named_after_and_no_other_file_does() -> None:
    names = [defined_function(source) for source in SOURCES]
    for source, name in zip(SOURCES, names, strict=True):
        assert source.stem == name, f"{relative(source)} defines {name}: name the file {name}.sql"
        assert len(_STATEMENT.findall(source.read_text())) == 1, relative(source)
    duplicates = {name for name in names if names.count(name) > 1}
    assert not duplicates, f"defined by more than one file: {sorted(duplicates)}"


@pytest.mark.parametrize("source", SOURCES, ids=relative)
def test_the_migrated_function_is_exactly_its_source_file(
    connection: psycopg.Connection[tuple[object, ...]], source: Path
) -> None:
    """Executing the file in the migrated database (CREATE OR REPLACE, rolled back) leaves
    the function's definition as the migrations made it, or the file is not its source."""
    name = defined_function(source)
    migrated = definitions(connection, name)
    assert len(migrated) == 1, (
        f"{relative(source)} defines {name}, but the migrated database has "
        f"{len(migrated)} functions of that name. {_HOW_TO_FIX}"
    )
    try:
        connection.execute(source.read_text())
    except psycopg.Error as error:
        pytest.fail(
            f"{relative(source)} cannot replace the migrated function {name} ({error}): its "
            f"signature or return type differs. {_HOW_TO_FIX}",
            pytrace=False,
        )
    from_file = definitions(connection, name)
    if from_file != migrated:
        if len(from_file) != 1:
            detail = "it created another function of that name, with a different signature"
        else:
            detail = "\n".join(
                difflib.unified_diff(
                    migrated[0].splitlines(),
                    from_file[0].splitlines(),
                    "migrated database",
                    relative(source),
                    lineterm="",
                )
            )
        pytest.fail(
            f"The function {name} in the migrated database is not {relative(source)}:\n"
            f"{detail}\n{_HOW_TO_FIX}",
            pytrace=False,
        )


def test_every_migrated_function_has_a_source_file(
    connection: psycopg.Connection[tuple[object, ...]],
) -> None:
    sourced = {defined_function(source) for source in SOURCES}
    missing = [
        f"{name}({arguments})"
        for name, arguments in connection.execute(_MIGRATED_FUNCTIONS)
        if name not in sourced
    ]
    assert not missing, (
        f"Functions without a source file: {', '.join(missing)}. Give each one a file "
        "services/plume/<package>/sql/<name>.sql holding its CREATE OR REPLACE FUNCTION "
        "statement, exactly what the migration creates (pg_get_functiondef shows it; comments "
        "inside the body are part of it), and have the migration hold a frozen copy of it."
    )
