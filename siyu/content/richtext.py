"""An allow-list HTML cleaner for article bodies.

Article bodies are written by staff but rendered on customers' phones under our domain, so
anything beyond simple formatting (scripts, styles, event handlers, ``javascript:`` links,
iframes) is dropped. Unknown tags are removed with their markup but keep their text.
"""

from html import escape
from html.parser import HTMLParser
from urllib.parse import urlsplit

ALLOWED_TAGS = {
    "p", "br", "strong", "b", "em", "i", "u", "s", "h2", "h3", "h4", "ul", "ol", "li",
    "blockquote", "a", "img", "span", "hr",
}  # fmt: skip
VOID_TAGS = {"br", "img", "hr"}
# Content of these is not text for the reader: drop it entirely.
DROP_CONTENT = {"script", "style", "iframe", "object", "embed", "template", "noscript"}
ALLOWED_ATTRS = {"a": {"href"}, "img": {"src", "alt"}}
MAX_BODY_CHARS = 200_000


def _safe_url(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme in {"http", "https"} or (not parts.scheme and value.startswith("/"))


class _Cleaner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROP_CONTENT:
            self.dropping += 1
            return
        if self.dropping or tag not in ALLOWED_TAGS:
            return
        kept = []
        for name, value in attrs:
            if name in ALLOWED_ATTRS.get(tag, set()) and value is not None:
                if name in {"href", "src"} and not _safe_url(value):
                    continue
                kept.append(f' {name}="{escape(value, quote=True)}"')
        if tag == "a":
            kept.append(' rel="noopener nofollow"')
        self.out.append(f"<{tag}{''.join(kept)}>")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in DROP_CONTENT:
            self.dropping = max(self.dropping - 1, 0)
            return
        if self.dropping or tag not in self.open:
            return
        # Close everything opened since, so the output is always well nested.
        while self.open:
            current = self.open.pop()
            self.out.append(f"</{current}>")
            if current == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.out.append(escape(data, quote=False))


def sanitize_html(raw: str) -> str:
    cleaner = _Cleaner()
    cleaner.feed(raw[:MAX_BODY_CHARS])
    cleaner.close()
    cleaner.out.extend(f"</{tag}>" for tag in reversed(cleaner.open))
    return "".join(cleaner.out).strip()
