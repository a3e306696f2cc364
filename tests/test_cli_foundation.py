"""The command line: help without heavy imports, dataset and preprocess through CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agegender_cli import __version__
from agegender_cli.cli.app import app

runner = CliRunner()


def run_python(code: str) -> str:
    """`code` run by a fresh interpreter (nothing imported yet); its stdout, once it exited 0."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_and_version_do_not_import_torch_cv2_or_ray():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from agegender_cli.cli.app import app\n"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['--version']); assert r.exit_code == 0, r.output\n"
        "for cmd in ('dataset', 'preprocess', 'train', 'predict', 'evaluate', 'compare', 'info'):\n"
        "    CliRunner().invoke(app, [cmd, '--help'])\n"
        "heavy = [m for m in ('torch', 'cv2', 'sklearn', 'matplotlib', 'ray', 'pyarrow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    run_python(code)


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"]])
def test_help_imports_only_what_it_renders(argv):
    """`agegender [COMMAND] --help` stays fast: the service layer, pydantic (Typer's coercion) and what only a running
    command needs stay unimported."""
    code = (
        "import sys\n"
        f"sys.argv = ['agegender', *{argv!r}]\n"
        "from agegender_cli.cli.app import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "late = ('agegender_cli.service', 'agegender_cli.fileio', 'agegender_cli.evaluation.tables',\n"
        "        'agegender_cli.data.labelled', 'numpy', 'PIL', 'rich.progress', 'pydantic')\n"
        "print([m for m in late if m in sys.modules])\n"
    )
    assert run_python(code).strip().splitlines()[-1] == "[]"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_python_dash_m_works():
    result = subprocess.run([sys.executable, "-m", "agegender_cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout


def test_dataset_table(tiny_utkface, tmp_path):
    result = runner.invoke(app, ["dataset", str(tiny_utkface), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "Images per split and class" in result.stdout and "192 usable images" in result.stdout
    assert (tmp_path / "o" / "manifest.csv").is_file()


def test_dataset_json_is_only_json(tiny_utkface, tmp_path):
    result = runner.invoke(app, ["dataset", str(tiny_utkface), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["n_usable"] == 192 and data["n_skipped"] == 5
    assert {"file", "reason"} <= set(data["skipped"][0])
    assert set(data["splits"]) == {"train", "val", "test"}


def test_dataset_failure_is_one_line_and_exit_1(tmp_path):
    result = runner.invoke(app, ["dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no such file or folder" in lines[0]


def test_bad_usage_is_exit_2(tiny_utkface, tmp_path):
    assert runner.invoke(app, ["dataset"]).exit_code == 2
    assert runner.invoke(app, ["dataset", str(tiny_utkface), "--gaps", "bogus"]).exit_code == 2
    assert runner.invoke(app, ["dataset", str(tiny_utkface), "--seed", "x"]).exit_code == 2
    assert runner.invoke(app, ["preprocess", str(tiny_utkface)]).exit_code == 2  # no --out nor --preview
    assert runner.invoke(app, ["nonsense"]).exit_code == 2


def test_preprocess_folder_writes_pngs_and_preview(tiny_utkface, tmp_path):
    sub = tiny_utkface / "sub0"
    result = runner.invoke(app, ["preprocess", str(sub), "--out", str(tmp_path / "p"),
                                 "--preview", str(tmp_path / "preview.png"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["written"] == data["n_images"] == len(list(sub.glob("*.jpg")))
    assert len(list((tmp_path / "p").glob("*.png"))) == data["written"]
    assert (tmp_path / "preview.png").stat().st_size > 10_000


def test_preprocess_manifest_split_and_switches(tiny_utkface, tmp_path):
    runner.invoke(app, ["dataset", str(tiny_utkface), "--out", str(tmp_path / "d")])
    result = runner.invoke(app, ["preprocess", "--manifest", str(tmp_path / "d" / "manifest.csv"), "--split", "val",
                                 "--no-gabor", "--no-clahe", "--out", str(tmp_path / "v")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "v" / "val").glob("*.png"))) == 16


def test_preprocess_bad_file_is_reported_and_exit_1(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    result = runner.invoke(app, ["preprocess", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "bad.jpg" in result.stderr and "cannot decode" in result.stderr


@pytest.mark.integration
def test_shared_manifest_through_cli(shared_utkface, tmp_path):
    result = runner.invoke(app, ["dataset", str(shared_utkface), "--out", str(tmp_path), "--json"])
    assert json.loads(result.stdout)["n_usable"] == 6494
    assert Path(tmp_path / "manifest.csv").read_text().count("\n") == 6495


def test_threads_option_reaches_torch(tiny_utkface, tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from agegender_cli.cli.app import app\n"
        f"args = ['--threads', '1', 'dataset', {str(tiny_utkface)!r}, '--out', {str(tmp_path)!r}]\n"
        "r = CliRunner().invoke(app, args)\n"
        "assert r.exit_code == 0, r.output\n"
        "import torch\n"
        "print(torch.get_num_threads())\n"
    )
    assert run_python(code).strip() == "1"


def test_dataset_takes_several_sources_and_reports_copies(tmp_path):
    import cv2
    from conftest import make_image

    for folder, names in (("a", ("1_0_0_20170101000000001.jpg", "28_1_0_20170101000000002.jpg")),
                          ("b", ("2_0_0_20170101000000003.jpg", "70_0_1_20170101000000004.jpg"))):
        for k, name in enumerate(names):
            (tmp_path / folder).mkdir(exist_ok=True)
            cv2.imwrite(str(tmp_path / folder / name), make_image(k, 96))  # b holds copies of a's pictures
    args = ["dataset", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["sources"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert data["duplicates"]["groups"] == 2 and data["duplicates"]["conflicting_labels"] == 1
    assert len(data["duplicates"]["list"]) == 2 and all(len(g["split"]) == 1 for g in data["duplicates"]["list"])
    table = runner.invoke(app, args)
    assert "duplicates: 2 groups of copies (4 images, 1 with conflicting labels)" in table.stdout
    assert runner.invoke(app, [*args, "--duplicates", "maybe"]).exit_code == 2
