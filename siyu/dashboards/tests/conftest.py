import pytest

from .helpers import declare_contract_types


@pytest.fixture(autouse=True)
def contract_types(monkeypatch: pytest.MonkeyPatch) -> None:
    declare_contract_types(monkeypatch)
