"""Exports: a segment's customers in the caller's scope, masked phones, formula-safe, audited."""

import csv
import io
import json
from typing import Any

import openpyxl
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from siyu.audit.models import AuditEntry
from siyu.core.tenancy import tenant_context
from siyu.customers.attributes import field_create
from siyu.customers.lifecycle import stage_set
from siyu.customers.models import Customer
from siyu.customers.services import identity_link, relation_added
from siyu.segments.models import SavedSegment
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.testing.stories import Company


@pytest.fixture
def book(acme: Company) -> dict[str, Customer]:
    """alice follows 张三 (tagged, 意向, with a phone); bob follows a customer whose name is a
    formula; nobody follows 无人."""
    with tenant_context(acme.tenant):
        field_create(key="city", name="城市", kind="text")
        customers = {}
        for key, staff, name in [("zhang", "alice", "张三"), ("evil", "bob", "=1+2")]:
            relation = relation_added(
                staff=acme[staff], external_userid=f"wm{key}", at=timezone.now(), source="wecom"
            )
            assert relation is not None
            customer = relation.customer
            customer.name = name
            customer.attributes = {"city": "-上海" if key == "evil" else "上海"}
            customer.save()
            customers[key] = customer
        identity_link(customers["zhang"], "phone", "13800138000")
        identity_link(customers["zhang"], "unionid", "oZHANG")
        stage_set(customer=customers["zhang"], stage="intent", source="console")
        tag = Tag.objects.create(group=TagGroup.objects.create(name="意向"), name="高意向")
        CustomerTag.objects.create(customer=customers["zhang"], tag=tag, source="manual")
        customers["nobody"] = Customer.objects.create(name="无人")
    return customers


def export(client: Client, **body: Any) -> Any:
    return client.post("/api/v1/exports", data=json.dumps(body), content_type="application/json")


def csv_rows(response: Any) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_admin_exports_everyone_with_full_phones(acme: Company, book, login) -> None:
    response = export(login.token(acme["admin"]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="customers-')
    header, *rows = csv_rows(response)
    assert header == [
        "id",
        "姓名",
        "手机号",
        "unionid",
        "生命周期",
        "标签",
        "跟进员工",
        "添加时间",
        "城市",
    ]
    zhang = next(row for row in rows if row[0] == str(book["zhang"].pk))
    assert zhang[1:7] == ["张三", "13800138000", "oZHANG", "意向", "高意向", "Alice"]
    assert zhang[7] and zhang[8] == "上海"
    # 无人 has no relation: the company-wide scope still sees them.
    assert {row[1] for row in rows} == {"张三", "'=1+2", "无人"}


def test_staff_export_only_their_customers_with_masked_phones(acme: Company, book, login) -> None:
    header, *rows = csv_rows(export(login.token(acme["alice"])))
    assert [row[0] for row in rows] == [str(book["zhang"].pk)]
    assert rows[0][2] == "138****8000"


def test_formula_cells_are_neutralised_in_csv_and_xlsx(acme: Company, book, login) -> None:
    client = login.token(acme["admin"])
    _header, *rows = csv_rows(export(client, expression="staff:bob"))
    assert [(row[1], row[8]) for row in rows] == [("'=1+2", "'-上海")]
    response = export(client, expression="staff:bob", format="xlsx")
    assert response.status_code == 200
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = workbook.worksheets[0]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[1][1] == "'=1+2"
    assert sheet.cell(row=2, column=2).data_type == "s"  # text, not a formula


def test_every_export_is_audited_with_who_what_and_how_many(acme: Company, book, login) -> None:
    with tenant_context(acme.tenant):
        segment = SavedSegment.objects.create(name="意向客户", expression="stage:intent")
    export(login.token(acme["manager"]), segment_id=segment.pk)
    export(login.token(acme["boss"]), expression='tag:"高意向"', format="xlsx")
    with tenant_context(acme.tenant):
        entries = list(AuditEntry.objects.filter(action="customers.exported").order_by("pk"))
    assert [(e.actor_id, e.details) for e in entries] == [
        (
            acme["manager"].pk,
            {
                "expression": "stage:intent",
                "segment_id": segment.pk,
                "segment": "意向客户",
                "format": "csv",
                "rows": 1,  # 张三 is alice's, inside the manager's department
                "phones_masked": True,
            },
        ),
        (
            acme["boss"].pk,
            {
                "expression": 'tag:"高意向"',
                "segment_id": None,
                "segment": "",
                "format": "xlsx",
                "rows": 1,
                "phones_masked": False,
            },
        ),
    ]


def test_a_bad_expression_is_a_clear_400_and_nothing_is_audited(acme: Company, book, login) -> None:
    response = export(login.token(acme["admin"]), expression='tag:"没有这个标签"')
    assert response.status_code == 400
    assert set(response.json()) >= {"code", "message"}
    assert export(login.token(acme["admin"]), segment_id=999999).status_code == 404
    bad_format = export(login.token(acme["admin"]), format="pdf")
    assert bad_format.status_code == 422
    with tenant_context(acme.tenant):
        assert not AuditEntry.objects.filter(action="customers.exported").exists()


def test_another_tenant_exports_none_of_acme(acme: Company, globex: Company, book, login) -> None:
    _header, *rows = csv_rows(export(login.token(globex["admin"])))
    assert rows == []


def test_console_export_downloads_and_a_bad_expression_goes_back_to_the_form(
    acme: Company, book, login
) -> None:
    client = login.session(acme["alice"])
    response = client.get(reverse("console:export"), {"expression": "", "format": "csv"})
    _header, *rows = csv_rows(response)
    assert [row[2] for row in rows] == ["138****8000"]
    bad = client.get(reverse("console:export"), {"expression": "tag:", "format": "csv"})
    assert bad.status_code == 302
    assert bad["Location"] == reverse("console:imports")
