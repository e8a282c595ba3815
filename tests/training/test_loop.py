"""One small end-to-end run on real faces: every output file, finite metrics, resume, no silent overwrite."""

import csv
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from conftest import console_script, copy_split, with_small_net

from ferlite.cli import main
from ferlite.datasets import read_dataset
from ferlite.modelfile import KERAS_EXPECTED, load_keras_model
from ferlite.training.loop import TrainConfig, _read_state, train
from ferlite.weights import file_sha256


@pytest.fixture
def small_splits(ferplus_train_sample, ferplus_valid, tmp_path):
    return (copy_split(ferplus_train_sample, tmp_path / "train", 256),
            copy_split(ferplus_valid, tmp_path / "val", 128))


def test_bad_options(small_splits, tmp_path):
    tr, va = small_splits
    with pytest.raises(ValueError, match="unknown loss"):
        train(TrainConfig(train=str(tr), val=str(va), loss="hinge", output_dir=str(tmp_path / "x")))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(TrainConfig(train=str(tr), val=str(va), resume=True, output_dir=str(tmp_path / "y")))


def test_option_lists_are_the_command_line_choices():
    from ferlite.cli.train import train_cmd
    from ferlite.training.loop import LOSSES, OPTIMIZERS, SCHEDULES

    choices = {p.name: list(p.type.choices) for p in train_cmd.params if p.name in ("loss", "opt", "schedule")}
    assert choices == {"loss": list(LOSSES), "opt": list(OPTIMIZERS), "schedule": list(SCHEDULES)}
    for option, value in (("loss", "hinge"), ("opt", "rmsprop"), ("schedule", "step")):
        with pytest.raises(ValueError, match=f"unknown {'optimizer' if option == 'opt' else option} {value!r}"):
            TrainConfig(train="t", val="v", **{option: value}).check()


def test_weight_average_arithmetic():
    import keras
    import numpy as np

    from ferlite.training.loop import WeightAverage

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    ema = WeightAverage(0.5)
    steps = [np.full((2, 1), 1.0), np.full((2, 1), 3.0), np.full((2, 1), 7.0)]
    for kernel in steps:
        model.set_weights([kernel, np.zeros(1)])
        ema.update(model)
    # first update copies; then d = min(0.5, 2/11) = 2/11, then min(0.5, 3/12) = 1/4
    expected = ((1.0 * 2 / 11 + 3.0 * 9 / 11) * 1 / 4 + 7.0 * 3 / 4)
    np.testing.assert_allclose(ema.weights[0], expected, rtol=1e-6)
    assert ema.updates == 3
    with ema.applied(model):
        np.testing.assert_allclose(model.get_weights()[0], expected, rtol=1e-6)
    np.testing.assert_array_equal(model.get_weights()[0], steps[-1])  # the model's own weights come back


@pytest.mark.slow
def test_train_end_to_end_with_ema_and_resume(small_splits, small_net, tmp_path):
    """One small run (a weight average, standard augmentation): every output file, finite metrics, no silent
    overwrite; the average selected, saved and carried on by resume; every epoch kept (the average); a kill between
    checkpoint files refused."""
    import keras
    import numpy as np

    from ferlite.datasets import read_dataset
    from ferlite.training.loop import WeightAverage, evaluate_arrays

    tr, va = small_splits
    out = tmp_path / "run"
    cfg = TrainConfig(train=str(tr), val=str(va), model=small_net, alpha=0.25, epochs=1, batch_size=32,
                      output_dir=str(out), warmup_epochs=0, aug="standard", ema=0.9, keep_epochs=True)
    info = train(cfg, log=lambda *_: None)
    for name in ("last.keras", "state.json", "ema.npz", "best_mae.keras", "best_major8.keras", "history.csv",
                 "curves.png", "model.keras", "model.json"):
        assert (out / name).is_file(), name
    side = json.loads((out / "model.json").read_text())
    assert side["classes"] == ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                               "unknown"]
    assert side["input_size"] == 48 and side["alpha"] == 0.25 and side["data"]["train_faces"] == 256
    for key in ("mae", "top1", "kl", "major8_acc"):
        assert math.isfinite(info["valid"][key])
    assert set(info["valid"]["class_mae"]) == set(side["classes"])
    assert all(math.isfinite(x) for x in info["valid"]["class_mae"].values())
    epoch1 = {name: (out / name).read_bytes() for name in ("state.json", "ema.npz")}
    (row,) = csv.DictReader(open(out / "history.csv"))
    assert all(math.isfinite(float(x)) for x in row.values()), row
    assert float(row["ema_val_mae"]) != float(row["val_mae"])  # 8 steps of averaging: not the raw weights
    ema = WeightAverage(0.9)
    ema.load(out / "ema.npz")
    assert ema.updates == 8  # 256 faces / batch 32, one update a step
    # model.keras holds the averaged weights, and scores what history.csv recorded for them
    model = keras.models.load_model(out / "model.keras", compile=False)
    for saved, averaged in zip(model.get_weights(), ema.weights, strict=True):
        np.testing.assert_allclose(saved, averaged, rtol=1e-6)
    valid, _ = evaluate_arrays(model, read_dataset(str(va)))
    assert valid["mae"] == pytest.approx(float(row["ema_val_mae"]), abs=1e-6)
    kept = keras.models.load_model(out / "epoch_001.keras", compile=False)  # --keep-epochs: the average, too
    for saved, averaged in zip(kept.get_weights(), ema.weights, strict=True):
        np.testing.assert_allclose(saved, averaged, rtol=1e-6)
    assert json.loads((out / "epoch_001.json").read_text())["valid"]["mae"] == pytest.approx(valid["mae"], abs=1e-6)

    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, log=lambda *_: None)

    cfg.epochs, cfg.resume = 2, True
    train(cfg, log=lambda *_: None)
    assert history_epochs(out) == [1, 2]
    assert json.loads((out / "state.json").read_text())["epoch"] == 2
    ema.load(out / "ema.npz")
    assert ema.updates == 16  # the average carried on from the saved one
    assert sorted(p.name for p in out.glob("epoch_*.keras")) == ["epoch_001.keras", "epoch_002.keras"]

    # Killed after writing both checkpoint files of epoch 2 but before state.json: rolled forward to epoch 2.
    run = shutil.copytree(out, tmp_path / "killed")
    (run / "state.json").write_bytes(epoch1["state.json"])
    state, rolled = _read_state(run, ema=True)
    assert rolled and state["epoch"] == 2 and state["sha256"]["ema.npz"] == file_sha256(run / "ema.npz")
    # Killed between last.keras and ema.npz: last.keras is epoch 2's, ema.npz and state.json epoch 1's. No complete
    # checkpoint matches them: refused, naming the file, the epoch and what to do, and nothing is changed.
    (run / "ema.npz").write_bytes(epoch1["ema.npz"])
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    cfg.output_dir, cfg.epochs = str(run), 3
    with pytest.raises(ValueError) as err:
        train(cfg, log=lambda *_: None)
    assert str(err.value).startswith(f"--resume: last.keras in {run} do not match state.json (epoch 1) but the "
                                     "other checkpoint files do: the run was killed while writing its checkpoint")
    assert f"start a new run (--init-weights {run / 'last.keras'} keeps the weights)" in str(err.value)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_bad_ema(small_splits, tmp_path):
    tr, va = small_splits
    with pytest.raises(ValueError, match=r"ema must be a decay in \[0, 1\)"):
        train(TrainConfig(train=str(tr), val=str(va), ema=1.0, output_dir=str(tmp_path / "x")))


@pytest.mark.slow
@pytest.mark.parametrize(("flag", "other"), [("--quant-noise", "--fake-quant"), ("--fake-quant", "--quant-noise")])
def test_training_for_int8_keeps_noisy_checkpoints_and_saves_plain_models(flag, other, small_splits, small_net,
                                                                          tmp_path):
    from ferlite.training.loop import evaluate_arrays
    from ferlite.training.quantnoise import FakeQuant, StepNoise, quant_noise_layer

    tr, va = small_splits
    out = tmp_path / "run"

    def run(epochs: int, *extra: str):
        return CliRunner().invoke(main, ["train", "--train", str(tr), "--val", str(va), "--model", small_net, "--alpha",
                                         "0.25", "--epochs", str(epochs), "--batch-size", "32", "--warmup-epochs", "0",
                                         "--output-dir", str(out), *extra])

    result = run(1, flag)
    assert result.exit_code == 0, result.output
    assert quant_noise_layer(load_keras_model(out / "last.keras")) is {"--quant-noise": StepNoise,
                                                                       "--fake-quant": FakeQuant}[flag]
    for name in ("model.keras", "best_mae.keras", "best_major8.keras"):  # what is used and exported: no noise layer
        assert not [layer.name for layer in load_keras_model(out / name).layers if "noise" in layer.name], name
    (row,) = csv.DictReader(open(out / "history.csv"))
    valid, _ = evaluate_arrays(load_keras_model(out / "model.keras"), read_dataset(str(va)))
    assert valid["mae"] == pytest.approx(float(row["val_mae"]), abs=1e-6)  # the trained weights, copied out whole
    config = json.loads((out / "model.json").read_text())["config"]
    assert (config["quant_noise"], config["fake_quant"]) == (flag == "--quant-noise", flag == "--fake-quant")

    for extra in ((), (other,)):  # refused before any training
        result = run(3, "--resume", *extra)
        assert result.exit_code != 0
        assert f"{out} was trained with {flag}: resume with the options of the original run" in result.output
    result = run(1, flag, other)
    assert result.exit_code != 0
    assert "(--quant-noise, --fake-quant) are two ways of training for int8: choose one" in result.output
    if flag == "--quant-noise":  # resuming is the same code for both: once is enough
        result = run(2, flag, "--resume")
        assert result.exit_code == 0, result.output
        assert history_epochs(out) == [1, 2]


# ---------------------------------------------------------------------------------------------------------------
# Bad input and hard stops: a clear error before anything is written, or a checkpoint that a kill cannot corrupt.
# ---------------------------------------------------------------------------------------------------------------

ARGS = ["--alpha", "0.25", "--batch-size", "32", "--warmup-epochs", "0", "--aug", "none"]
TEMPORARY = re.compile(r"^\..+\.tmp(\.\w+)?$|^\.write-test-")  # what atomic_path and the write probe leave


def error_lines(stderr: str) -> list[str]:
    """The ``Error:`` lines of a command's stderr (click's usage lines and library noise aside)."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if TEMPORARY.match(p.name))


def history_epochs(run: Path) -> list[int]:
    """The epochs of a run's history.csv, in order."""
    return [int(r["epoch"]) for r in csv.DictReader(open(run / "history.csv"))]


def load_every_model(run: Path) -> list[str]:
    """Load every ``.keras`` file of a run folder (a partial one would not load); return their names."""
    from ferlite.modelfile import load_keras_model

    names = sorted(p.name for p in run.glob("*.keras") if not TEMPORARY.match(p.name))
    for name in names:
        load_keras_model(run / name)
    return names


# A real ``ferlite-train`` process whose progress lines can hold it: after printing "epoch K/N" for each K of its
# first argument it waits for a line on stdin, its epoch-K checkpoint complete. Held at the end of the last epoch
# too, it cannot finish: a kill sent after releasing an earlier epoch lands in a later one, or at the last one's end.
HELD_TRAIN = """
import re, sys
import click
import small_net  # registers the small test network
from ferlite.cli import train_main

hold = {int(k) for k in sys.argv[1].split(",")}
echo = click.echo

def held_echo(message=None, *args, **kwargs):
    echo(message, *args, **kwargs)
    m = re.match(r"epoch (\\d+)/\\d+ ", str(message or ""))
    if m and int(m.group(1)) in hold:
        sys.stdout.flush()
        sys.stdin.readline()

click.echo = held_echo
train_main(sys.argv[2:], prog_name="ferlite-train")
"""


def _cpu_seconds(pid: int) -> float | None:
    """CPU time used so far by a process (Linux /proc), None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def killed_run(ferplus_train_sample, ferplus_valid, small_net, tmp_path_factory):
    """A 3-epoch run SIGKILLed inside epoch 3, and copies of its folder at the ends of epochs 1 and 2.

    The process is held after epochs 1 and 2 (each copy is taken while it waits, its checkpoint complete) and
    after epoch 3; released after epoch 2, it is killed once it has used a second of CPU in epoch 3 (or, on a
    slow machine, while held at its end): wherever the kill lands, it is in epoch 3 and the run has not finished.
    """
    root = tmp_path_factory.mktemp("killed")
    tr = copy_split(ferplus_train_sample, root / "train", 256)
    va = copy_split(ferplus_valid, root / "val", 64)
    out = root / "run"
    (root / "held_train.py").write_text(HELD_TRAIN)
    argv = ["--train", str(tr), "--val", str(va), "--model", small_net, *ARGS, "--epochs", "3", "--output-dir",
            str(out)]
    env = with_small_net({**os.environ, "FERLITE_HOME": str(root / "home"), "TF_CPP_MIN_LOG_LEVEL": "3"})
    env.pop("FERLITE_BASE_URL", None)
    stderr = open(root / "stderr.txt", "w")
    proc = subprocess.Popen([sys.executable, str(root / "held_train.py"), "1,2,3", *argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=root)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)], daemon=True).start()
    log: list[str] = []  # its stdout so far

    def held_at(epoch: int) -> None:  # wait (300 s: a safety net only) until the process holds at this epoch's end
        while True:
            line = lines.get(timeout=300)
            assert line is not None, f"the run ended early: {''.join(log)}{(root / 'stderr.txt').read_text()[-3000:]}"
            log.append(line)
            if line.startswith(f"epoch {epoch}/3 "):
                assert json.loads((out / "state.json").read_text())["epoch"] == epoch
                return

    def release() -> None:
        proc.stdin.write("\n")
        proc.stdin.flush()

    try:
        snapshots = {}
        for epoch in (1, 2):
            held_at(epoch)
            snapshots[epoch] = shutil.copytree(out, root / f"end_of_epoch{epoch}")
            release()
        start, deadline = _cpu_seconds(proc.pid), time.monotonic() + 300
        while time.monotonic() < deadline:  # the kill lands in epoch 3 whenever it is sent: this only spreads it
            line = lines.get(timeout=0.02) if lines.qsize() else None
            if line is not None and line.startswith("epoch 3/3 "):
                break
            now = _cpu_seconds(proc.pid)
            if start is None or now is None or now - start >= 1.0:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=300) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    return SimpleNamespace(out=out, argv=argv, pid=proc.pid, snapshots=snapshots, left_at_kill=leftovers(out),
                           state_at_kill=json.loads((out / "state.json").read_text()))


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_finishes_with_no_corrupt_file(killed_run):
    out = killed_run.out
    killed_at = killed_run.state_at_kill["epoch"]
    assert killed_at in (2, 3), killed_run  # killed inside epoch 3, or held at its end
    assert load_every_model(out)  # the atomic writes: whatever the kill interrupted, each model file is whole
    # a write the kill interrupted leaves a temporary under the name atomic_path gives it (one more is made here,
    # as the kill may have landed elsewhere): resume removes them
    partial = out / f".last.keras.{killed_run.pid}.0123abcd.tmp.keras"
    partial.write_bytes((out / "last.keras").read_bytes()[:1000])

    result = CliRunner().invoke(main, ["train", *killed_run.argv, "--resume"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    start = killed_at + ("state.json was one epoch behind the checkpoint" in result.output)  # killed before it
    assert f"resuming {out} at epoch {start + 1} " in result.output, (killed_run, result.output)
    assert all(f"epoch {e}/3 " in result.output for e in range(start + 1, 4)), (killed_run, result.output)
    assert leftovers(out) == []
    assert history_epochs(out) == [1, 2, 3]
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 3 and state["sha256"]["last.keras"] == file_sha256(out / "last.keras")
    assert set(load_every_model(out)) == {"best_major8.keras", "best_mae.keras", "last.keras", "model.keras"}
    assert json.loads((out / "model.json").read_text())["data"]["train_faces"] == 256


def _killed_between_checkpoint_and_state(killed_run, dest: Path) -> Path:
    """The folder a run killed between replacing last.keras and state.json leaves: epoch 2's files, epoch 1's
    state.json (both copied from the real run)."""
    run = shutil.copytree(killed_run.snapshots[2], dest)
    shutil.copy(killed_run.snapshots[1] / "state.json", run / "state.json")
    return run


@pytest.mark.slow
def test_resume_rolls_forward_a_checkpoint_newer_than_state_json(killed_run, tmp_path):
    run = _killed_between_checkpoint_and_state(killed_run, tmp_path / "run")
    state, rolled = _read_state(run, ema=False)
    assert rolled and state["epoch"] == 2 and state["sha256"]["last.keras"] == file_sha256(run / "last.keras")
    best = json.loads((run / "best_mae.json").read_text())
    assert state["best_mae"] == best["valid"]["mae"] and state["wait"] == 2 - best["epoch"]

    argv = [*killed_run.argv[:-1], str(run)]
    argv[argv.index("--epochs") + 1] = "2"  # epoch 2 is the last: resuming trains nothing, it completes the run
    result = CliRunner().invoke(main, ["train", *argv, "--resume"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "state.json was one epoch behind the checkpoint" in result.output
    assert "the checkpoint of epoch 2 is complete" in result.output
    saved = json.loads((run / "state.json").read_text())
    assert saved["epoch"] == 2 and saved["sha256"]["last.keras"] == file_sha256(run / "last.keras")
    assert history_epochs(run) == [1, 2] and leftovers(run) == []
    assert "model.keras" in load_every_model(run)


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_that_matches_no_epoch(killed_run, small_net, tmp_path):
    run = _killed_between_checkpoint_and_state(killed_run, tmp_path / "run")
    whole = (run / "last.keras").read_bytes()
    (run / "last.keras").write_bytes(whole[: len(whole) // 2])  # neither epoch 1's file nor a whole epoch 2
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    cfg = TrainConfig(train=killed_run.argv[1], val=killed_run.argv[3], model=small_net, alpha=0.25, batch_size=32,
                      epochs=3, warmup_epochs=0, output_dir=str(run), resume=True)
    with pytest.raises(ValueError) as err:
        train(cfg, log=lambda *_: None)
    message = str(err.value)
    assert str(run / "last.keras") in message and f"expected {KERAS_EXPECTED}" in message
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # state.json not rolled onto it

    result = CliRunner().invoke(main, ["train", *killed_run.argv[:-1], str(run), "--resume"])
    assert result.exit_code == 1
    (line,) = error_lines(result.stderr)
    assert str(run / "last.keras") in line and f"expected {KERAS_EXPECTED}" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_epochs_zero_is_refused_before_anything_is_written(small_valid_folder, tmp_path):
    va = small_valid_folder(16)
    out = tmp_path / "run"
    proc = subprocess.run([*console_script("ferlite-train"), "--train", str(va), "--val", str(va), "--epochs", "0",
                           "--output-dir", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert "'--epochs'" in line and "0 is not in the range x>=1" in line
    with pytest.raises(ValueError, match=r"^epochs must be at least 1, got 0$"):
        train(TrainConfig(train=str(va), val=str(va), epochs=0, output_dir=str(out)))
    assert not out.exists()


def test_batch_larger_than_the_data_names_both_numbers(small_valid_folder, tmp_path):
    tr, va = small_valid_folder(40, name="train"), small_valid_folder(16, start=40, name="val")
    kept = len(read_dataset(str(tr)).targets("seed9")[0])
    expected = (rf"--batch-size 64 is larger than the {kept} training faces \(seed9 kept {kept} of 40\): .*"
                rf"pass --batch-size {kept} or less")
    out, empty = tmp_path / "run", tmp_path / "empty"
    empty.mkdir()
    for folder in (out, empty):
        with pytest.raises(ValueError, match=expected):
            train(TrainConfig(train=str(tr), val=str(va), alpha=0.25, epochs=1, batch_size=64,
                              output_dir=str(folder)), log=lambda *_: None)
    assert not out.exists() and list(empty.iterdir()) == []  # the folder made for the run is gone, the other empty
    result = CliRunner().invoke(main, ["train", "--train", str(tr), "--val", str(va), "--batch-size", "64",
                                       "--output-dir", str(out)])
    assert result.exit_code == 1
    (line,) = error_lines(result.stderr)
    assert re.search(expected, line) and not out.exists()


def test_output_dir_that_is_a_file_is_refused_before_any_epoch(small_valid_folder, tmp_path):
    va = small_valid_folder(16)
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder\n")
    lines = []
    with pytest.raises(OSError) as err:
        train(TrainConfig(train=str(va), val=str(va), epochs=1, output_dir=str(taken)), log=lines.append)
    assert f"cannot write the run folder {taken}" in str(err.value)
    assert "expected a folder ferlite can create and write to" in str(err.value)
    assert lines == [] and taken.read_text() == "a file, not a folder\n" and sorted(tmp_path.iterdir()) == [
        tmp_path / "taken", tmp_path / "valid"]
    result = CliRunner().invoke(main, ["train", "--train", str(va), "--val", str(va), "--output-dir", str(taken)])
    assert result.exit_code == 2
    (line,) = error_lines(result.stderr)
    assert "'--output-dir'" in line and f"{taken}" in line and "is a file" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into a 0o555 folder; the full-disk and file tests cover a root user")
def test_read_only_output_folder_is_refused_before_any_epoch(small_valid_folder, tmp_path):
    va = small_valid_folder(16)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for run in (locked, locked / "run"):
            lines = []
            with pytest.raises(OSError) as err:
                train(TrainConfig(train=str(va), val=str(va), epochs=1, output_dir=str(run)), log=lines.append)
            assert f"cannot write the run folder {run}" in str(err.value) and "Permission denied" in str(err.value)
            assert "expected a folder ferlite can create and write to" in str(err.value) and lines == []
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


FULL_DISK = """
mount -t tmpfs -o size=64k tmpfs "$MOUNT" || { echo "no-mount"; exit 0; }
head -c 1048576 /dev/zero > "$MOUNT/filler" 2>/dev/null
"$@" 2> "$ERR_FILE" > /dev/null
echo "rc=$?"
ls -A "$MOUNT"
"""


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs util-linux unshare to mount a small full tmpfs")
def test_full_disk_is_refused_before_any_epoch_and_leaves_nothing(small_valid_folder, tmp_path):
    """A real full filesystem: a 64 KiB tmpfs filled to the last byte, mounted over an empty folder in a private
    mount namespace (as root; as a user, where user namespaces are allowed), holding the run folder."""
    va = small_valid_folder(16)
    disk = tmp_path / "disk"
    disk.mkdir()
    run = disk / "run"
    env = {**os.environ, "ERR_FILE": str(tmp_path / "stderr.txt"), "MOUNT": str(disk), "TF_CPP_MIN_LOG_LEVEL": "3"}
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    train_cmd = [*console_script("ferlite-train"), "--train", str(va), "--val", str(va), *ARGS, "--epochs", "1",
                 "--output-dir", str(run)]
    proc = subprocess.run([*unshare, "sh", "-c", FULL_DISK, "sh", *train_cmd], capture_output=True, text=True,
                          env=env, timeout=300)
    if proc.returncode != 0 or proc.stdout.startswith("no-mount"):
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {(proc.stdout + proc.stderr).strip()[-300:]}")
    rc, *left = proc.stdout.split()
    assert rc == "rc=1"
    (line,) = error_lines((tmp_path / "stderr.txt").read_text())
    assert line.startswith(f"Error: cannot write the run folder {run}: [Errno 28] No space left on device")
    assert line.endswith("expected a folder ferlite can create and write to: choose another --output-dir, fix its "
                         "permissions or free some space")
    assert left == ["filler"]  # no run folder, no probe file: nothing but what filled the disk


@pytest.mark.parametrize(("option", "value", "message"), [
    ("img_size", 0, "img_size must be a multiple of 16 (at least 16), got 0"),
    ("img_size", 40, "img_size must be a multiple of 16 (at least 16), got 40"),
    ("label_smoothing", 2.0, "label_smoothing must be in [0, 1), got 2.0"),
    ("weight_decay", -1.0, "weight_decay must be >= 0, got -1.0"),
    ("class_balance", 1.5, "class_balance must be a power in [0, 1] (0 = off), got 1.5"),
])
def test_config_refuses_out_of_range_options(option, value, message):
    """Refused by TrainConfig.check, before any data is read or any folder made (not by OpenCV or Keras later)."""
    with pytest.raises(ValueError) as caught:
        TrainConfig(train="unused", val="unused", **{option: value}).check()
    assert str(caught.value) == message


def test_class_balance_weights():
    import numpy as np

    from ferlite.training.loop import class_balance_weights

    one_hot = np.eye(3)[[0] * 6 + [1] * 3 + [2]]  # class frequencies 0.6, 0.3, 0.1
    w = class_balance_weights(one_hot, 1.0)  # inverse frequency: every class weighs the same in all
    assert w.mean() == pytest.approx(1.0)
    assert [w[:6].sum(), w[6:9].sum(), w[9:].sum()] == pytest.approx([10 / 3] * 3)
    np.testing.assert_allclose(class_balance_weights(one_hot, 0.0), 1.0)
    half = class_balance_weights(one_hot, 0.5)
    assert half[9] / half[0] == pytest.approx(6**0.5)  # (0.1 / 0.6) ** -0.5
    soft = class_balance_weights(np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), 1.0)
    prior = np.array([0.5, 1 / 6, 1 / 3])
    expected = np.array([0.5 / prior[0] + 0.5 / prior[1], 1 / prior[0], 1 / prior[2]])
    np.testing.assert_allclose(soft, expected / expected.mean(), rtol=1e-6)


@pytest.mark.slow
def test_class_balanced_loss_weighs_the_faces_of_rare_classes(small_splits, small_net, tmp_path):
    """The same run with and without --class-balance: the first step's loss is the weighted mean, so the
    epoch's loss differs; the log names the weights' range."""
    tr, va = small_splits
    losses = {}
    for power in ("0", "1"):
        out = tmp_path / f"run{power}"
        result = CliRunner().invoke(main, ["train", "--train", str(tr), "--val", str(va), "--model", small_net,
                                           "--alpha", "0.25", "--epochs", "1", "--batch-size", "32", "--seed", "3",
                                           "--warmup-epochs", "0", "--output-dir", str(out), "--class-balance", power])
        assert result.exit_code == 0, result.output
        assert ("class-balanced loss (power 1): face weights" in result.output) == (power == "1")
        losses[power] = float(next(csv.DictReader(open(out / "history.csv")))["loss"])
    assert losses["0"] != pytest.approx(losses["1"], rel=1e-3)
