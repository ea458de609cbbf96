"""The WeCom client against the sandbox over real HTTP."""

import uuid
from collections.abc import Iterator

import pytest
import redis

from siyu.sandbox.client import SandboxControl
from siyu.sandbox.httpd import Sandbox
from siyu.testing.concurrency import race
from siyu.testing.stories import Company
from siyu.testing.worker import CORE_WORKER_DB, redis_url
from siyu.wecom.client import governor
from siyu.wecom.client.client import WeComClient
from siyu.wecom.client.errors import (
    CredentialsError,
    InvalidExternalUser,
    RateLimited,
    TransientError,
    WelcomeAlreadySent,
    WelcomeCodeError,
)
from siyu.wecom.models import AccessToken


@pytest.fixture
def client(wecom_acme: Company) -> WeComClient:
    return WeComClient.for_tenant(wecom_acme.tenant, backoff=0.01)


@pytest.fixture
def control(sandbox: Sandbox) -> SandboxControl:
    return SandboxControl(sandbox.base_url)


def test_one_token_is_shared_by_every_client(
    wecom_acme: Company, sandbox: Sandbox, client: WeComClient
) -> None:
    other = WeComClient.for_tenant(wecom_acme.tenant)
    client.follow_user_list()
    other.follow_user_list()
    client.follow_user_list()
    assert AccessToken.objects.count() == 1
    assert sandbox.calls["externalcontact/get_follow_user_list"] == 3
    stored = AccessToken.objects.get()
    assert stored.corp_id == wecom_acme.tenant.corp_id


def test_an_expired_token_is_refreshed_once_and_the_call_retried(
    client: WeComClient, control: SandboxControl
) -> None:
    client.follow_user_list()
    before = AccessToken.objects.get().token
    control.expire_tokens()
    assert "alice" in client.follow_user_list()
    assert AccessToken.objects.get().token != before


def test_bad_credentials_are_a_typed_error(wecom_acme: Company) -> None:
    tenant = wecom_acme.tenant
    tenant.contact_secret = "wrong"
    with pytest.raises(CredentialsError) as err:
        WeComClient.for_tenant(tenant).follow_user_list()
    assert err.value.errcode == 40001


def test_transient_errors_are_retried(
    wecom_acme: Company, control: SandboxControl, sandbox: Sandbox
) -> None:
    control.set_faults(
        busy_rate=0.3, server_error_rate=0.1, paths=["externalcontact/get_follow_user_list"], seed=7
    )
    patient = WeComClient.for_tenant(wecom_acme.tenant, backoff=0.001, max_retries=8)
    for _ in range(10):
        assert "alice" in patient.follow_user_list()
    # Every call got through although some attempts failed on the way.
    assert sandbox.calls["externalcontact/get_follow_user_list"] == 10


def test_persistent_transient_errors_give_up_after_bounded_retries(
    client: WeComClient, control: SandboxControl, sandbox: Sandbox
) -> None:
    control.set_faults(busy_rate=1.0, paths=["externalcontact/get_follow_user_list"])
    with pytest.raises(TransientError):
        client.follow_user_list()


def test_wecom_rate_limit_is_not_spun_on(
    client: WeComClient, control: SandboxControl, sandbox: Sandbox
) -> None:
    control.set_limits(overrides={"externalcontact/get_follow_user_list": {"per_minute": 2}})
    client.follow_user_list()
    client.follow_user_list()
    with pytest.raises(RateLimited) as err:
        client.follow_user_list()
    assert err.value.errcode == 45009
    assert err.value.retry_after > 0


@pytest.fixture
def redis_counts(settings) -> Iterator[None]:
    """The governor counting in Redis, under keys of its own (removed after)."""
    settings.SIYU_WECOM_RATE_REDIS_URL = redis_url(CORE_WORKER_DB)
    settings.SIYU_WECOM_RATE_REDIS_PREFIX = prefix = f"test-rate-{uuid.uuid4().hex}"
    yield
    server = redis.Redis.from_url(settings.SIYU_WECOM_RATE_REDIS_URL)
    for key in server.scan_iter(f"{prefix}:*"):
        server.delete(key)


@pytest.fixture(params=["database", "redis"])
def call_counts(request: pytest.FixtureRequest) -> str:
    """The governor counting in the database, then in Redis."""
    if request.param == "redis":
        request.getfixturevalue("redis_counts")
    return str(request.param)


def test_the_governor_refuses_before_wecom_would(
    client: WeComClient, sandbox: Sandbox, settings, call_counts: str
) -> None:
    settings.SIYU_WECOM_RATE_LIMITS = {"externalcontact/get_follow_user_list": {"per_minute": 2}}
    client.follow_user_list()
    client.follow_user_list()
    with pytest.raises(RateLimited):
        client.follow_user_list()
    assert sandbox.calls["externalcontact/get_follow_user_list"] == 2  # the third never left
    plan = governor.check_plan(client.tenant_id, {"externalcontact/get_follow_user_list": 5})
    assert [(e.window, e.used, e.limit) for e in plan] == [("minute", 2, 2)]


def test_a_full_hour_takes_back_the_minute_it_counted(
    client: WeComClient, settings, call_counts: str
) -> None:
    api = "externalcontact/get_follow_user_list"
    settings.SIYU_WECOM_RATE_LIMITS = {api: {"per_minute": 5, "per_hour": 2}}
    governor.acquire(client.tenant_id, api)
    governor.acquire(client.tenant_id, api)
    with pytest.raises(RateLimited) as err:
        governor.acquire(client.tenant_id, api)
    assert "hour" in err.value.errmsg
    used = {e.window: e.used for e in governor.check_plan(client.tenant_id, {api: 10})}
    # The database keeps a minute counted by a call the hour refused; Redis takes it back.
    assert used == {"minute": 3 if call_counts == "database" else 2, "hour": 2}


def test_concurrent_callers_never_exceed_the_redis_budget(
    client: WeComClient, settings, redis_counts: None
) -> None:
    api = "externalcontact/get"
    settings.SIYU_WECOM_RATE_LIMITS = {api: {"per_minute": 50}}
    taken: list[bool] = []

    def caller() -> None:
        for _ in range(20):
            try:
                governor.acquire(client.tenant_id, api)
                taken.append(True)
            except RateLimited:
                taken.append(False)

    race([caller] * 5)
    assert taken.count(True) == 50
    assert taken.count(False) == 50


def test_redis_away_counts_in_the_database(client: WeComClient, settings) -> None:
    settings.SIYU_WECOM_RATE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    governor.acquire(client.tenant_id, "externalcontact/get")
    plan = governor.check_plan
    settings.SIYU_WECOM_RATE_REDIS_URL = ""
    used = {e.window: e.used for e in plan(client.tenant_id, {"externalcontact/get": 10**6})}
    assert used == {"minute": 1, "hour": 1}


def test_governor_limits_can_only_be_tightened(settings) -> None:
    settings.SIYU_WECOM_RATE_LIMITS = {"*": {"per_minute": 10**9}}
    assert governor.limit_for("externalcontact/list").per_minute == 10_000
    assert governor.limit_for("externalcontact/add_moment_task").per_minute == 10


def test_members_without_customers_list_as_empty(client: WeComClient) -> None:
    assert client.external_contact_ids("carol") == []  # WeCom says 84061


def test_paging_through_every_customer(
    client: WeComClient, control: SandboxControl, wecom_acme: Company
) -> None:
    corp = wecom_acme.tenant.corp_id
    control.batch(
        corp,
        [("add", {"userid": "alice"}) for _ in range(120)]
        + [("add", {"userid": "bob"}) for _ in range(30)],
    )
    rows = list(client.external_contacts_by_users(["alice", "bob", "carol"]))
    assert len(rows) == 150
    assert {r["follow_info"]["userid"] for r in rows} == {"alice", "bob"}


def test_welcome_codes_map_to_their_errors(
    client: WeComClient, control: SandboxControl, wecom_acme: Company
) -> None:
    corp = wecom_acme.tenant.corp_id
    code = control.simulate(corp, "add", userid="alice")["welcome_code"]
    client.send_welcome_msg(welcome_code=code, text="欢迎")
    with pytest.raises(WelcomeAlreadySent):
        client.send_welcome_msg(welcome_code=code, text="欢迎")
    with pytest.raises(WelcomeCodeError):
        client.send_welcome_msg(welcome_code="stale", text="欢迎")
    with pytest.raises(InvalidExternalUser):
        client.external_contact("wm-unknown")


def test_a_timeout_is_transient_and_may_hide_an_applied_change(
    wecom_acme: Company, control: SandboxControl, sandbox: Sandbox
) -> None:
    impatient = WeComClient.for_tenant(wecom_acme.tenant, timeout=0.3, max_retries=0)
    impatient.follow_user_list()  # fetch the token before the faults start
    control.set_faults(
        timeout_after_rate=1.0, timeout_seconds=1.0, paths=["externalcontact/add_corp_tag"]
    )
    with pytest.raises(TransientError) as err:
        impatient.add_corp_tag({"group_name": "来源", "tag": [{"name": "直播"}]})
    assert err.value.errcode == -2
    # WeCom applied it although we never heard back: callers must make such calls idempotent.
    assert [
        g.group_name for g in sandbox.world.corps[wecom_acme.tenant.corp_id].tag_groups.values()
    ] == ["来源"]
