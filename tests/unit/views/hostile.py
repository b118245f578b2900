"""Hostile text for the HTML views, and a parser that finds what of it became markup."""

from __future__ import annotations

from html.parser import HTMLParser

PAYLOADS = (
    "</script><img src=x onerror=alert(2)>",
    '"><svg onload=alert(3)>',
    "<img src=x onerror=alert(1)>",
    "</title><script>alert(4)</script>",
)


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the text of every script element (an HTML
    parser ends a script at the first `</script`, as a browser does)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.scripts: list[str] = []
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag == "script":
            self._script = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)


def markup_from_data(page: str) -> list[str]:
    """What on `page` came from `PAYLOADS` as markup: an element with an event handler
    attribute (`on...`), an `img` element, a script element that runs a payload's code, or a
    script whose text holds a payload's raw markup (inert only as long as nothing parses that
    text as HTML again)."""
    parser = _Elements()
    parser.feed(page)
    parser.close()
    found = [
        f"<{tag} {name}={value!r}>"
        for tag, attrs in parser.tags
        for name, value in attrs
        if name.startswith("on")
    ]
    found += [f"<{tag}>" for tag, _ in parser.tags if tag == "img"]
    found += [f"<script>{t}</script>" for t in parser.scripts if t.strip().startswith("alert(")]
    found += [f"script text with {p!r}" for t in parser.scripts for p in PAYLOADS if p in t]
    return found
