"""The pages work air-gapped: /docs and /review load their scripts and styles from this app,
and no URL in their HTML points at another host."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from vdup.api.app import create_app
from vdup.settings import Settings


class Links(HTMLParser):
    """Every src and href in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]


def links(page: str) -> list[str]:
    parser = Links()
    parser.feed(page)
    return parser.urls


@pytest.fixture
def client(tmp_path):
    # no lifespan (no `with`): the pages and their assets need no catalog or models
    return TestClient(create_app(Settings(data_dir=tmp_path / "data", api_keys=["k"])))


@pytest.mark.parametrize("page", ["/docs", "/review"])
def test_a_page_names_no_other_host_and_needs_no_key(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = links(r.text)
    assert urls, f"{page} links nothing: the parser found no assets"
    off_host = [u for u in urls if u.startswith(("http://", "https://", "//"))]
    assert off_host == [], f"{page} points off-host: {off_host}"
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_docs_serves_swagger_ui_from_this_app(client):
    page = client.get("/docs").text
    assert "/static/swagger/swagger-ui-bundle.js" in links(page)
    assert "'/openapi.json'" in page
    js = client.get("/static/swagger/swagger-ui-bundle.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "SwaggerUIBundle" in js.text
    css = client.get("/static/swagger/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/redoc").status_code == 404


def test_the_review_page_is_a_shell_with_its_own_assets(client):
    r = client.get("/review")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    urls = links(r.text)
    assert {"/static/review/review.js", "/static/review/review.css"} <= set(urls)
    js = client.get("/static/review/review.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "innerHTML" not in js.text  # data goes in as text only
    assert "${root}" not in r.text


def test_the_pages_are_not_in_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/docs", "/review"} & set(paths)
