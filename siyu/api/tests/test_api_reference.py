import pytest

from scripts.api_reference import API_DOC, BEGIN, END, load_openapi, with_table


def test_the_api_reference_lists_every_route_of_the_committed_openapi_document() -> None:
    """After `make openapi` the route table in docs/api.md is regenerated; review both together."""
    document = API_DOC.read_text(encoding="utf-8")
    assert document == with_table(document, load_openapi())


def test_every_operation_of_the_openapi_document_has_a_row() -> None:
    openapi = load_openapi()
    table = API_DOC.read_text(encoding="utf-8").split(BEGIN)[1].split(END)[0]
    for path, operations in openapi["paths"].items():
        for method in operations:
            assert f"| {method.upper()} | `{path}` |" in table


@pytest.mark.parametrize(
    "document",
    ["no markers at all", f"{END}\n{BEGIN}", f"{BEGIN}\n{BEGIN}\n{END}"],
)
def test_a_document_without_one_ordered_pair_of_markers_is_refused(document: str) -> None:
    with pytest.raises(ValueError, match="marker"):
        with_table(document, load_openapi())
