"""The review loop: a local page where a person checks the least confident answers, a log that loses none of
their changes, and an export of the corrected rows as training data (`jsontune review`).

`queue.py` orders the rows and draws the audit sample, `fields.py` turns an answer into the fields a page edits
(both pure), `store.py` keeps the append-only log in SQLite, `job.py` joins a predictions CSV, its texts and its
log (`Review`), and `app.py` serves the page. The CLI is `jsontune/cli/review.py`.
"""
