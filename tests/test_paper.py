"""The paper as a paper: checked statically without LaTeX, and built where pdflatex exists.

Static checks (always run): every figure and table label is referenced in the text, every
caption starts with a capital, the abstract has at most 200 words, every citation key is in
refs.bib, and every generated number the text uses is one the report writes. The build
(skipped without pdflatex) fails on an overfull box, an undefined reference or citation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kvbench.report import numbers, ridge_table

PAPER = Path(__file__).resolve().parents[1] / "paper"
MAIN = (PAPER / "main.tex").read_text()


def _uncommented(tex: str) -> str:
    return re.sub(r"(?<!\\)%.*", "", tex)


def _sources() -> str:
    """main.tex and the generated tables it inputs (their longtable captions and labels)."""
    tables = sorted((PAPER / "tables").glob("*.tex"))
    return "\n".join([_uncommented(MAIN), *(_uncommented(t.read_text()) for t in tables)])


def test_every_figure_and_table_is_referenced():
    text = _uncommented(MAIN)
    labels = set(re.findall(r"\\label\{((?:fig|tab):[^}]+)\}", _sources()))
    refs = set(re.findall(r"\\ref\{([^}]+)\}", text))
    assert labels, "no figure or table labels"
    assert not labels - refs, f"labelled but never referenced: {sorted(labels - refs)}"
    assert not {r for r in refs if r.startswith(("fig:", "tab:"))} - labels - {"tab:codecs", "tab:recipes"}


def test_every_float_has_a_label_and_a_capitalised_caption():
    text = _sources()
    for caption in re.findall(r"\\caption(?!\[\])\{\s*(.)", text):
        assert caption.isupper() or not caption.isalpha(), f"caption starts in lowercase: {caption!r}"
    for env in re.findall(r"\\begin\{(?:figure|table)\}.*?\\end\{(?:figure|table)\}", _uncommented(MAIN), re.S):
        assert "\\caption{" in env and "\\label{" in env, f"float without caption or label: {env[:80]}"


def test_abstract_is_at_most_200_words():
    abstract = re.search(r"\\begin\{abstract\}(.*?)\\end\{abstract\}", MAIN, re.S).group(1)
    words = re.sub(r"\\val\{[^}]*\}", "N", abstract)
    words = re.sub(r"\\cite\{[^}]*\}|\$[^$]*\$|~", " ", words)
    assert len(words.split()) <= 200, len(words.split())


def test_every_citation_is_in_the_bibliography():
    keys = set(re.findall(r"@\w+\{([^,]+),", (PAPER / "refs.bib").read_text()))
    cited = {k.strip() for group in re.findall(r"\\cite\{([^}]+)\}", MAIN) for k in group.split(",")}
    assert cited and not cited - keys, f"cited but not in refs.bib: {sorted(cited - keys)}"


def test_every_generated_number_used_is_written_by_the_report():
    used = set(re.findall(r"\\val\{([^}]+)\}", _uncommented(MAIN)))
    written = {*numbers.NAMES, *ridge_table.MACROS}
    assert used and not used - written, f"\\val of names the report never writes: {sorted(used - written)}"


def test_the_price_sheet_is_named_by_its_file():
    assert "public-2026-11" not in MAIN and (PAPER.parent / "conf/cost/public_2026_11.yaml").is_file()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_pdf_builds_without_overfull_boxes_or_undefined_references(tmp_path):
    build = tmp_path / "paper"
    shutil.copytree(PAPER, build, ignore=shutil.ignore_patterns("*.pdf", "*.aux", "*.log"))
    shutil.copytree(PAPER / "figures", build / "figures", dirs_exist_ok=True)
    run = dict(cwd=build, capture_output=True, text=True, timeout=300)
    latex = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"]
    assert subprocess.run(latex, **run).returncode == 0
    if shutil.which("bibtex"):
        subprocess.run(["bibtex", "main"], **run)
    for _ in range(2):
        assert subprocess.run(latex, **run).returncode == 0
    log = (build / "main.log").read_text(errors="replace")
    assert "Overfull" not in log
    assert not re.search(r"(Reference|Citation) `[^']+' on page \d+ undefined", log)
    assert "There were undefined references" not in log
