"""Imports: upload → preview (nothing written) → confirm → run, over the API and the console."""

import io
from typing import TYPE_CHECKING, Any

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from siyu.core.models import Event
from siyu.core.tenancy import tenant_context
from siyu.customers.attributes import field_create
from siyu.customers.models import Customer, CustomerIdentity
from siyu.imports.models import ImportJob, ImportRowError, ImportStatus
from siyu.imports.services import import_job_run
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.testing.stories import Company

if TYPE_CHECKING:
    from siyu.sandbox.httpd import Sandbox

CUSTOMERS_CSV = (
    "姓名,手机号,标签,生命周期,城市\n"
    "张三,138-0013-8000,高意向、新客,意向,上海\n"
    "李四,+86 139 0013 9000,高意向,,北京\n"
    "王五,12345,,,\n"
    ",,,,\n"
    "赵六,,新客,,\n"
    "钱七,13700137000,,火星,\n"
    "孙八,13600136001,没有这个标签,,\n"
)


def csv_file(text: str, encoding: str = "utf-8", name: str = "customers.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def xlsx_file(rows: list[list[Any]], name: str = "customers.xlsx") -> SimpleUploadedFile:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return SimpleUploadedFile(name, buffer.getvalue())


def upload(client: Client, file: SimpleUploadedFile, kind: str = "customers") -> Any:
    return client.post("/api/v1/imports", {"file": file, "kind": kind})


def run_to_end(job_id: int) -> None:
    outcome = "continued"
    while outcome == "continued":
        outcome = import_job_run(job_id=job_id)
    assert outcome == "done"


def confirm_and_run(client: Client, job_id: int) -> dict[str, Any]:
    response = client.post(f"/api/v1/imports/{job_id}/confirm")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued"
    run_to_end(job_id)
    return client.get(f"/api/v1/imports/{job_id}").json()


@pytest.fixture
def ops(acme: Company, login) -> Client:
    with tenant_context(acme.tenant):
        field_create(key="city", name="城市", kind="text")
        group = TagGroup.objects.create(name="客户意向")
        for name in ("高意向", "新客"):
            Tag.objects.create(group=group, name=name)
    return login.token(acme["ops"])


def test_preview_maps_chinese_headers_validates_every_row_and_writes_nothing(
    acme: Company, ops: Client
) -> None:
    response = upload(ops, csv_file(CUSTOMERS_CSV))
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["status"] == "previewed"
    assert job["total_rows"] == 6  # the blank line is not a row
    assert {c["target"] for c in job["summary"]["columns"]} == {
        "name",
        "phone",
        "tags",
        "stage",
        "field:city",
    }
    assert (job["summary"]["valid"], job["summary"]["invalid"]) == (2, 4)
    assert [(e["row"], e["column"]) for e in job["summary"]["errors"]] == [
        (4, "手机号"),
        (6, "手机号"),
        (7, "生命周期"),
        (8, "标签"),
    ]
    assert "不存在" in job["summary"]["errors"][3]["message"]
    first = job["preview"][0]
    assert first["row"] == 2
    assert first["values"]["phone"] == "13800138000"
    assert first["values"]["tags"] == ["高意向", "新客"]
    assert first["values"]["stage"] == "intent"
    assert first["values"]["fields"] == {"city": "上海"}
    assert first["customer_id"] is None
    assert job["preview"][1]["values"]["phone"] == "13900139000"
    with tenant_context(acme.tenant):
        assert not Customer.objects.exists()
        assert not CustomerIdentity.objects.exists()
        assert Tag.objects.count() == 2
        assert not Event.objects.exists()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_in_utf8_with_or_without_bom_and_in_gbk_reads_the_same(
    encoding: str, ops: Client
) -> None:
    job = upload(ops, csv_file(CUSTOMERS_CSV, encoding)).json()
    assert job["encoding"] == {"gbk": "gb18030"}.get(encoding, encoding)
    assert job["preview"][0]["values"]["name"] == "张三"
    assert job["preview"][0]["values"]["tags"] == ["高意向", "新客"]
    assert job["summary"]["valid"] == 2


def test_bad_rows_are_reported_while_good_rows_land(acme: Company, ops: Client) -> None:
    job_id = upload(ops, csv_file(CUSTOMERS_CSV)).json()["id"]
    job = confirm_and_run(ops, job_id)
    assert job["status"] == "done"
    assert (job["processed_rows"], job["total_rows"], job["percent"]) == (6, 6, 100)
    assert (job["created_count"], job["updated_count"], job["failed_count"]) == (2, 0, 4)
    with tenant_context(acme.tenant):
        zhang = CustomerIdentity.objects.get(kind="phone", value="13800138000").customer
        assert (zhang.name, zhang.stage, zhang.attributes) == ("张三", "intent", {"city": "上海"})
        tags = CustomerTag.objects.filter(customer=zhang).select_related("tag__group")
        assert {(t.tag.group.name, t.tag.name, t.source) for t in tags} == {
            ("客户意向", "高意向", "import"),
            ("客户意向", "新客", "import"),
        }
        assert {t.applied_by_id for t in tags} == {acme["ops"].pk}
        assert Customer.objects.count() == 2
        assert Event.objects.filter(type="customer.tags_changed", source="import").count() == 2
        assert list(ImportRowError.objects.filter(job_id=job_id).values_list("row", "column")) == [
            (4, "手机号"),
            (6, "手机号"),
            (7, "生命周期"),
            (8, "标签"),
        ]
    report = ops.get(f"/api/v1/imports/{job_id}/errors")
    assert report.status_code == 200
    assert report["Content-Type"].startswith("text/csv")
    lines = report.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "行号,列,错误"
    assert lines[1].startswith("4,手机号,")
    assert len(lines) == 5


def test_reimporting_the_same_file_creates_nobody_twice(acme: Company, ops: Client) -> None:
    first = confirm_and_run(ops, upload(ops, csv_file(CUSTOMERS_CSV)).json()["id"])
    second_upload = upload(ops, csv_file(CUSTOMERS_CSV)).json()
    assert second_upload["preview"][0]["customer_id"] is not None  # preview says "update"
    second = confirm_and_run(ops, second_upload["id"])
    assert (first["created_count"], second["created_count"]) == (2, 0)
    assert second["updated_count"] == 2
    with tenant_context(acme.tenant):
        assert Customer.objects.count() == 2
        assert CustomerIdentity.objects.count() == 2
        assert CustomerTag.objects.count() == 3
        assert Tag.objects.count() == 2
        # The second run added no tag, so it recorded no tag change.
        assert Event.objects.filter(type="customer.tags_changed").count() == 2


def test_rows_link_to_customers_known_by_another_identifier(in_acme: Company, ops: Client) -> None:
    from siyu.customers.services import customer_ensure

    known = customer_ensure(external_userid="wmEXT001", unionid="oUNION001")
    text = "external_userid,unionid,手机号\nwmEXT001,,13600136000\n,oUNION001,\n"
    job = confirm_and_run(ops, upload(ops, csv_file(text)).json()["id"])
    assert (job["created_count"], job["updated_count"]) == (0, 2)
    assert set(known.identities.values_list("kind", "value")) == {
        ("external_userid", "wmEXT001"),
        ("unionid", "oUNION001"),
        ("phone", "13600136000"),
    }


def test_identifiers_of_two_customers_in_one_row_are_refused(in_acme: Company, ops: Client) -> None:
    from siyu.customers.services import customer_ensure

    customer_ensure(external_userid="wmA")
    customer_ensure(external_userid="wmB", unionid="oB")
    text = "external_userid,unionid\nwmA,oB\n"
    job = confirm_and_run(ops, upload(ops, csv_file(text)).json()["id"])
    assert job["failed_count"] == 1
    error = ImportRowError.objects.get(job_id=job["id"])
    assert "请先合并" in error.message


def test_a_row_failing_half_way_leaves_nothing_of_itself(acme: Company, ops: Client) -> None:
    with tenant_context(acme.tenant):
        for group in ("会员", "渠道"):
            Tag.objects.create(group=TagGroup.objects.create(name=group), name="VIP")
    # The customer is created, linked and moved to 意向 before the ambiguous tag fails the row.
    text = "手机号,生命周期,城市,标签\n13500135000,意向,杭州,VIP\n13500135001,意向,杭州,会员:VIP\n"
    job_id = upload(ops, csv_file(text)).json()["id"]
    job = confirm_and_run(ops, job_id)
    assert (job["created_count"], job["failed_count"]) == (1, 1)
    with tenant_context(acme.tenant):
        assert not CustomerIdentity.objects.filter(value="13500135000").exists()
        assert Customer.objects.count() == 1
        survivor = Customer.objects.get()
        assert set(Event.objects.values_list("customer_id", flat=True)) == {survivor.pk}
        assert [t.tag.group.name for t in CustomerTag.objects.select_related("tag__group")] == [
            "会员"
        ]
        error = ImportRowError.objects.get(job_id=job_id)
        assert (error.row, error.column) == (2, "标签")
        assert "多个标签组" in error.message


def test_xlsx_is_read_with_numeric_phones_and_dates(acme: Company, ops: Client) -> None:
    with tenant_context(acme.tenant):
        field_create(key="birthday", name="生日", kind="date")
    from datetime import datetime

    file = xlsx_file(
        [
            ["昵称", "手机号（必填）", "生日"],
            ["小明", 13800138000, datetime(1990, 5, 1)],
            [None, None, None],
            ["小红", "13900139000", "1991-02-03"],
        ]
    )
    job = upload(ops, file).json()
    assert (job["file_format"], job["total_rows"], job["summary"]["valid"]) == ("xlsx", 2, 2)
    assert job["preview"][0]["values"]["fields"] == {"birthday": "1990-05-01"}
    done = confirm_and_run(ops, job["id"])
    assert done["created_count"] == 2
    with tenant_context(acme.tenant):
        ming = CustomerIdentity.objects.get(value="13800138000").customer
        assert ming.attributes == {"birthday": "1990-05-01"}


def test_progress_advances_in_batches_and_a_run_resumes_where_it_stopped(
    acme: Company, ops: Client
) -> None:
    rows = "".join(f"客户{i},1380000{i:04d}\n" for i in range(5))
    job_id = upload(ops, csv_file("姓名,手机号\n" + rows)).json()["id"]
    ops.post(f"/api/v1/imports/{job_id}/confirm")
    assert import_job_run(job_id=job_id, batch_rows=2) == "continued"
    status = ops.get(f"/api/v1/imports/{job_id}").json()
    assert (status["status"], status["processed_rows"], status["percent"]) == ("running", 2, 40)
    assert import_job_run(job_id=job_id, batch_rows=2) == "continued"
    assert import_job_run(job_id=job_id, batch_rows=2) == "done"
    assert import_job_run(job_id=job_id, batch_rows=2) == "skipped"
    status = ops.get(f"/api/v1/imports/{job_id}").json()
    assert (status["status"], status["processed_rows"], status["created_count"]) == ("done", 5, 5)
    with tenant_context(acme.tenant):
        assert Customer.objects.count() == 5


def test_a_job_is_confirmed_once_and_only_with_valid_rows(ops: Client) -> None:
    job_id = upload(ops, csv_file("手机号\n13800138000\n")).json()["id"]
    assert ops.post(f"/api/v1/imports/{job_id}/confirm").status_code == 202
    again = ops.post(f"/api/v1/imports/{job_id}/confirm")
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    hopeless = upload(ops, csv_file("手机号\n123\n")).json()["id"]
    response = ops.post(f"/api/v1/imports/{hopeless}/confirm")
    assert response.status_code == 400
    assert ImportJob.unscoped.get(pk=hopeless).status == ImportStatus.PREVIEWED


def test_tag_taxonomy_import_creates_groups_and_tags_in_wecom_once(
    wecom_acme: Company, sandbox: "Sandbox", login
) -> None:
    from siyu.wecom.client.client import WeComClient

    ops = login.token(wecom_acme["ops"])
    text = "标签组,标签,排序\n地区,上海,3\n地区,北京,\n付费阶段,已付费,\n,孤儿,\n"
    first = confirm_and_run(ops, upload(ops, csv_file(text), kind="tags").json()["id"])
    assert (first["created_count"], first["failed_count"]) == (3, 1)
    second = confirm_and_run(ops, upload(ops, csv_file(text), kind="tags").json()["id"])
    assert (second["created_count"], second["updated_count"]) == (0, 3)
    with tenant_context(wecom_acme.tenant):
        assert sorted(TagGroup.objects.values_list("name", flat=True)) == ["付费阶段", "地区"]
        assert not Tag.objects.filter(wecom_id__isnull=True).exists()
        assert Tag.objects.get(name="上海").order == 3
    with WeComClient.for_tenant(wecom_acme.tenant) as client:
        names = {t["name"] for g in client.corp_tag_list() for t in g["tag"]}
    assert names == {"上海", "北京", "已付费"}


@pytest.mark.parametrize(
    ("file", "status", "message"),
    [
        (SimpleUploadedFile("big.csv", b"phone\n" + b"1" * (20 * 1024 * 1024)), 413, "20 MB"),
        (SimpleUploadedFile("broken.xlsx", b"PK\x03\x04 not really a zip"), 400, "xlsx"),
        (SimpleUploadedFile("old.xls", b"\xd0\xcf\x11\xe0"), 400, ".xlsx"),
        (SimpleUploadedFile("notes.pdf", b"%PDF-1.4"), 400, "CSV"),
        (SimpleUploadedFile("binary.csv", b"\x00\x01\x02\xff" * 10), 400, "CSV"),
        (SimpleUploadedFile("empty.csv", b"\n\n"), 400, "表头"),
        (SimpleUploadedFile("noid.csv", "姓名,城市\n张三,上海\n".encode()), 400, "手机号"),
        (SimpleUploadedFile("twice.csv", "手机,手机号\n1,2\n".encode()), 400, "同一项"),
    ],
    ids=["oversized", "corrupt-xlsx", "xls", "pdf", "binary", "empty", "no-identity", "dup"],
)
def test_unreadable_files_are_refused_and_leave_nothing(
    file: SimpleUploadedFile, status: int, message: str, acme: Company, ops: Client
) -> None:
    response = upload(ops, file)
    assert response.status_code == status, response.content
    assert message in response.json()["message"]
    assert set(response.json()) >= {"code", "message"}
    assert not ImportJob.unscoped.exists()


def test_too_many_rows_are_refused(ops: Client) -> None:
    rows = "13800138000\n" * 100_001
    response = upload(ops, csv_file("手机号\n" + rows))
    assert response.status_code == 400
    assert "100000" in response.json()["message"]
    assert not ImportJob.unscoped.exists()


def test_no_file_or_unknown_kind_is_a_clear_400(ops: Client) -> None:
    assert ops.post("/api/v1/imports", {"kind": "customers"}).json()["code"] == "invalid_input"
    response = ops.post("/api/v1/imports", {"file": csv_file("手机号\n1\n"), "kind": "orders"})
    assert response.status_code == 422


def test_another_tenant_cannot_see_or_confirm_a_job(
    acme: Company, globex: Company, ops: Client, login
) -> None:
    job_id = upload(ops, csv_file("手机号\n13800138000\n")).json()["id"]
    outsider = login.token(globex["admin"])
    assert outsider.get(f"/api/v1/imports/{job_id}").status_code == 404
    assert outsider.post(f"/api/v1/imports/{job_id}/confirm").status_code == 404
    assert outsider.get(f"/api/v1/imports/{job_id}/errors").status_code == 404
    assert outsider.get("/api/v1/imports").json()["count"] == 0
    assert ImportJob.unscoped.get(pk=job_id).status == ImportStatus.PREVIEWED


def test_console_upload_preview_confirm_and_progress(acme: Company, login) -> None:
    client = login.session(acme["admin"])
    page = client.get(reverse("console:imports"))
    assert page.status_code == 200
    assert "上传并预览" in page.content.decode()
    response = client.post(
        reverse("console:import_upload"),
        {"kind": "customers", "file": csv_file("姓名,手机号\n张三,13800138000\n")},
    )
    assert response.status_code == 302
    job = ImportJob.unscoped.get()
    preview = client.get(response["Location"]).content.decode()
    assert "张三" in preview and "确认导入 1 行" in preview
    client.post(reverse("console:import_confirm", args=[job.pk]))
    polling = client.get(reverse("console:import_job", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert 'hx-trigger="every 1s"' in polling.content.decode()
    run_to_end(job.pk)
    finished = client.get(reverse("console:import_job", args=[job.pk]), HTTP_HX_REQUEST="true")
    body = finished.content.decode()
    assert "hx-trigger" not in body and "<progress" in body and "已完成" in body


def test_console_upload_of_a_bad_file_says_why(acme: Company, login) -> None:
    client = login.session(acme["ops"])
    response = client.post(
        reverse("console:import_upload"),
        {"kind": "customers", "file": SimpleUploadedFile("x.xls", b"x")},
        HTTP_REFERER=reverse("console:imports"),
        follow=True,
    )
    assert "请另存为 .xlsx 或 CSV" in response.content.decode()
    assert not ImportJob.unscoped.exists()
