"""Inner callback messages as WeCom sends them to a self-built app, for tests."""

import time
from typing import Any


def event_xml(
    *, corp_id: str, event: str, change_type: str, create_time: int | None = None, **fields: Any
) -> str:
    parts = [
        f"<ToUserName><![CDATA[{corp_id}]]></ToUserName>",
        "<FromUserName><![CDATA[sys]]></FromUserName>",
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>",
        "<MsgType><![CDATA[event]]></MsgType>",
        f"<Event><![CDATA[{event}]]></Event>",
        f"<ChangeType><![CDATA[{change_type}]]></ChangeType>",
    ]
    parts += [f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items()]
    return "<xml>" + "".join(parts) + "</xml>"


def event_data(
    *, event: str, change_type: str, create_time: int, corp_id: str = "", **fields: Any
) -> dict[str, Any]:
    return {
        "ToUserName": corp_id,
        "FromUserName": "sys",
        "CreateTime": str(create_time),
        "MsgType": "event",
        "Event": event,
        "ChangeType": change_type,
        **{k: str(v) for k, v in fields.items()},
    }
