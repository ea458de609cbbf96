from pathlib import Path

from siyu.api.snapshot import openapi_json

SNAPSHOT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_the_openapi_document_matches_the_committed_snapshot() -> None:
    """An API change must be intended: refresh the snapshot with `make openapi` and review it."""
    assert SNAPSHOT.read_text(encoding="utf-8") == openapi_json()
