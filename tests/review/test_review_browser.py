"""The review page in a real browser: Debian's chromium driven by Playwright, against `jsontune review` run as
the user runs it (a process of its own, which the test kills with SIGKILL and starts again).

The tests run in file order and share one browser page and one review: each carries on from the last.
`make install` installs chromium; where it is missing these tests fail and say so (they never skip).
JSONTUNE_REVIEW_SCREENSHOT=docs/review.png writes the page's screenshot there (docs/ keeps one).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROWS, SCRIPT_TEXT, write_predictions
from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.processes import start
from jsontune.review.job import review_db_path

# The rows with an answer: the least confident ("low", its cantidad at 0.12) comes first.
BROWSER_ROWS = {key: value for key, value in ROWS.items() if key not in ("none", "repaired")}
START_S = 90.0  # a cold `jsontune review` on a busy 2-core machine imports FastAPI, pandas, ... in a few seconds


class ReviewServer:
    """`jsontune review PRED --port 0` as a child that ends with the test process (`processes.start`)."""

    def __init__(self, pred):
        self.pred, self.process, self.url = pred, None, None

    def start(self) -> str:
        argv = [sys.executable, "-m", "jsontune.cli.app", "review", str(self.pred), "--port", "0", "--audit-share", "0"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        lines: list[str] = []
        found = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                lines.append(line)
                if "review page: " in line:
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + START_S
        while not found.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"`jsontune review` did not start: {''.join(lines)[-2000:]}")
        self.url = re.search(r"review page: (\S+)", "".join(lines)).group(1)
        return self.url

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Debian's chromium is not installed, and the review page's tests need it: run `make install` "
            "(it runs apt-get install chromium) or install it yourself."
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pred = write_predictions(tmp_path_factory.mktemp("review") / "run", BROWSER_ROWS, review={"below": 0.8})
    made = ReviewServer(pred)
    made.start()
    yield made
    made.stop()


@pytest.fixture(scope="module")
def page(browser, server):
    context = browser.new_context(viewport={"width": 1000, "height": 820})
    opened = context.new_page()
    opened.errors = []
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    opened.on("dialog", lambda dialog: opened.errors.append(f"dialog: {dialog.message}") or dialog.dismiss())
    opened.goto(server.url)
    yield opened
    context.close()


def _changes(pred, row_id):
    with sqlite3.connect(review_db_path(pred)) as db:
        return db.execute(
            "SELECT field, old, new, status FROM changes WHERE row_id = ? ORDER BY seq", (row_id,)
        ).fetchall()


def test_the_least_confident_row_is_shown_first_with_its_least_confident_field_in_focus(page):
    from playwright.sync_api import expect

    expect(page.locator("#where")).to_contain_text("row 1 of 3 · id low · open")
    expect(page.locator("#counts")).to_have_text("0 reviewed / 3 in queue / 11 total · 0 skipped · 0 corrected")
    assert page.evaluate("document.activeElement.id") == "field-cantidad"
    assert page.input_value("#field-cantidad") == "10" and page.input_value("#field-producto") == "A"
    assert page.locator("#fields .confidence").all_text_contents() == ["0.91", "0.12", "0.88"]
    marks = page.locator("#text mark")
    assert marks.all_text_contents() == ["A", "50"] and page.locator("#text").text_content() == BROWSER_ROWS["low"][0]


def test_every_key_is_listed_on_the_page(page):
    listed = page.locator("#keys").text_content()
    for key in ("Tab", "Enter", "Alt+S", "Alt+U", "Alt+→", "Alt+←", "Alt+Z", "Ctrl+Z", "Esc"):
        assert key in listed, key


def test_a_field_corrected_by_keyboard_alone_is_saved(page, server):
    from playwright.sync_api import expect

    page.keyboard.type("100")  # the focused field's text is selected: typing replaces it
    page.keyboard.press("Tab")  # leaving the field saves it
    expect(page.locator("#status")).to_contain_text("saved")
    page.keyboard.press("Enter")  # accept the row as shown
    expect(page.locator("#where")).to_contain_text("id mid")
    assert _changes(server.pred, "low") == [
        ("cantidad", "10", "100", "open"),
        (None, '"open"', '"accepted"', "accepted"),
    ]
    expect(page.locator("#counts")).to_contain_text("1 reviewed / 3 in queue")


def test_after_sigkill_and_restart_the_correction_is_there_and_it_resumes(page, server):
    from playwright.sync_api import expect

    page.keyboard.press("Alt+U")  # mid: unusable, saved before the kill
    expect(page.locator("#where")).to_contain_text("id script")
    server.kill()
    page.goto(server.start())
    expect(page.locator("#where")).to_contain_text("row 3 of 3 · id script · open")  # the first row left to review
    page.keyboard.press("Alt+ArrowLeft")
    expect(page.locator("#where")).to_contain_text("id mid · unusable")
    page.keyboard.press("Alt+ArrowLeft")
    expect(page.locator("#where")).to_contain_text("id low · accepted")
    assert page.input_value("#field-cantidad") == "100"
    expect(page.locator("#fields .model").nth(1)).to_have_text("the model said: 10")
    expect(page.locator("#text mark").first).to_have_text("100")  # the corrected value, highlighted in the text
    shot = server.pred.parent / "review.png"
    page.screenshot(path=shot)
    if os.environ.get("JSONTUNE_REVIEW_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["JSONTUNE_REVIEW_SCREENSHOT"])
    assert shot.stat().st_size > 10_000


def test_undo_takes_back_the_last_change(page, server):
    from playwright.sync_api import expect

    page.keyboard.press("Alt+Z")  # the last change: mid marked unusable
    expect(page.locator("#where")).to_contain_text("id mid · open")
    assert _changes(server.pred, "mid")[-1][3] == "open"


def test_the_export_loads_with_data_check(server, tmp_path):
    out = tmp_path / "corrections.jsonl"
    runner = CliRunner()
    exported = runner.invoke(app, ["review", "export", str(server.pred), "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    checked = runner.invoke(app, ["data", "check", str(out)])
    assert checked.exit_code == 0 and "1 rows OK" in checked.output, checked.output
    assert '"cantidad": 100' in out.read_text()


def test_a_text_holding_script_and_html_shows_as_text_and_runs_nothing(page):
    from playwright.sync_api import expect

    page.keyboard.press("Escape")
    for _ in range(3):
        if "id script" in page.locator("#where").text_content():
            break
        page.keyboard.press("ArrowRight")  # outside a field, a plain arrow moves on
        page.wait_for_function("!document.querySelector('#where').textContent.includes('id mid')")
    expect(page.locator("#where")).to_contain_text("id script")
    assert page.locator("#text").text_content() == SCRIPT_TEXT
    assert page.locator("#text *").evaluate_all("nodes => nodes.map(n => n.tagName)") == ["MARK"] * 3
    assert page.locator("#text mark").all_text_contents() == ["3", "<b>tornillos</b>", "12"]
    assert page.input_value("#field-producto") == "<b>tornillos</b>"
    assert page.evaluate("window.ran") is None and page.locator("script:not([src])").count() == 0
    assert not page.errors, page.errors


def test_two_tabs_the_second_is_told_the_row_changed_and_sees_the_first_ones_change(page, server):
    from playwright.sync_api import expect

    page.keyboard.press("Alt+ArrowLeft")
    expect(page.locator("#where")).to_contain_text("id mid · open")
    other = page.context.new_page()
    other.goto(server.url)
    expect(other.locator("#where")).to_contain_text("id mid · open")  # the first row left to review
    other.keyboard.type("baterías de auto")  # its least confident field, producto, is in focus
    other.keyboard.press("Tab")
    expect(other.locator("#status")).to_contain_text("saved")
    page.keyboard.type("pilas")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_text(
        "not saved: row mid changed in another tab; reload it. It now shows the other tab's change."
    )
    expect(page.locator("#field-producto")).to_have_value("baterías de auto")  # reloaded: the other tab's value
    page.keyboard.press("Escape")  # leaving the field: nothing of the refused edit is saved after all
    page.wait_for_timeout(300)
    assert _changes(server.pred, "mid")[-1][:3] == ("producto", '"baterías de 12V"', '"baterías de auto"')
    other.close()
