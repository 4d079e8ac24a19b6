"""Fault injection, round 3 (issue 27): nothing a user owns is lost, one bad record or file does not take the
folder down, and what reaches a terminal, a gate or a table is sane.

Each case failed on the main branch before issue 27 (noted beside it). Table cases run through
``tests/fault_harness.py`` (exit code, message, nothing stored damaged); the rest are functions.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from results import path as shipped
from tests.fault_harness import GOOD_REF, Case, Ctx, run_case
from tests.helpers import write_suite
from tissuebench.cli import main


def _user_folder(c: Ctx) -> None:
    """A folder of the user's own, given as a report's --out."""
    (c.tmp / "docs" / "sub").mkdir(parents=True)
    (c.tmp / "docs" / "thesis.txt").write_text("my thesis")


def _user_intact(c: Ctx) -> None:
    assert (c.tmp / "docs" / "thesis.txt").read_text() == "my thesis" and (c.tmp / "docs" / "sub").is_dir()


def _user_file(c: Ctx) -> None:
    (c.tmp / "notes.txt").write_text("my notes")


def _smoke_reference_copy(c: Ctx) -> None:
    (c.tmp / "smoke.csv").write_bytes(shipped("reference", "smoke.csv").read_bytes())


def _smoke_reference_intact(c: Ctx) -> None:
    assert (c.tmp / "smoke.csv").read_bytes() == shipped("reference", "smoke.csv").read_bytes()


def _hidden_tmp_files(c: Ctx) -> None:
    """The user's own hidden *.tmp files in the results folder (main removed all three as 'leftovers')."""
    (c.results / ".notes.tmp").write_text("mine")
    (c.results / "mystuff" / "deep").mkdir(parents=True)
    (c.results / "mystuff" / "deep" / ".cache.tmp").write_text("mine")
    (c.results / "records" / ".draft.json.notapid.tmp").write_text("mine")


def _record_field(method: str, **fields):
    def setup(c: Ctx) -> None:
        path = c.record(method)
        path.write_text(json.dumps(json.loads(path.read_text()) | fields))

    return setup


def _failed_tissuenet(c: Ctx) -> None:
    _record_field("tissuenet", status="failed", error="RuntimeError: boom")(c)


def _all_failed(c: Ctx) -> None:
    for method in ("dense", "tissuenet"):
        _record_field(method, status="failed", error="RuntimeError: boom")(c)


def _ref_text(text: str):
    def setup(c: Ctx) -> None:
        (c.tmp / "ref.csv").write_text(text.format(job=c.record().stem))

    return setup


ABSURD_REF = (
    "job_id,label,top1,top1_bound,top1_rule,params,params_nonzero,macs,macs_effective\n"
    "{job},dense,90,-1e300,pi99,1,1,1,1\n"
)

CASES = {
    # -- 1. report --out: only a folder this tool wrote as a report is replaced (main: exit 0, the user's files gone)
    "report --out a user's folder": Case(
        ["report", "--out", "{tmp}/docs"],
        2,
        "holds files that no report wrote",
        _user_folder,
        after=_user_intact,
    ),
    "report --out a user's file": Case(
        ["report", "--out", "{tmp}/notes.txt"],
        2,
        "is a file, not a folder",
        _user_file,
        after=lambda c: (c.tmp / "notes.txt").read_text() == "my notes" or pytest.fail("the user's file changed"),
    ),
    # -- 2. a reference names its suite (main: smoke's 20-run reference overwritten with another suite's rows)
    "check --update over another suite's reference": Case(
        ["check", "--update", "--against", "{tmp}/smoke.csv"],
        2,
        "is the reference of suite 'smoke', not 'tiny'",
        _smoke_reference_copy,
        after=_smoke_reference_intact,
    ),
    "check --suite is a name, not a path": Case(
        ["check", "--suite", "../../../tmp/x", "--update"], 2, "a name is a letter or digit"
    ),
    # -- 3. the user's own hidden *.tmp files are not leftovers (main: "removed 3 leftover(s)")
    "run keeps the user's *.tmp files": Case(["run", "{suite}"], 0, "", _hidden_tmp_files, one_line=False),
    # -- 4. no reference from a run with failed or missing jobs (main: written without them; no ok job: exit 3)
    "check --update with a failed job": Case(
        ["check", "--update", "--against", "{tmp}/new.csv"], 2, "1 job(s) of tiny are not ok", _failed_tissuenet
    ),
    "check --update with a failed job left out": Case(
        ["check", "--update", "--against", "{tmp}/new.csv", "--leave-out", "tissue-all"],
        0,
        "rewritten: 1 jobs",
        _failed_tissuenet,
        in_stdout=True,
    ),
    "check --update with no ok job": Case(
        ["check", "--update", "--against", "{tmp}/new.csv"], 2, "2 job(s) of tiny are not ok", _all_failed
    ),
    # -- 5. a record with a wrong-typed field is set aside, the rest works (main: exit 3 with a pyarrow error)
    "record seed 'x', show": Case(
        ["show"], 0, "field 'seed' is 'x', not int", _record_field("dense", seed="x"), quarantines=1, one_line=False
    ),
    "record epochs [1, 2], report": Case(
        ["report", "--out", "{tmp}/rep"],
        0,
        "field 'epochs' is [1, 2], not int",
        _record_field("tissuenet", epochs=[1, 2]),
        quarantines=1,
        one_line=False,
    ),
    "record threads {}, check": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        1,
        "field 'threads' is {}, not int",
        lambda c: (_ref_text(GOOD_REF)(c), _record_field("dense", threads={})(c)),
        quarantines=1,
        one_line=False,
    ),
    "record top1 'high', run redoes it": Case(
        ["run", "{suite}"],
        0,
        "field 'top1' is 'high'",
        _record_field("tissuenet", top1="high"),
        quarantines=1,
        one_line=False,
    ),
    # -- 6. a record over the size limit is set aside (main: one 200 MB field took 21 s and 3 GB to show)
    "record of 5 MB, show": Case(
        ["show"],
        0,
        "over the 4,194,304-byte limit",
        _record_field("dense", command="x" * 5_000_000),
        quarantines=1,
        one_line=False,
    ),  # fmt: skip
    # -- 9. a reference with absurd bounds is refused (main: top1_bound -1e300 passed a run of top-1 0)
    "reference with an absurd bound": Case(
        ["check", "--against", "{tmp}/ref.csv"], 2, "implausibly wide", _ref_text(ABSURD_REF)
    ),
    "reference bound on the wrong side": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        2,
        "lies on the wrong side",
        _ref_text(ABSURD_REF.replace("-1e300", "95")),
    ),
    "reference with an unknown column": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        2,
        "unknown column(s) ['colour']",
        _ref_text(GOOD_REF.replace("macs_effective\n", "macs_effective,colour\n").replace(",1\n", ",1,red\n")),
    ),
    # -- 11. a reference saved with a UTF-8 BOM is read (main: "required column(s) missing")
    "reference with a BOM": Case(
        ["check", "--against", "{tmp}/ref.csv"],
        1,
        "regressed",
        lambda c: (c.tmp / "ref.csv").write_bytes(
            ("\ufeff# produced_by: a spreadsheet\n" + GOOD_REF.format(job=c.record().stem)).encode()
        ),
        in_stdout=True,
        one_line=False,
    ),
    # -- 12. deeply nested TOML is one line, exit 2 (main: exit 3 with a 3,000-line traceback)
    "--set nested 5000 deep": Case(["run", "{suite}", "--set", "seeds=" + "[" * 5000 + "]" * 5000], 2, "nests deeper"),
    "suite file nested 5000 deep": Case(
        ["run", "{tmp}/bad.toml"],
        2,
        "nests deeper",
        lambda c: (c.tmp / "bad.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n" + c.suite.read_text()),
    ),
}
SLOW_CASES = {name for name, case in CASES.items() if case.args[0] in ("report", "run") and case.code == 0}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in CASES])
def test_fault(name, finished, tmp_path, capsys):
    ctx = run_case(CASES[name], finished, tmp_path, capsys)
    if name == "run keeps the user's *.tmp files":
        for rel in (".notes.tmp", "mystuff/deep/.cache.tmp", "records/.draft.json.notapid.tmp"):
            assert (ctx.results / rel).read_text() == "mine", rel


def test_report_out_dot_refuses_the_working_folder(finished, tmp_path, monkeypatch, capsys):
    """``--out .`` in a folder of the user's (main: exit 3; with a report marker it would have been replaced)."""
    _, results = finished
    work = tmp_path / "work"
    work.mkdir()
    (work / "paper.tex").write_text("mine")
    monkeypatch.chdir(work)
    assert main(["report", "--results", str(results), "--out", "."]) == 2
    assert "holds files that no report wrote" in capsys.readouterr().err
    assert (work / "paper.tex").read_text() == "mine"


@pytest.mark.slow
def test_report_replaces_only_its_own_report(finished, tmp_path, capsys):
    _, results = finished
    out = tmp_path / "report"
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    first = (out / "index.html").stat().st_mtime_ns
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0  # its own folder: replaced
    assert (out / ".tissuebench-report").is_file() and (out / "index.html").stat().st_mtime_ns >= first
    capsys.readouterr()


def test_check_update_writes_the_folders_own_suite(finished, tmp_path, monkeypatch, capsys):
    """Without --suite or --against, --update writes the reference of the suite the folder holds (main: smoke's)."""
    import results

    _, measured = finished
    monkeypatch.setattr(results, "reference", lambda suite: tmp_path / f"{suite}.csv")
    assert main(["check", "--results", str(measured), "--update"]) == 0
    assert (tmp_path / "tiny.csv").is_file() and not (tmp_path / "smoke.csv").exists()
    assert "# suite: tiny" in (tmp_path / "tiny.csv").read_text()
    capsys.readouterr()
    assert main(["check", "--results", str(measured)]) == 0  # and check finds it by the folder's suite
    assert "0 regressions" in capsys.readouterr().out


def test_check_update_never_drops_rows_silently(finished, tmp_path, capsys):
    _, measured = finished
    ref = tmp_path / "ref.csv"
    assert main(["check", "--results", str(measured), "--update", "--against", str(ref)]) == 0
    text = ref.read_text()
    lines = text.splitlines()
    extra = lines[-1].replace("tissue-all", "gone-method").replace(lines[-1].split(",")[0], "synthetic.mlp.gone.x")
    ref.write_text(text + extra + "\n")  # a row the results no longer have
    capsys.readouterr()
    assert main(["check", "--results", str(measured), "--update", "--against", str(ref)]) == 2
    assert "would drop 1 row(s)" in capsys.readouterr().err and "gone-method" in ref.read_text()
    assert main(["check", "--results", str(measured), "--update", "--against", str(ref), "--leave-out", "gone*"]) == 0


def test_check_without_a_reference_for_the_suite_says_how_to_make_one(finished, tmp_path, monkeypatch, capsys):
    import results

    _, measured = finished
    monkeypatch.setattr(results, "reference", lambda suite: tmp_path / f"{suite}.csv")
    assert main(["check", "--results", str(measured)]) == 2
    err = capsys.readouterr().err
    assert "no reference for suite tiny" in err and "--update --tolerance-from" in err and err.count("\n") == 1


def _plugin(folder: Path, module: str, body: str) -> str:
    (folder / f"{module}.py").write_text("from tissuebench import BaseMethod, Prepared, register_method\n\n" + body)
    return module


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\r  all 3 jobs ok"


@pytest.mark.slow
def test_a_plugins_escape_sequences_reach_no_terminal(tmp_path, monkeypatch, capsys):
    """Control bytes in a plugin's exception are shown escaped in FAILED: and in `show JOB_ID` (main: raw)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    module = _plugin(
        tmp_path,
        "hostile_plugin_27",
        "@register_method\nclass Hostile(BaseMethod):\n    name = 'hostile27'\n\n"
        f"    def prepare(self, ctx):\n        raise RuntimeError({HOSTILE!r})\n",
    )
    methods = '[[method]]\nname = "dense"\n\n[[method]]\nname = "hostile27"\n'
    suite = write_suite(tmp_path / "s.toml", name="hostile", methods=methods)
    results = tmp_path / "r"
    assert main(["run", "-p", module, str(suite), "--results", str(results), "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    for text in (out, err):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "FAILED: RuntimeError: \\x1b]0;pwned\\x07\\x1b[2J\\x0d  all 3 jobs ok" in err
    job = next(p.stem for p in (results / "records").glob("*hostile27*.json"))
    assert main(["show", job, "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b]0;pwned" in out


@pytest.mark.slow
def test_nan_weights_fail_the_job(tmp_path, monkeypatch, capsys):
    """A method that hands back NaN weights and trains 0 epochs fails (main: stored as ok, chance-level top-1)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    module = _plugin(
        tmp_path,
        "nan_plugin_27",
        "import torch\n\n@register_method\nclass NaNWeights(BaseMethod):\n    name = 'nan27'\n\n"
        "    def prepare(self, ctx):\n        model = ctx.dense_model()\n        with torch.no_grad():\n"
        "            for p in model.parameters():\n                p.fill_(float('nan'))\n"
        "        return Prepared(model, 'finetune', 0)\n",
    )
    methods = '[[method]]\nname = "dense"\n\n[[method]]\nname = "nan27"\n'
    suite = write_suite(tmp_path / "s.toml", name="nan", methods=methods)
    assert main(["run", "-p", module, str(suite), "--results", str(tmp_path / "r"), "--device", "cpu"]) == 1
    rec = json.loads(next((tmp_path / "r" / "records").glob("*nan27*.json")).read_text())
    assert rec["status"] == "failed" and "NaN or infinite" in rec["error"]
    capsys.readouterr()


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (a decompression bomb to any decoder that believes it)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.slow
def test_unreadable_images_are_named_before_training(tmp_path, monkeypatch, capsys):
    """A truncated JPEG and a 16000x16000 image: named before training, exit 2; with skip_unreadable the run
    goes on and every record counts them (main: every job failed naming no file)."""
    from tests.layouts import write_tiny_imagenet

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("benchmarks.data.images.CACHE", tmp_path / "cache" / "decoded")
    top = write_tiny_imagenet(tmp_path / "data", classes=2, per_class=6, val_per_class=2)
    wnid = sorted(p.name for p in (top / "train").iterdir())[0]
    truncated = top / "train" / wnid / "images" / f"{wnid}_0.JPEG"
    truncated.write_bytes(truncated.read_bytes()[:300])
    bomb = top / "train" / wnid / "images" / f"{wnid}_1.JPEG"
    bomb.write_bytes(_png_header(16000, 16000))
    extra = "\n[data]\ninput_size = 32\nworkers = 0\ntrain_limit = 8\n"
    suite = write_suite(tmp_path / "s.toml", name="images", dataset="tiny-imagenet", models=("resnet20",), extra=extra)
    suite.write_text(suite.read_text().replace("batch_size = 64", "batch_size = 2"))
    run = [
        "run",
        str(suite),
        "--results",
        str(tmp_path / "r"),
        "--device",
        "cpu",
        "--data-root",
        str(tmp_path / "data"),
    ]
    assert main(run) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 image(s) of train/ do not decode" in err
    assert truncated.name in err and bomb.name in err and "DecompressionBomb" in err
    assert not (tmp_path / "r" / "records").exists() or not list((tmp_path / "r" / "records").iterdir())
    assert main([*run, "--set", "data.skip_unreadable=true"]) == 0
    capsys.readouterr()
    for path in (tmp_path / "r" / "records").glob("*.json"):
        rec = json.loads(path.read_text())
        if rec.get("suite_variant"):
            assert rec["data_source"]["unreadable_skipped"] == 2, rec["data_source"]


@pytest.mark.slow
def test_show_tells_set_variants_apart(finished, tmp_path, capsys):
    """Two --set variants in one folder: `show` names each row's run (main: rows that could not be told apart)."""
    import shutil

    suite, results = finished
    shutil.copytree(results, tmp_path / "r")
    assert main(["run", str(suite), "--results", str(tmp_path / "r"), "--device", "cpu", "--set", "train.lr=0.04"]) == 0
    capsys.readouterr()
    assert main(["show", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    variant = next(json.loads(p.read_text())["suite_variant"] for p in (tmp_path / "r" / "records").glob("*.json")
                   if json.loads(p.read_text())["suite_variant"])  # fmt: skip
    assert " run " in out.splitlines()[0] and f"tiny+{variant}" in out and " tiny " in out


@pytest.mark.slow
def test_a_quick_nightly_is_not_judged_against_the_full_reference(finished, tmp_path, capsys):
    """`nightly --set` is a variant: judged against its own reference, or one line saying there is none (main:
    judged against the full suite's bounds, a quick pass could never pass)."""
    from tissuebench.nightly import nightly

    suite, measured = finished
    refs = tmp_path / "refs"
    refs.mkdir()
    assert main(["check", "--results", str(measured), "--update", "--against", str(refs / "tiny.csv")]) == 0
    lines = []
    nightly(
        [str(suite)], root=tmp_path / "n", device="cpu", asv="off", log=lines.append,
        overrides={"train.lr": 0.04}, references=refs,
    )  # fmt: skip
    summary = "\n".join(lines)
    assert "no reference for the --set variant tiny+" in summary and "regressions" not in summary
    capsys.readouterr()


def test_a_dry_run_counts_each_architecture_once(monkeypatch, capsys):
    """200 seeds of smoke plan 1,000 jobs with one model built per architecture (main: one per job and seed,
    about 18 ms each: 30,000 jobs did not plan in 300 s)."""
    import tissuenet.registry as registry

    built = []
    real = registry.create_model
    monkeypatch.setattr(registry, "create_model", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    seeds = "seeds=[" + ",".join(map(str, range(200))) + "]"
    assert main(["run", "smoke", "--dry-run", "--json", "--set", seeds]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1000
    assert len(built) <= 12, sorted(set(built))
