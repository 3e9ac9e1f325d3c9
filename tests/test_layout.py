"""The package stays in small modules with one job each (DESIGN.md's layout)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600


def test_no_module_in_xlt_grows_past_600_lines():
    """Would catch: a module growing back into the 894-line tasks.py / 947-line report.py that issue 11 split
    by task type; past this size a module has more than one job and should be split the same way."""
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "xlt").rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"
