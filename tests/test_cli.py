"""Bad arguments to every command exit non-zero with one ``Error:`` line on stderr and no traceback.

What "one line" means here, precisely (:func:`the_error`):

* a usage error (click rejected the arguments: exit status 2) leaves exactly click's four lines on stderr:
  ``Usage: ...``, ``Try '... --help' for help.``, an empty line, and the ``Error: ...`` line;
* any other error (exit status 1) leaves exactly one line on stderr, ``Error: ...``, when the command failed before
  writing anything else there (every case below does);
* never the word ``Traceback``, and the error line itself names what was received and what was expected.

``ferlite --debug`` or ``FERLITE_DEBUG=1`` shows the traceback instead. Most cases run through click's CliRunner (the
real command code, in this process, stderr kept apart from stdout); a few run the installed console scripts as real
processes (:data:`PROCESS_CASES`). In a real process, native libraries may add log lines of their own to stderr when
they load (TensorFlow on import, LiteRT's ``INFO: Created TensorFlow Lite XNNPACK delegate``), which CliRunner cannot
see: the real-process cases fail before any of them is loaded.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import traceback
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from ferlite.cli import _guard_all, main

BIN = Path(sys.executable).parent
TRY_LINE = re.compile(r"Try '[\w-]+( [\w-]+)* (-h|--help)' for help\.")


def the_error(stderr: str, exit_code: int) -> str:
    """The one ``Error:`` line of a failed command's stderr, after checking stderr holds nothing else (see above)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    if exit_code == 2:
        assert len(lines) == 4 and lines[0].startswith("Usage: ") and TRY_LINE.fullmatch(lines[1]), stderr
        assert lines[2:] == ["", errors[0]], stderr
    else:
        assert exit_code == 1 and lines == errors, stderr
    return errors[0]


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    """Paths the cases name: a folder, a missing path, text posing as models and as a CSV, an empty output folder."""
    (tmp_path / "garbage.keras").write_text("garbage model\n")
    (tmp_path / "garbage.tflite").write_text("xx")
    # the TFLite file identifier at byte 4, then no flatbuffer: passes the cheap check, refused by LiteRT itself
    (tmp_path / "fake.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    (tmp_path / "folder").mkdir()
    (tmp_path / "out").mkdir()
    return {"dir": str(tmp_path / "folder"), "missing": str(tmp_path / "missing"), "out": str(tmp_path / "out"),
            "garbage_keras": str(tmp_path / "garbage.keras"), "garbage_tflite": str(tmp_path / "garbage.tflite"),
            "fake_tflite": str(tmp_path / "fake.tflite")}


def fill(args: list[str], paths: dict[str, str]) -> list[str]:
    return [a.format(**paths) for a in args]


# (arguments of `ferlite`, exit status, substrings of the Error line: what was received and what was expected)
CASES = [
    # train: what click checks, then what the library checks (--train/--val are real FER+ folders: {train}, {val})
    ("train", [], 2, ["Missing option '--train'"]),
    ("train", ["--train", "{missing}", "--val", "{dir}"], 2, ["'--train'", "{missing}", "does not exist"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--opt", "rmsprop"], 2,
     ["'--opt'", "'rmsprop'", "'sgd', 'adam', 'adamw'"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--epochs", "-1"], 2, ["'--epochs'", "-1", "x>=1"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--img-size", "0"], 2, ["'--img-size'", "0", "x>=16"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--label-smoothing", "2"], 2,
     ["'--label-smoothing'", "2", "0<=x<1"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--weight-decay", "-1"], 2, ["'--weight-decay'", "-1", "x>=0"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--seed", "-1"], 2, ["'--seed'", "-1", "0<=x<=4294967295"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--alpha", "0"], 2, ["'--alpha'", "0", "x>0"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--lr", "-0.1"], 2, ["'--lr'", "-0.1", "x>0"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--alpha", "abc"], 2, ["'--alpha'", "'abc'", "valid float"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--distill-weight", "0"], 2,
     ["'--distill-weight'", "0", "0<x<=1"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--distill-weight", "1.5"], 2,
     ["'--distill-weight'", "1.5", "0<x<=1"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--temperature", "0"], 2, ["'--temperature'", "0", "x>0"]),
    ("train", ["--train", "{dir}", "--val", "{dir}", "--teacher", "a,,b"], 2,
     ["'--teacher'", "'a,,b'", "expected MODEL[,MODEL...]", "an empty name"]),
    ("train", ["--train", "{train}", "--val", "{val}", "--batch-size", "8", "--output-dir", "{out}/run",
               "--teacher", "{garbage_keras}"], 1,
     ["--teacher {garbage_keras}: ", "expected a Keras 3 .keras file", "got a text file"]),
    ("train", ["--train", "{train}", "--val", "{val}", "--batch-size", "8", "--output-dir", "{out}/run",
               "--temperature", "2"], 1, ["temperature and teacher_flip", "apply to distillation only", "--teacher"]),
    ("train", ["--train", "{train}", "--val", "{val}", "--batch-size", "8", "--output-dir", "{out}/run",
               "--epochs", "1", "--freeze-backbone", "5"], 1, ["freeze_backbone", "0..epochs-1", "got 5"]),
    ("train", ["--train", "{train}", "--val", "{val}", "--batch-size", "8", "--output-dir", "{out}/run",
               "--resume"], 1, ["--resume", "no checkpoint", "expected {out}/run/state.json"]),
    ("train", ["--train", "{train}", "--val", "{val}", "--batch-size", "8", "--output-dir", "{out}/run",
               "--model", "nosuchnet"], 1, ["unknown model 'nosuchnet'", "mobilefacenet"]),
    ("train", ["--train", "{train}", "--val", "{val}", "--batch-size", "8", "--output-dir", "{out}/run",
               "--init-weights", "{garbage_keras}"], 1,
     ["garbage.keras", "expected a Keras 3 .keras file", "got a text file"]),
    # eval
    ("eval", [], 2, ["Missing option '--data'"]),
    ("eval", ["--data", "{missing}"], 2, ["'--data'", "{missing}", "does not exist"]),
    ("eval", ["--data", "{dir}", "--batch-size", "-3"], 2, ["'--batch-size'", "-3", "x>=1"]),
    ("eval", ["--data", "{dir}", "--model", "nosuch-model"], 1,
     ["no model file 'nosuch-model'", "registered: ferplus-mfn-1.0"]),
    ("eval", ["--data", "{dir}", "--model", "{garbage_keras}"], 1,
     ["garbage.keras is not a valid .keras model", "expected a Keras 3 .keras file", "got a text file"]),
    ("eval", ["--data", "{dir}", "--model", "{fake_tflite}"], 1,
     ["fake.tflite is not a valid .tflite model", "expected a TFLite flatbuffer", "LiteRT refuses"]),
    ("eval", ["--data", "{dir}", "--model", "blaze-face-short-range"], 1,
     ["'blaze-face-short-range' is a detector", "not an expression model"]),
    # demo
    ("demo", [], 2, ["give a source", "SOURCE paths", "--camera N", "--sample"]),
    ("demo", ["--sample", "--camera", "0"], 2, ["--camera 0 streams until you quit", "give it alone", "--sample"]),
    ("demo", ["--sample", "--model", "a", "--model", "b"], 2, ["got '--model' 2 times", "expected once"]),
    ("demo", ["{missing}"], 2, ["'[SOURCE]...'", "{missing}", "does not exist"]),
    ("demo", ["--image", "{missing}"], 2, ["'--image'", "{missing}", "does not exist"]),
    ("demo", ["--sample", "--detector", "dlib"], 2, ["'--detector'", "'dlib'", "'auto', 'yunet', 'mediapipe'"]),
    ("demo", ["--sample", "--min-score", "-1"], 2, ["'--min-score'", "-1.0", "0.0<=x<=1.0"]),
    ("demo", ["--sample", "--max-frames", "0"], 2, ["'--max-frames'", "0 is not in the range x>=1"]),
    ("demo", ["--sample", "--no-display", "--model", "nosuch-model"], 1,
     ["no model file 'nosuch-model'", "registered: ferplus-mfn-1.0"]),
    ("demo", ["--sample", "--no-display", "--model", "{garbage_tflite}"], 1,
     ["garbage.tflite is not a valid .tflite model", "expected a TFLite flatbuffer", "got a text file"]),
    ("demo", ["--sample", "--no-display", "--margin", "9"], 1,
     ["margin must be in [-0.4, 2.0]", "got 9.0"]),
    # prepare
    ("prepare", [], 2, ["Missing argument 'FER2013_CSV'"]),
    ("prepare", ["{missing}", "{missing}", "{out}/p"], 2, ["'FER2013_CSV'", "{missing}", "does not exist"]),
    ("prepare", ["{garbage_keras}", "{garbage_keras}", "{out}/p"], 1,
     ["garbage.keras, line 1", "expected the header 'emotion,pixels,Usage'", "garbage model"]),
    # weights
    ("weights", ["fetch", "ferplus-mfn-1.0", "--all"], 2, ["give either a NAME or --all"]),
    ("weights", ["fetch", "nosuch"], 1, ["unknown weights 'nosuch'", "registered: ferplus-mfn-1.0",
                                         "blaze-face-short-range"]),
    ("weights", ["path"], 2, ["Missing argument 'NAME'"]),
    ("weights", ["list", "extra"], 2, ["unexpected extra argument (extra)"]),
    ("weights", ["nosuchsub"], 2, ["No such command 'nosuchsub'"]),
    # export
    ("export", ["--quantize", "int4"], 2, ["'--quantize'", "'int4'", "'none', 'float16', 'int8'"]),
    ("export", ["--format", "onnx"], 2, ["'--format'", "'onnx' is not 'tflite'"]),
    ("export", ["--num-calibration", "-5"], 2, ["'--num-calibration'", "-5", "x>=1"]),
    ("export", ["--quantize", "int8", "--calibration-data", "{missing}"], 2,
     ["'--calibration-data'", "{missing}", "does not exist"]),
    ("export", ["--model", "nosuch-model", "--output", "{out}/x.tflite"], 1,
     ["no model file 'nosuch-model'", "registered: ferplus-mfn-1.0"]),
    ("export", ["--model", "{garbage_keras}", "--output", "{out}/x.tflite"], 1,
     ["garbage.keras is not a valid .keras model", "expected a Keras 3 .keras file"]),
    ("export", ["--model", "ferplus-mfn-1.0-fp16", "--output", "{out}/x.tflite"], 1,
     ["can only export a Keras model (.keras)", "ferplus-mfn-1.0-fp16.tflite"]),
    ("export", ["--model", "{garbage_keras}", "--output", "{out}/x.onnx"], 1,
     ["output must be a .tflite file", "x.onnx"]),
    # bulk
    ("bulk", [], 2, ["Missing argument 'INPUT'"]),
    ("bulk", ["{dir}"], 2, ["Missing option '--output'"]),
    ("bulk", ["{missing}", "-o", "{out}/o.parquet"], 1, ["input not found", "{missing}", "expected a folder"]),
    ("bulk", ["{dir}", "-o", "{out}/o.parquet", "--actors", "0"], 2, ["'--actors'", "0 is not in the range x>=1"]),
    ("bulk", ["{dir}", "-o", "{out}/o.parquet", "--detector", "x"], 2, ["'--detector'", "'x'", "'auto'"]),
    ("bulk", ["{dir}", "-o", "{out}/o.parquet", "--model", "{garbage_keras}"], 1,
     ["garbage.keras is not a valid .keras model", "expected a Keras 3 .keras file"]),
    # the group itself
    ("nosuchcmd", [], 2, ["No such command 'nosuchcmd'"]),
]


def _case_id(case) -> str:
    command, args, code, _ = case
    return f"{command}-{code}-" + "-".join(a.strip("-{}").split("/")[-1] for a in args[:4] if a)


@pytest.mark.parametrize(("command", "args", "code", "needles"), CASES, ids=[_case_id(c) for c in CASES])
def test_bad_arguments_give_one_error_line(request, files, command, args, code, needles, tmp_path):
    if any("{train}" in a for a in args):  # real FER+ folders: training fails only after they are read
        make = request.getfixturevalue("small_valid_folder")
        files = {**files, "train": str(make(24, name="train")), "val": str(make(8, start=24, name="val"))}
    result = CliRunner().invoke(main, [command, *fill(args, files)], prog_name="ferlite")
    assert isinstance(result.exception, SystemExit), result.exc_info  # click's own exit, never a raised error
    assert result.exit_code == code, result.stderr
    error = the_error(result.stderr, code)
    for needle in fill(needles, files):
        assert needle in error, (needle, error)
    assert "Error" not in result.stdout and "Traceback" not in result.stdout  # stderr only: stdout stays parseable
    assert not (tmp_path / "out" / "run" / "model.keras").exists() and not (tmp_path / "out" / "x.tflite").exists()
    assert not (tmp_path / "out" / "p").exists() and not (tmp_path / "out" / "o.parquet").exists()


# --- an option given twice: refused unless it takes several values ---------------------------------------------

def _leaf_commands(group: click.Group, path: tuple[str, ...] = ()):
    """(words after ``ferlite``, command) of every command under ``group``."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


MULTIPLE = {("demo", "--image"), ("demo", "--image-dir"), ("demo", "--video"), ("train", "--teacher")}
REPEATS = [(path, option) for path, command in _leaf_commands(main) for option in command.params
           if isinstance(option, click.Option) and not (option.is_flag and not option.secondary_opts)]


@pytest.mark.parametrize(("path", "option"), REPEATS, ids=[f"{' '.join(p)} {o.opts[0]}" for p, o in REPEATS])
def test_an_option_given_twice_is_refused_unless_it_takes_several(path, option):
    """Click keeps the last value of a repeated option without a word: every ferlite command refuses the repeat of
    an option that takes one value (a usage error naming it), and the options meant to repeat say so."""
    name = option.opts[0]
    assert option.multiple == ((path[0], name) in MULTIPLE), f"{' '.join(path)} {name}"
    twice = [option.opts[-1], option.secondary_opts[0]] if option.is_flag else [name, "1", option.opts[-1], "1"]
    result = CliRunner().invoke(main, [*path, *twice], prog_name="ferlite")
    if option.multiple:
        assert "2 times" not in result.stderr, result.stderr
    else:
        names = " / ".join(f"'{n}'" for n in (*option.opts, *option.secondary_opts))
        assert the_error(result.stderr, result.exit_code) == \
            f"Error: got {names} 2 times (an option that takes one value is expected once)"
        assert result.exit_code == 2


# --- real processes: the installed console scripts --------------------------------------------------------------

PROCESS_CASES = [  # (script and arguments, exit status, substrings of the Error line)
    (["ferlite", "eval"], 2, ["Missing option '--data'"]),
    (["ferlite-train", "--train", "{missing}", "--val", "{dir}"], 2, ["'--train'", "{missing}", "does not exist"]),
    (["ferlite-eval", "--data", "{dir}", "--model", "{garbage_keras}"], 1,
     ["garbage.keras is not a valid .keras model", "expected a Keras 3 .keras file"]),
    # a negative camera index: OpenCV's VideoCapture(-1) crashes the process (SIGSEGV) if it is ever reached
    (["ferlite-demo", "--camera", "-1", "--no-display"], 2, ["'--camera'", "-1", "x>=0"]),
    (["ferlite", "weights", "path", "nosuch"], 1, ["unknown weights 'nosuch'", "registered: ferplus-mfn-1.0"]),
]


def run_script(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    exe = BIN / argv[0]
    assert exe.is_file(), f"console script {exe} is missing: install the project with pip install -e '.[test]'"
    return subprocess.run([str(exe), *argv[1:]], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env})


@pytest.mark.parametrize(("argv", "code", "needles"), PROCESS_CASES, ids=[" ".join(c[0][:2]) for c in PROCESS_CASES])
def test_console_scripts_bad_arguments(files, argv, code, needles):
    proc = run_script(fill(argv, files))
    assert proc.returncode == code, f"exit status {proc.returncode} (< 0: killed by a signal): {proc.stderr[-2000:]}"
    error = the_error(proc.stderr, code)
    for needle in fill(needles, files):
        assert needle in error, (needle, error)
    assert proc.stdout == ""
    if code == 2:  # click names the program as it was run: the console script, then the subcommand
        assert proc.stderr.startswith(f"Usage: {' '.join(a for a in argv[:2] if not a.startswith('-'))} ")


@pytest.mark.parametrize("how", ["--debug", "FERLITE_DEBUG=1"])
def test_debug_shows_the_traceback_of_an_expected_error(files, how):
    """A real process: the cause of the error with its traceback, then the same Error line as without debugging."""
    args = ["eval", "--data", files["dir"], "--model", files["garbage_keras"]]
    proc = run_script(["ferlite", "--debug", *args]) if how == "--debug" else run_script(["ferlite", *args],
                                                                                        FERLITE_DEBUG="1")
    assert proc.returncode == 1
    assert "Traceback (most recent call last):" in proc.stderr
    assert re.search(r'File ".*ferlite.*\.py", line \d+, in ', proc.stderr), proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[-1].startswith("Error: ") and "garbage.keras is not a valid .keras model" in lines[-1]
    assert re.fullmatch(r"[\w.]*Error: .+", lines[-2]) and lines[-2].endswith(": " + lines[-1][len("Error: "):])


# --- an unexpected error: any exception the command does not turn into a ClickException itself ----------------

@pytest.fixture
def unexpected_command():
    """A command on the real ``ferlite`` group, guarded as all others are, whose callback meets an exception no
    ferlite command anticipates: OpenCV refusing a size given as one number (a ``cv2.error`` of four lines)."""
    import cv2

    @click.command("cv2-resize-zero")
    def broken() -> None:
        cv2.resize(np.zeros((4, 4), np.uint8), (48,))

    main.add_command(broken)
    _guard_all(main)
    yield "cv2-resize-zero"
    del main.commands["cv2-resize-zero"]


def test_unexpected_error_is_one_line_naming_its_type(unexpected_command):
    import cv2

    result = CliRunner().invoke(main, [unexpected_command], prog_name="ferlite")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    error = the_error(result.stderr, 1)
    with pytest.raises(cv2.error) as raised:
        cv2.resize(np.zeros((4, 4), np.uint8), (48,))
    first, *others = str(raised.value).strip().splitlines()  # what the guard makes one line of
    assert error == (f"Error: unexpected cv2.error: {first} (--debug or FERLITE_DEBUG=1 shows the traceback and the "
                     f"other {len(others)} line(s) of the message)") and others
    off = CliRunner().invoke(main, [unexpected_command], prog_name="ferlite", env={"FERLITE_DEBUG": "0"})
    assert off.exit_code == 1 and off.stderr == result.stderr  # 0 is off


@pytest.mark.parametrize("how", ["--debug", "FERLITE_DEBUG=1"])
def test_debug_lets_an_unexpected_error_out_with_its_traceback(unexpected_command, how):
    import cv2

    if how == "--debug":
        result = CliRunner().invoke(main, ["--debug", unexpected_command], prog_name="ferlite")
    else:
        result = CliRunner().invoke(main, [unexpected_command], prog_name="ferlite", env={"FERLITE_DEBUG": "1"})
    assert result.exit_code == 1 and isinstance(result.exception, cv2.error)  # raised, not turned into Error:
    assert "Error:" not in result.stderr
    frames = [frame.name for frame in traceback.extract_tb(result.exc_info[2])]
    assert frames[-2:] == ["guarded", "broken"]  # the traceback reaches the failing line of the command


def test_debug_traceback_in_a_real_process():
    """``FERLITE_DEBUG=1`` in a real process running the ``ferlite`` group with an unexpected error: Python's own
    traceback on stderr, exit status 1, and no Error line."""
    code = ("import sys, click, cv2, numpy as np; from ferlite.cli import main, _guard_all\n"
            "@main.command('cv2-resize-zero')\n"
            "def broken():\n    cv2.resize(np.zeros((4, 4), np.uint8), (48,))\n"
            "_guard_all(main); main(['cv2-resize-zero'], prog_name='ferlite')\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "FERLITE_DEBUG": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1
    assert "Traceback (most recent call last):" in proc.stderr and "in broken" in proc.stderr
    assert re.search(r"^cv2\.error: OpenCV", proc.stderr, re.M) and "Error:" not in proc.stderr
