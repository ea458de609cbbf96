"""Print the OpenAPI document as committed in docs/openapi.json (``make openapi``)."""

import json

import django


def openapi_json() -> str:
    from siyu.config.api import api

    return json.dumps(api.get_openapi_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    django.setup()
    print(openapi_json(), end="")  # noqa: T201
