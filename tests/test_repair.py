"""Schema repairs: a failed query's unknown table or column mended as a small model usually
meant it, each proposal checked by the guard like the model's own SQL."""

from __future__ import annotations

from schemas import guard
from schemas.model import Column, DatabaseSchema, ForeignKey, Table
from schemas.repair import MAX_REPAIRS, repairs


def _table(name: str, *columns: str, pk: str | None = None, fks: tuple[ForeignKey, ...] = ()) -> Table:
    return Table(
        name=name,
        columns=tuple(Column(name=c, type="TEXT") for c in columns),
        primary_key=(pk,) if pk else (),
        foreign_keys=fks,
    )


def _fk(column: str, table: str, ref: str) -> ForeignKey:
    return ForeignKey(columns=(column,), ref_table=table, ref_columns=(ref,))


PETS = DatabaseSchema(
    dialect="sqlite",
    tables=(
        _table("Student", "StuID", "Fname", "LName", "Age", pk="StuID"),
        _table("Has_Pet", "StuID", "PetID", fks=(_fk("StuID", "Student", "StuID"), _fk("PetID", "Pets", "PetID"))),
        _table("Pets", "PetID", "PetType", "pet_age", pk="PetID"),
    ),
)
CONCERTS = DatabaseSchema(
    dialect="sqlite",
    tables=(
        _table("stadium", "Stadium_ID", "Name", "Capacity", pk="Stadium_ID"),
        _table("singer", "Singer_ID", "Name", pk="Singer_ID"),
        _table("concert", "concert_ID", "Stadium_ID", fks=(_fk("Stadium_ID", "stadium", "Stadium_ID"),)),
        _table(
            "singer_in_concert",
            "concert_ID",
            "Singer_ID",
            fks=(_fk("concert_ID", "concert", "concert_ID"), _fk("Singer_ID", "singer", "Singer_ID")),
        ),
    ),
)


def _first(sql: str, schema: DatabaseSchema) -> tuple[str, tuple[str, ...]]:
    found = repairs(sql, schema)
    assert found, f"no repair for {sql}"
    verdict = guard.check(found[0].sql, schema)
    assert verdict.ok, verdict.reason  # every proposal here is one the guard accepts
    return found[0].sql, found[0].notes


def test_a_column_pinned_on_the_wrong_table_is_read_from_a_table_joined_for_it() -> None:
    sql, notes = _first(
        "SELECT T1.fname FROM Pets AS T1 JOIN Has_Pet AS T2 ON T1.PetID = T2.PetID WHERE T1.PetType = 'cat'", PETS
    )
    assert sql == (
        "SELECT Student.Fname FROM Pets AS T1 JOIN Has_Pet AS T2 ON T1.PetID = T2.PetID "
        "JOIN Student ON T2.StuID = Student.StuID WHERE T1.PetType = 'cat'"
    )
    assert notes == ("T1.fname read from Student, joined to T2",)


def test_a_bare_column_of_a_table_two_joins_away_goes_through_the_bridge_table() -> None:
    sql, notes = _first("SELECT count(*) FROM Student WHERE PetType = 'cat'", PETS)
    assert "JOIN Has_Pet ON Student.StuID = Has_Pet.StuID JOIN Pets ON Has_Pet.PetID = Pets.PetID" in sql
    assert "WHERE Pets.PetType = 'cat'" in sql
    assert notes == ("PetType read from Pets, joined to Student through Has_Pet",)


def test_the_other_missing_columns_of_the_alias_move_with_it() -> None:
    sql, notes = _first(
        "SELECT T2.Name, T2.Capacity FROM concert AS T1 JOIN singer_in_concert AS T2 ON T1.concert_ID = T2.concert_ID",
        CONCERTS,
    )
    assert sql.startswith("SELECT stadium.Name, stadium.Capacity FROM concert AS T1")  # not singer.Name
    assert "JOIN stadium ON T1.Stadium_ID = stadium.Stadium_ID" in sql
    assert notes == ("T2.Name and T2.Capacity read from stadium, joined to T1",)


def test_an_alias_on_the_wrong_table_is_read_from_the_one_with_all_its_columns() -> None:
    sql, notes = _first("SELECT T2.Name, T2.Capacity FROM stadium_list AS T2", CONCERTS)
    assert sql == "SELECT T2.Name, T2.Capacity FROM stadium AS T2"
    assert notes == ("table stadium_list read as stadium",)
    sql, notes = _first(
        "SELECT T1.Name FROM concert AS T1 JOIN singer_in_concert AS T2 ON T1.Stadium_ID = T2.concert_ID", CONCERTS
    )
    assert notes[0] == "T1 read from stadium instead of concert"


def test_misspelt_names_are_read_as_the_closest_ones() -> None:
    assert _first("SELECT avg(PetAge) FROM Pets", PETS) == (
        "SELECT AVG(pet_age) FROM Pets",
        ("PetAge read as pet_age",),
    )
    sql, notes = _first("SELECT count(*) FROM students", PETS)
    assert sql == "SELECT COUNT(*) FROM Student AS students" and notes == ("table students read as Student",)


def test_nothing_to_mend_or_nothing_close_gives_no_repair() -> None:
    assert repairs("SELECT Fname FROM Student", PETS) == []  # nothing unknown
    assert repairs("SELECT salary FROM Student", PETS) == []  # no table has anything like it
    assert repairs("SELECT * FROM invoices", PETS) == []
    assert repairs("SELEC nonsense FROM", PETS) == []  # does not parse
    assert repairs('SELECT Fname FROM Student WHERE LName = "Smith"', PETS) == []  # a SQLite string literal
    assert repairs("WITH t AS (SELECT Fname FROM Student) SELECT Fname FROM t", PETS) == []  # a CTE is no table


def test_repairs_are_few_and_distinct() -> None:
    found = repairs("SELECT T1.Name FROM singer_in_concert AS T1", CONCERTS)
    assert 1 <= len(found) <= MAX_REPAIRS
    assert len({r.sql for r in found}) == len(found)


def test_a_repair_is_still_only_a_proposal_for_the_guard() -> None:
    # a write stays a write: the repair mends the name, the guard still refuses the statement
    for mended in repairs("DELETE FROM students", PETS):
        assert guard.check(mended.sql, PETS).rule == "read_only"
