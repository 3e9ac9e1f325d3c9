import re
import subprocess
from pathlib import Path

import pytest

from tests.test_report import invoke, write_toy_run
from xlt.leaderboard import build_leaderboard
from xlt.report import default_reference_dir, load_reference

CHROMIUM = Path("/usr/bin/chromium")
EVIL_TASK = '<script>alert("task")</script>'
EVIL_MODEL = "<script>alert('model')</script>"
# tasks with published numbers shipped in results/reference/ (xnli, pawsx, udpos, ...): one table each
REFERENCE_TASKS = sorted(p.stem for p in default_reference_dir().glob("*.csv") if len(load_reference(p)))
# of those, the ones with per-language values (a task with published averages only: a table, no bar chart)
CHARTED_TASKS = [t for t in REFERENCE_TASKS
                 if (load_reference(default_reference_dir() / f"{t}.csv")["lang"] != "avg").any()]
# the xnli table's rows by published avg, highest first (the sorting probe clicks that column)
XNLI_BY_AVG = ["XLM-R large (XLM-R paper)", "mDeBERTa-v3-base", "XLM-R large (XTREME)", "XLM-R base (XLM-R paper)",
               "XLM (XTREME)", "mBERT (XLM-R paper)", "mBERT (XTREME)"]


def _site(tmp_path) -> Path:
    """A site from the built-in reference numbers plus a run whose task and model names are hostile."""
    results = tmp_path / "results"
    task = {"name": EVIL_TASK, "languages": ["en", "fr"], "source_lang": "en", "primary_metric": "accuracy"}
    write_toy_run(results, EVIL_MODEL, 1, {"en": 0.9, "fr": 0.8}, task=task)
    write_toy_run(results, EVIL_MODEL, 2, {"en": 0.8, "fr": 0.7}, task=task)
    out = tmp_path / "site"
    result = invoke("leaderboard", "build", "--output", str(out), "--results-dir", str(results))
    assert result.exit_code == 0, result.output
    return out


def test_build_writes_a_self_contained_site(tmp_path):
    board = build_leaderboard(tmp_path / "no-results", tmp_path / "site")
    names = sorted(p.name for p in board.files)
    assert {"xnli", "pawsx"} <= set(REFERENCE_TASKS)
    charts = [f"{t}.svg" for t in CHARTED_TASKS]                        # per-language bars
    assert {"panx", "udpos", "tydiqa"} <= set(CHARTED_TASKS)
    gaps = [n for n in names if n.endswith("-gap.svg")]                  # transfer gaps, where languages are known
    assert names == sorted(["README.md", "index.html", *charts, *gaps])
    assert {"xnli-gap.svg", "pawsx-gap.svg"} <= set(gaps) and all(g[:-8] in REFERENCE_TASKS for g in gaps)
    page = (tmp_path / "site" / "index.html").read_text()
    assert page.count("<table") == len(REFERENCE_TASKS) + 1            # the summary, then one per task
    assert 'data-task="xnli"' in page and 'data-task="pawsx"' in page
    assert 'data-task="summary"' in page and "sentence-pair classification" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)   # nothing from the network
    assert "<link" not in page and "<script src" not in page
    assert 'src="xnli.svg"' in page and 'src="pawsx.svg"' in page and 'src="xnli-gap.svg"' in page
    assert "published, dev set" in page and "<strong>80.9</strong>" in page
    readme = (tmp_path / "site" / "README.md").read_text()
    assert "| XLM-R base (XLM-R paper) | published, test | – | 85.8 | 79.7 |" in readme and "](xnli.svg)" in readme
    assert "| mDeBERTa-v3-base | **published, dev set** |" in readme
    first = {p.name: p.read_bytes() for p in board.files}
    build_leaderboard(tmp_path / "no-results", tmp_path / "site")   # rebuilding gives identical files
    assert first == {p.name: p.read_bytes() for p in board.files}
    svg = (tmp_path / "site" / "xnli.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and 'href="http' not in svg


def test_a_task_with_published_averages_only_gets_a_table_and_no_bar_chart(tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    (ref / "udpos.csv").write_text("model,source,split,lang,metric,value\nM,Src,test,avg,f1,73.8\n")
    board = build_leaderboard(tmp_path / "no-results", tmp_path / "site", reference_dir=ref)
    assert [t.task for t in board.tables] == ["udpos"]
    assert sorted(p.name for p in board.files) == ["README.md", "index.html"]


def test_names_from_records_are_escaped_in_page_readme_and_file_names(tmp_path):
    out = _site(tmp_path)
    page = (out / "index.html").read_text()
    assert page.count("<script") == 1                     # only the inline sorter
    assert "&lt;script&gt;alert(&quot;task&quot;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#x27;model&#x27;)&lt;/script&gt;" in page
    readme = (out / "README.md").read_text()
    assert "<script" not in readme and "&lt;script&gt;alert" in readme
    svgs = sorted(p.name for p in out.glob("*.svg"))
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+\.svg", n) for n in svgs)
    assert {f"{t}.svg" for t in CHARTED_TASKS} < set(svgs) and len(svgs) > len(CHARTED_TASKS) + 1


def _chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=90)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(apt-get install -y chromium); the page is checked in a real browser")
def test_page_renders_in_headless_chromium(tmp_path):
    out = _site(tmp_path)
    url = (out / "index.html").resolve().as_uri()
    dom = _chromium("--dump-dom", url, tmp_path=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-sortable="ready"' in html                 # the inline script ran without an error
    for task in ("xnli", "pawsx"):
        assert re.search(rf'<table class="xlt-table sortable" id="table-\d" data-task="{task}">', html)
    assert re.search(r'<table class="xlt-table sortable multi-metric" id="table-\d" data-task="xquad">', html)
    assert 'data-task="&lt;script&gt;alert(&quot;task&quot;)&lt;/script&gt;"' in html
    assert html.count("<table") == len(REFERENCE_TASKS) + 2 and html.count("<script") == 1
    assert "&lt;script&gt;alert('model')&lt;/script&gt;" in html   # text, not an element
    # Sorting: a copy of the page clicks the xnli table's avg header twice and reports the row order.
    probe = out / "probe.html"
    probe.write_text((out / "index.html").read_text().replace("</body>", """<script>
    var table = document.querySelector('table[data-task="xnli"]');
    var th = [].filter.call(table.tHead.rows[0].cells, function (c) { return c.textContent === "avg"; })[0];
    function order() { return [].map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; }); }
    th.click(); var first = order(); th.click();
    document.title = first.join("|") + " // " + order().join("|") + " // " + th.getAttribute("aria-sort");
    </script></body>"""))
    sorted_dom = _chromium("--dump-dom", probe.resolve().as_uri(), tmp_path=tmp_path).stdout
    assert (f"<title>{'|'.join(XNLI_BY_AVG)} // {'|'.join(XNLI_BY_AVG[::-1])} // ascending</title>"
            ) in sorted_dom
    # At 1400 px the summary and the XNLI and QA tables fit their boxes and no caption is cut off (issue 14);
    # UD-POS's 33 languages scroll inside their box.
    fit = out / "fit.html"
    fit.write_text((out / "index.html").read_text().replace("</body>", """<script>
    var wraps = [].map.call(document.querySelectorAll("figure.table-block"), function (f) {
      var w = f.querySelector(".table-wrap"), c = f.querySelector("figcaption");
      return f.querySelector("table").getAttribute("data-task") + ":" + (w.scrollWidth <= w.clientWidth) + ":" +
        (c.scrollWidth <= c.clientWidth && c.getBoundingClientRect().right <= window.innerWidth);
    });
    document.title = wraps.join("|");
    </script></body>"""))
    fits = _chromium("--dump-dom", "--window-size=1400,2000", fit.resolve().as_uri(), tmp_path=tmp_path).stdout
    title = re.search(r"<title>(.*?)</title>", fits).group(1)
    verdicts = {task: (table_fits, caption_fits) for task, table_fits, caption_fits in
                (item.rsplit(":", 2) for item in title.split("|"))}
    for task in ("summary", "xnli", "xquad", "mlqa"):
        assert verdicts[task] == ("true", "true"), title
    assert all(caption_fits == "true" for _, caption_fits in verdicts.values()), title
    shot = tmp_path / "shot.png"
    run = _chromium(f"--screenshot={shot}", "--window-size=1400,2000", url, tmp_path=tmp_path)
    assert run.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000                    # a rendered page, not a blank one
