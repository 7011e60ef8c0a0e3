from __future__ import annotations

from schemas.registry import Registry
from schemas.render import render_schema


def test_register_each_engine(registry: Registry, sample_url: str) -> None:
    entry = registry.add("sample", sample_url, registered_by="test")
    names = sorted(t.name for t in entry.schema.tables)
    assert names == ["Order Details", "audit_log", "department_payroll", "departments", "employees"]
    text = render_schema(entry.schema)
    assert '"Order Details"' in text or "`Order Details`" in text
    print(text)
