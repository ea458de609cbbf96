from django.test import Client
from django.urls import reverse

from siyu.testing.stories import PASSWORD, Company


def test_sign_in_lands_on_home_with_the_loop_navigation(acme: Company) -> None:
    client = Client()
    response = client.post(
        reverse("console:login"), {"username": "acme-ops", "password": PASSWORD}, follow=True
    )
    page = response.content.decode()
    assert response.status_code == 200
    for group in ["获客", "运营", "转化", "管理", "数据", "设置"]:
        assert group in page
    assert "运营小周" in page
    assert "事件健康" in page  # ops may view event health
    assert "审计日志" not in page  # but not the audit log


def test_wrong_password_is_refused_with_a_message(acme: Company) -> None:
    response = Client().post(reverse("console:login"), {"username": "acme-ops", "password": "x"})
    assert response.status_code == 200
    assert "用户名或密码不正确" in response.content.decode()


def test_a_user_without_a_staff_account_cannot_use_the_console(db: None) -> None:
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("stranger", password=PASSWORD)
    client = Client()
    client.login(username="stranger", password=PASSWORD)
    assert client.get(reverse("console:home")).status_code == 403


def test_the_console_speaks_english_on_request(acme: Company, login) -> None:
    client = login.session(acme["admin"])
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    page = client.get(reverse("console:org")).content.decode()
    assert "Organisation" in page
    assert "Acquire" in page


def test_admin_changes_a_role_from_the_org_page(acme: Company, login) -> None:
    client = login.session(acme["admin"])
    response = client.post(
        reverse("console:org_permissions", args=[acme["bob"].pk]),
        {"role": "manager", "data_scope": ""},
        follow=True,
    )
    assert response.status_code == 200
    acme["bob"].refresh_from_db()
    assert acme["bob"].role == "manager"


def test_invalid_console_input_shows_an_error_and_changes_nothing(acme: Company, login) -> None:
    client = login.session(acme["admin"])
    response = client.post(
        reverse("console:org_permissions", args=[acme["bob"].pk]),
        {"role": "emperor"},
        follow=True,
        HTTP_REFERER=reverse("console:org"),
    )
    assert "emperor" in response.content.decode()
    acme["bob"].refresh_from_db()
    assert acme["bob"].role == "staff"


def test_api_token_is_shown_once_after_creation(acme: Company, login) -> None:
    client = login.session(acme["admin"])
    page = client.post(reverse("console:tokens"), {"name": "ERP"}).content.decode()
    assert "siyu_" in page
    assert "siyu_" not in client.get(reverse("console:tokens")).content.decode()


def test_demo_logins_are_listed_only_in_demo_mode(db: None, settings) -> None:
    settings.SIYU_DEMO = False
    assert "siyu-demo" not in Client().get(reverse("console:login")).content.decode()
    settings.SIYU_DEMO = True
    assert "siyu-demo" in Client().get(reverse("console:login")).content.decode()
