from pathlib import Path

from boxloop.cli import build_parser, main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_validate_prints_every_bad_line_and_exits_1(capsys):
    code = main(
        [
            "validate",
            str(EXAMPLES / "groundtruth-sample.manifest"),
            "--class-map",
            str(EXAMPLES / "birds.labels.json"),
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert [line.split(":")[0] for line in out[:-1]] == [f"line {n}" for n in range(5, 12)]
    assert out[-1].endswith("11 lines, 4 good (3 labeled), 7 bad")


def test_validate_exits_0_when_every_line_is_good(tmp_path, capsys):
    manifest = tmp_path / "ok.manifest"
    manifest.write_text('{"source-ref": "s3://b/1.jpg"}\n{"source-ref": "s3://b/2.jpg"}\n')
    assert main(["validate", str(manifest)]) == 0
    assert "2 good" in capsys.readouterr().out


def test_validate_exits_2_with_message_when_class_map_file_is_bad(tmp_path, capsys):
    bad = tmp_path / "labels.json"
    bad.write_text("{oops")
    code = main(
        ["validate", str(EXAMPLES / "groundtruth-sample.manifest"), "--class-map", str(bad)]
    )
    assert code == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_demo_and_local_run_take_keep_run_files():
    parser = build_parser()
    assert parser.parse_args(["demo", "--keep-run-files"]).keep_run_files is True
    assert parser.parse_args(["demo"]).keep_run_files is False
    local = ["local", "run", "--images", "d", "--labels", "l.json", "--out", "o"]
    assert parser.parse_args([*local, "--keep-run-files"]).keep_run_files is True
