"""`jsontune review PRED.csv` and `jsontune review export PRED.csv --out FILE` (typer's CliRunner)."""

from __future__ import annotations

from typer.testing import CliRunner

from jsontune.cli.app import app
from jsontune.data import load_records
from jsontune.review.job import Review, review_db_path

runner = CliRunner()


def test_review_pred_opens_the_page_and_says_where(pred, monkeypatch):
    served = {}

    def fake_serve(review, host, port, token, ready):
        served.update(host=host, port=port, token=token, rows=len(review.ids))
        ready(f"http://{host}:{port}/")

    monkeypatch.setattr("jsontune.review.app.serve", fake_serve)
    result = runner.invoke(app, ["review", str(pred), "--port", "8765", "--audit-share", "0.1"])
    assert result.exit_code == 0, result.output
    assert served == {"host": "127.0.0.1", "port": 8765, "token": None, "rows": 13}
    assert "review page: http://127.0.0.1:8765/" in result.output and "6 of 13 rows in the queue" in result.output
    assert review_db_path(pred).exists()
    # the long spelling is the same command
    result = runner.invoke(app, ["review", "open", str(pred), "--port", "8766"])
    assert result.exit_code == 0 and served["port"] == 8766


def test_review_export_writes_the_accepted_rows(pred, tmp_path):
    review = Review.open(pred)
    review.decide("low", "accepted", {"cantidad": "100"}, version=0)
    review.close()
    out = tmp_path / "corrections.jsonl"
    result = runner.invoke(app, ["review", "export", str(pred), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 accepted row(s), 1 of them corrected" in result.output
    assert [r.target["cantidad"] for r in load_records(out).records] == [100]
    check = runner.invoke(app, ["data", "check", str(out)])
    assert check.exit_code == 0 and "1 rows OK" in check.output


def test_errors_are_one_sentence(pred, tmp_path):
    result = runner.invoke(app, ["review", "export", str(pred), "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1 and "has no review yet" in result.output and "Traceback" not in result.output
    bare = tmp_path / "bare.csv"
    bare.write_text('id,prediction,valid_json,raw_output\na,"{""x"":1}",true,"{""x"":1}"\n')
    result = runner.invoke(app, ["review", str(bare)])
    assert result.exit_code == 1 and "without --no-confidence" in result.output
    result = runner.invoke(app, ["review", str(pred), "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "give --token" in result.output


def test_eval_prints_the_review_audit_beside_the_scores(pred, tmp_path):
    import json

    review = Review.open(pred, audit_share=1.0, seed=0)
    for n in range(8):
        review.decide(f"sure-{n}", "accepted", {"cantidad": "0"} if n < 5 else {}, version=0)
    review.close()
    gold = tmp_path / "gold.jsonl"
    ids = review.ids
    gold.write_text("".join(json.dumps({"id": i, "text": "t", "target": {"producto": "x"}}) + "\n" for i in ids))
    result = runner.invoke(app, ["eval", str(pred), "--gold", str(gold)])
    assert result.exit_code == 0, result.output
    assert "review audit: Rows the threshold accepts (min confidence ≥ 0.800): 79.2 % of 24" in result.output
    assert "below the 95 % asked for: raise --review-below" in result.output
    result = runner.invoke(app, ["eval", str(pred), "--gold", str(gold), "--json"])
    assert json.loads(result.stdout)["review_audit"]["verdict"] == "below"
