"""ltray.report --format latex|markdown|html: each output parsed back, every cell checked against the
text table's numbers for the same row, escaping checked, provenance checked."""

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from fixtures_study import TRIALS, trial_row, write_study
from ltray.report import cli as report
from ltray import results as R

ODD = "w_1%&#<b>"  # a method name with every character a format must escape
CODE = "0.1.0+git.c0de_5%"
SOURCE = 'from ltray.experiment import Experiment\n# 100% of the #1 "study" & <co_author>\nexperiment = Experiment()\n'


def _epochs(study, tid, test):
    """Three epochs with test tracked, so the protocol gap has rows."""
    curve = [test - 0.05, test + 0.03, test]
    R.write_table(str(study), "epochs", tid, R.table("epochs", {
        "study": ["fx"] * 3, "trial_id": [tid] * 3, "epoch": [0, 1, 2], "lr": [0.1] * 3, "train_loss": [1.0] * 3,
        "val_bal_acc": [0.5] * 3, "val_many": [0.5] * 3, "val_medium": [0.5] * 3, "val_few": [0.5] * 3,
        "images_per_s": [1.0] * 3, "epoch_s": [1.0] * 3, "test_bal_acc": curve, "test_many": [c + 0.1 for c in curve],
        "test_medium": curve, "test_few": [c - 0.1 for c in curve], "test_bal_acc_tau_oracle": [c + 0.02 for c in curve]}))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The fixture study with a subset hash per trial, an odd method, an experiment file and epochs
    (read-only: built once for the module)."""
    study = write_study(tmp_path_factory.mktemp("formats"), with_optuna=False)
    for tid, method, params, seed, val, test in TRIALS + [("t7", ODD, {}, 0, 0.4, 0.3)]:
        row = trial_row(tid, method, params, seed, val, test)
        row.update(subset_hash=[f"h_{tid}"], code_version=[CODE])
        R.write_table(str(study), "trials", tid, R.table("trials", row))
        _epochs(study, tid, test)
    (study / "experiment.py").write_text(SOURCE)
    (study / "experiment.json").write_text('{"name": "fx", "repeats": 3}')
    return study


@pytest.fixture(scope="module")
def paired_study(tmp_path_factory):
    """The fixture study as written (one subset, so seed k pairs with seed k), with epochs."""
    study = write_study(tmp_path_factory.mktemp("formats"), name="pq", with_optuna=False)
    for tid, _, _, _, _, test in TRIALS:
        _epochs(study, tid, test)
    return study


def _run(capsys, *args) -> str:
    assert report.main([str(a) for a in args]) == 0
    return capsys.readouterr().out


NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?|nan|(?<![\w.])-{1,2}(?![\w.])")


def numbers(cell: str) -> list[str]:
    """The numbers of a cell or line in order, a missing value ("-", "--", "nan") as "-"."""
    plain = cell.replace("+-", " ").replace("±", " ").replace(r"\pm", " ")
    return ["-" if t in ("--", "nan") else t for t in NUMBER.findall(plain)]


_UNLATEX = {r"\textbackslash{}": "\\", r"\textasciitilde{}": "~", r"\textasciicircum{}": "^",
            r"\textless{}": "<", r"\textgreater{}": ">", "$\\pm$": "+-"}


def latex_rows(tex: str) -> list[list[list[str]]]:
    """Per tabular, its body rows as unescaped cells."""
    out = []
    for body in re.findall(r"\\midrule\n(.*?)\n\\bottomrule", tex, re.S):
        rows = []
        for line in body.splitlines():
            cells = re.split(r"(?<!\\) & ", re.sub(r" \\\\$", "", line))
            for k, v in _UNLATEX.items():
                cells = [c.replace(k, v) for c in cells]
            rows.append([re.sub(r"\\([&%$#_{}])", r"\1", c) for c in cells])
        out.append(rows)
    return out


def markdown_rows(md: str) -> list[list[list[str]]]:
    """Per pipe table, its body rows (after the heading and the alignment row) as unescaped cells."""
    out, rows = [], None
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            cells = [re.sub(r"\\(.)", r"\1", c.strip()) for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows = [] if rows is None else rows
            rows.append(cells)
        elif rows is not None:
            out.append(rows[2:])
            rows = None
    return out


class _Page(HTMLParser):
    """The tables (rows of cells), captions and <pre> texts of a page, unescaped."""

    def __init__(self):
        super().__init__()
        self.tables, self.captions, self.pres, self._text = [], [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th", "caption", "pre"):
            self._text = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._text)
        elif tag == "caption":
            self.captions.append(self._text)
        elif tag == "pre":
            self.pres.append(self._text)
        self._text = None if tag in ("td", "th", "caption", "pre") else self._text

    def handle_data(self, data):
        if self._text is not None:
            self._text += data


def html_page(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    return p


def parsed_rows(fmt: str, out: str) -> list[list[list[str]]]:
    if fmt == "latex":
        return latex_rows(out)
    if fmt == "markdown":
        return markdown_rows(out)
    return [t[1:] for t in html_page(out).tables]  # the first row holds the headings


def text_rows(text: str, tables: list[list[list[str]]]) -> list[list[str]]:
    """The text lines of each table's rows: the lines after its heading, as many as it has rows."""
    lines, out, start = text.splitlines(), [], 0
    for rows in tables:
        head = next(i for i in range(start, len(lines)) if re.match(r"(method|balanced error) ", lines[i]))
        out.append(lines[head + 1: head + 1 + len(rows)])
        start = head + 1 + len(rows)
    return out


@pytest.mark.parametrize("fmt", ["latex", "markdown", "html"])
@pytest.mark.parametrize("table", ["methods", "la", "shifts", "paired", "gap"])
def test_every_cell_is_the_text_tables_number(study, paired_study, capsys, fmt, table):
    path = paired_study if table in ("paired", "gap") else study
    text = _run(capsys, path, "--table", table)
    out = _run(capsys, path, "--table", table, "--format", fmt)
    tables = parsed_rows(fmt, out)
    assert len(tables) == (2 if table == "paired" else 1) and all(tables)
    for rows, lines in zip(tables, text_rows(text, tables)):
        assert len(lines) == len(rows)
        for cells, line in zip(rows, lines):
            assert line.startswith(cells[0] + " ")  # the same row
            got = [t for c in cells for t in numbers(c)]
            assert got == numbers(line) and got, (cells, line)
        assert sum(t != "-" for line in lines for t in numbers(line)) >= len(rows)  # not a table of blanks


def test_the_text_table_is_unchanged(study, capsys):
    """The methods table as ltray.report printed it before --format existed (same study, same bytes)."""
    text = _run(capsys, study).splitlines()
    assert text[0] == ("method                        val bal-acc           test bal-acc        test + post-hoc"
                       "                    few")
    assert text[1] == ("ce                    52.00 +- 4.97 (n=3)    50.00 +- 4.97 (n=3)    51.00 +- 4.97 (n=3)"
                       "    30.00 +- 4.97 (n=3)")
    assert _run(capsys, study, "--format", "text").splitlines() == text


def test_special_characters_are_escaped(study, capsys):
    tex = _run(capsys, study, "--format", "latex")
    assert r"w\_1\%\&\#\textless{}b\textgreater{} & " in tex and "w_1%" not in tex.split(r"\begin{table}")[1]
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert re.search(r"^ce & \$52\.00 \\pm 4\.97\$ \(\$n=3\$\) & ", tex, re.M)  # mean +- CI in math mode
    caption = re.search(r"\\caption\{(.*)\}", tex).group(1)
    assert r"0.1.0+git.c0de\_5\%" in caption and r"(\%)" in caption
    assert [r[0] for r in latex_rows(tex)[0]][-1] == ODD  # and it parses back to the name
    page = _run(capsys, study, "--format", "html")
    assert "w_1%&amp;#&lt;b&gt;" in page and "<b>" not in page
    assert "&lt;co_author&gt;" in page and "<co_author>" not in page
    assert [r[0] for r in html_page(page).tables[0]][-1] == ODD
    md = _run(capsys, study, "--format", "markdown")
    assert r"| w\_1%&#\<b> |" in md and [r[0] for r in markdown_rows(md)[0]][-1] == ODD


@pytest.mark.parametrize("fmt", ["latex", "markdown", "html"])
def test_provenance_names_the_experiment_and_the_trials_used(study, capsys, fmt):
    out = _run(capsys, study, "--format", fmt)
    if fmt == "html":
        out = "\n".join(html_page(out).pres)
    elif fmt == "latex":  # the provenance is the comment block above the table
        out = "\n".join(ln[2:] for ln in out.splitlines() if ln.startswith("% "))
    else:
        out = re.sub(r"\\(.)", r"\1", out.split("## Provenance")[1])
    # the selected configuration's trials (ce: t1-t3, logit_adjusted tau=1: t4), not the unselected t5
    assert re.search(r"ce: 0: h_t1, 1: h_t2, 2: h_t3$", out, re.M)
    assert re.search(r"logit_adjusted: 0: h_t4$", out, re.M) and "h_t5" not in out
    assert f"code_version: {CODE}" in out and re.search(r"made: \d{4}-\d\d-\d\d with python -m ltray.report", out)
    assert '"numpy": "' in out  # the versions string of the trials rows
    for line in SOURCE.splitlines() + ['{"name": "fx", "repeats": 3}']:
        assert line in out


def test_la_table_uses_the_erm_trials_and_no_others(study, capsys):
    out = _run(capsys, study, "--table", "la", "--format", "markdown")
    prov = out.split("## Provenance")[1]
    assert "h\\_t1" in prov and "h\\_t4" in prov and "h\\_t6" not in prov  # dive has no row in Table 3
    assert "h\\_t7" not in prov


def test_output_file_and_a_file_uri(study, tmp_path, capsys):
    target = tmp_path / "t.tex"
    assert report.main([f"file://{study}", "--format", "latex", "--output", str(target)]) == 0
    assert capsys.readouterr().out == ""
    tex = target.read_text()
    assert "% experiment.py:" in tex and "%   experiment = Experiment()" in tex  # read through pyarrow.fs
    assert report.main([str(tmp_path / "missing"), "--format", "html"]) == 2
    assert capsys.readouterr().err.startswith("error: study folder")


def test_numbers_finds_what_the_cells_hold():
    """The parser the tests above rely on: signs, CI, n, p, missing values."""
    assert numbers("52.00 +- 4.97 (n=3)") == ["52.00", "4.97", "3"] == numbers(r"$52.00 \pm 4.97$ ($n=3$)")
    assert numbers("+10.00 [+0.00, -3.33] p<0.001 better") == ["+10.00", "+0.00", "-3.33", "0.001"]
    assert numbers("ce + post-hoc LA   -      nan  --") == ["-", "-", "-"]
    assert numbers("95.30-2.50") == ["95.30", "-2.50"]
    assert np.isclose(float(numbers("50.00 ± 0.00")[0]), 50.0)


def test_a_study_on_s3_reads_through_pyarrow_fs(study, capsys, monkeypatch):
    """Both commands on an S3 URI (moto's S3 server on 127.0.0.1): tables, experiment file, and no
    URI options (where credentials may sit) in the provenance."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer  # the [test] extra's S3 server, only this test needs it

    from ltray.report import query

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(k, "test")
        options = f"endpoint_override=http://{host}:{port}&scheme=http&region=us-east-1"
        s3 = pafs.S3FileSystem(endpoint_override=f"http://{host}:{port}", scheme="http", region="us-east-1",
                               allow_bucket_creation=True)
        s3.create_dir("bucket")
        pafs.copy_files(str(study), "bucket/fx", source_filesystem=pafs.LocalFileSystem(), destination_filesystem=s3)
        uri = f"s3://bucket/fx?{options}"
        md = _run(capsys, uri, "--format", "markdown")
        assert md == _run(capsys, study, "--format", "markdown").replace(str(study), "s3://bucket/fx")
        assert "endpoint" not in md and "experiment = Experiment()" in md
        assert query.run(uri, "SELECT count(*) FROM trials").rows == [(len(TRIALS) + 1,)]
    finally:
        server.stop()
