"""Every endpoint of the review page's server, through FastAPI's TestClient (no browser)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from jsontune.errors import JsontuneError
from jsontune.review.app import LOOPBACK_NAMES, STATIC, TOKEN_COOKIE, create_app, serve
from jsontune.review.job import Review


@pytest.fixture
def review(pred):
    opened = Review.open(pred, seed=3)
    yield opened
    opened.close()


@pytest.fixture
def client(review):
    hosts = [h.strip("[]") for h in LOOPBACK_NAMES]
    with TestClient(create_app(review, hosts=hosts), base_url="http://127.0.0.1:8000") as made:
        yield made


def test_the_page_and_its_files_are_served_with_a_policy_that_allows_only_this_server(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/review.js" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    for name in ("review.js", "review.css"):
        assert client.get(f"/static/{name}").status_code == 200


def test_the_page_names_no_other_server():
    """Nothing in the page's files points elsewhere (no CDN, no font, no analytics): a text goes nowhere else."""
    for path in STATIC.iterdir():
        found = re.findall(
            r"(?:https?:|wss?:)?//[\w.-]+\.\w+|\bimport\s*\(|XMLHttpRequest|sendBeacon|WebSocket", path.read_text()
        )
        assert not found, f"{path.name} names {found}"
    assert "innerHTML" not in (STATIC / "review.js").read_text()  # data reaches the page only as text


def test_summary_queue_and_row(client, review):
    summary = client.get("/api/summary").json()
    assert (summary["total"], summary["in_queue"], summary["reviewed"]) == (13, 6, 0)
    assert summary["audit"]["sentence"].startswith("Audit of the rows the threshold accepts")
    queue = client.get("/api/queue").json()
    assert queue["ids"] == review.order and queue["start"] == 0 and set(queue["status"]) == {"open"}
    assert client.get("/api/queue", params={"field": "producto", "below": 0.6}).json()["ids"] == [
        "none",
        "repaired",
        "mid",
    ]
    row = client.get("/api/row", params={"id": "low"}).json()
    assert row["id"] == "low" and row["fields"][1] == {
        "name": "cantidad",
        "value": "10",
        "model": "10",
        "confidence": 0.12,
        "changed": False,
    }
    missing = client.get("/api/row", params={"id": "nope"})
    assert missing.status_code == 404 and "has no row 'nope'" in missing.json()["detail"]
    assert client.get("/api/queue", params={"field": "precio"}).status_code == 400


def test_save_decide_and_undo(client, review):
    saved = client.post("/api/save", json={"id": "low", "values": {"cantidad": "100"}, "version": 0}).json()
    assert saved["row"]["fields"][1]["value"] == "100" and saved["row"]["fields"][1]["changed"]
    version = saved["row"]["version"]
    decided = client.post("/api/decide", json={"id": "low", "status": "accepted", "values": {}, "version": version})
    assert decided.json()["row"]["status"] == "accepted" and decided.json()["summary"]["reviewed"] == 1
    assert review.answer("low")["cantidad"] == 100
    undone = client.post("/api/undo", json={}).json()
    assert (
        undone["ids"] == ["low"] and undone["row"]["status"] == "open" and undone["row"]["fields"][1]["value"] == "100"
    )
    client.post("/api/undo", json={})
    assert client.post("/api/undo", json={}).json()["detail"] == "there is nothing left to undo."
    bad = client.post("/api/decide", json={"id": "low", "status": "maybe", "values": {}, "version": 0})
    assert bad.status_code == 422


def test_two_tabs_the_second_save_on_an_old_version_is_told_in_one_sentence(client):
    first = client.get("/api/row", params={"id": "mid"}).json()
    second = client.get("/api/row", params={"id": "mid"}).json()
    client.post("/api/save", json={"id": "mid", "values": {"producto": "baterías"}, "version": first["version"]})
    stale = client.post("/api/save", json={"id": "mid", "values": {"producto": "pilas"}, "version": second["version"]})
    assert stale.status_code == 409 and stale.json()["detail"] == "row mid changed in another tab; reload it."
    fresh = client.get("/api/row", params={"id": "mid"}).json()
    assert fresh["fields"][0]["value"] == "baterías"  # the first tab's change, which the second now sees
    again = client.post("/api/save", json={"id": "mid", "values": {"producto": "pilas"}, "version": fresh["version"]})
    assert again.status_code == 200


def test_changes_from_another_site_are_refused(client, review):
    """A page elsewhere can post a form or a bare body to 127.0.0.1 without asking; neither changes a row."""
    body = '{"id": "low", "status": "accepted", "values": {}, "version": 0}'
    plain = client.post("/api/decide", content=body, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 403
    bare = client.post("/api/decide", content=body, headers={"Content-Type": ""})
    assert bare.status_code == 403
    foreign = client.post(
        "/api/decide", content=body, headers={"Content-Type": "application/json", "Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert review.row("low")["status"] == "open"
    rebound = client.get("/api/summary", headers={"Host": "evil.example"})  # DNS rebinding: another name, same IP
    assert rebound.status_code == 400


def test_with_a_token_every_request_without_it_is_refused(review):
    with TestClient(create_app(review, token="s3cret"), base_url="http://10.1.2.3:8000") as client:
        for path in ("/", "/static/review.js", "/api/summary", "/api/queue", "/api/row?id=low"):
            assert client.get(path).status_code == 401, path
        assert client.post("/api/undo", json={}).status_code == 401
        assert client.get("/api/summary", headers={"X-Review-Token": "wrong"}).status_code == 401
        assert client.get("/api/summary", headers={"X-Review-Token": "s3cret"}).status_code == 200
        assert client.get("/api/summary", params={"token": "s3cret"}).status_code == 200
        first = client.get("/", params={"token": "s3cret"}, follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert client.cookies.get(TOKEN_COOKIE) == "s3cret"  # later requests carry it as a cookie
        assert client.get("/api/summary").status_code == 200


def test_another_address_than_loopback_needs_a_token(review):
    with pytest.raises(JsontuneError, match="--host 0.0.0.0 lets other machines reach the page; give --token"):
        serve(review, host="0.0.0.0", port=0)
