"""Faults: bad numbers for every numeric option, and hostile names. Each is refused with one sentence
before anything is written, and no name escapes its folder or reaches a shell."""

import dataclasses
import math
import subprocess

import pytest

from genlab.cli import main
from genlab.models import MODELS
from genlab.runs.config import TrainConfig

pytestmark = pytest.mark.fault


def _exit_code(argv: list[str]) -> int:
    """genlab's exit status, parse-time refusals (argparse's SystemExit(2)) included."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def _numeric_fields():
    """(flag, field, kind, metadata) for every numeric training option and model option of the CLI."""
    from genlab.config import field_types

    out = []
    for cls, owner in [(TrainConfig, "vae")] + [(m.config_class, name) for name, m in sorted(MODELS.items())]:
        types = field_types(cls)
        for f in dataclasses.fields(cls):
            if f.metadata.get("flag", True) and types[f.name] in (int, float):
                out.append((owner, f.name, types[f.name], f.metadata))
    return out


def _bad_values(kind, meta):
    """Values the declaration forbids: zero and negatives below the bounds, NaN, infinities, past the maximum."""
    lo, hi, above = meta.get("min"), meta.get("max"), meta.get("above")
    vals = []
    for v in (0, -1):
        if (lo is not None and v < lo) or (above is not None and v <= above):
            vals.append(str(v))
    if hi is not None:
        vals.append(str(int(hi) * 10 + 1) if kind is int else "1e30")
    vals += ["nan", "inf", "-inf"] if kind is float else ["nan", "1.5", "1e400"]
    return vals


CASES = [(owner, name, v) for owner, name, kind, meta in _numeric_fields() for v in _bad_values(kind, meta)]


@pytest.mark.parametrize("owner,name,value", CASES, ids=[f"{o}-{n}={v}" for o, n, v in CASES])
def test_every_bad_number_is_refused_before_anything_is_written(owner, name, value, tmp_path, capsys):
    code = _exit_code(["train", owner, f"--{name.replace('_', '-')}={value}", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()[-1]) < 300
    assert name in err or name.replace("_", "-") in err or "invalid" in err, err  # the sentence names it
    assert not (tmp_path / "r").exists()


def test_there_are_many_numbers_checked():
    assert len(CASES) > 60 and {n for _, n, _ in CASES} >= {"batch_size", "lr", "epochs", "latent_dim", "alpha"}


HOSTILE = [
    "../../evil",
    "/etc/passwd",
    "a/b",
    "nul\x00name",
    "new\nline",
    "x; rm -rf ~",
    "$(touch pwned)",
    "`touch pwned`",
    "..",
    ".",
    "-rf",
    "a" * 500,
]


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_a_run_name_never_escapes_the_runs_folder_nor_reaches_a_shell(name, tmp_path, monkeypatch):
    from genlab.runs import jobs

    spawned = []

    class FakeProc:
        pid = 999999

    def fake_spawn(args, run):  # record the argv instead of starting training
        spawned.append(args)
        return FakeProc()

    monkeypatch.setattr(jobs, "_spawn", fake_spawn)
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(model="vae", dataset="emoji", image_size=8, max_steps=1)
    try:
        run = jobs.launch(cfg, tmp_path / "runs", name=name)
    except ValueError as e:  # nothing usable left of the name: refused in a sentence
        assert "file name" in str(e)
        return
    assert run.path.parent == tmp_path / "runs" and run.path.is_dir()
    assert "\x00" not in run.path.name and "\n" not in run.path.name and "/" not in run.path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]  # nothing created outside
    assert isinstance(spawned[0], list)  # an argv list: no shell parses it
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("repo", ["../etc", "org/../x", "a/b/c", "org/na me", "org/x;ls", "/abs/path", "org/\x00"])
def test_a_hostile_repo_id_is_refused_in_one_sentence_without_a_request(repo, capsys, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # any request would fail differently
    assert _exit_code(["pull", repo]) == 2
    err = capsys.readouterr().err
    assert "is not a Hub repo id" in err and "Traceback" not in err


def test_no_subprocess_is_ever_started_through_a_shell():
    import pathlib

    src = "\n".join(p.read_text() for p in pathlib.Path("genlab").rglob("*.py"))
    assert "shell=True" not in src and "os.system(" not in src and "os.popen(" not in src
    assert subprocess  # the modules use argv lists (subprocess.Popen/call with a list)


def test_nan_and_inf_never_reach_the_model_configs():
    from genlab.models import RealNVPConfig, VAEConfig

    for cfg, field in ((VAEConfig, "beta"), (RealNVPConfig, "alpha")):
        for v in (math.nan, math.inf):
            with pytest.raises(ValueError, match=field):
                cfg(**{field: v})
