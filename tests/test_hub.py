"""genlab.hub against a local Hub server (tests/hub_server.py): pull, push, and one sentence per failure.
(The Models page's pull and push, through AppTest: tests/test_app.py.)"""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import exported_model, png_header
from hub_server import TOKEN, FakeHub

ROOT = Path(__file__).resolve().parent.parent


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pull_a_shipped_checkpoint_and_sample_from_it(hub, tmp_path, tiny_run):
    import genlab
    from genlab.catalog import available_models

    folder = exported_model(tmp_path, tiny_run)
    sha = hub.add_folder("genlab/tiny-vae", folder)
    model = genlab.load_model("genlab/tiny-vae")
    local = genlab.load_model(folder)
    assert _same_weights(model, local)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(model.sample(4, 0.7, g1), local.sample(4, 0.7, g2))
    # into huggingface_hub's standard cache, at the exact commit, and offered by every model picker
    from genlab.hub import pull

    got = pull("genlab/tiny-vae")
    assert got.commit == sha and f"models--genlab--tiny-vae/snapshots/{sha}" in str(got.path)
    entry = next(e for e in available_models() if e.source == "hub")
    assert entry.label.startswith("genlab/tiny-vae") and entry.dataset == "emoji" and entry.temperature == 0.7
    # a revision pins the files: a later commit does not change what revision=sha loads
    hub.add_files("genlab/tiny-vae", {"README.md": b"changed"})
    assert pull("genlab/tiny-vae", revision=sha).path.name == sha
    assert ("GET", f"/api/models/genlab/tiny-vae/revision/{sha}") in hub.requests


def test_eval_of_a_pulled_repo_reads_the_data_set_its_card_names(hub, tmp_path, tiny_run, capsys):
    from genlab.cli import main

    hub.add_folder("genlab/tiny-vae", exported_model(tmp_path, tiny_run))
    assert main(["eval", "genlab/tiny-vae", "--n", "4", "--k", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "emoji" and result["test_images"] == 4 and result["test_bpd"] > 0


def test_push_a_run_then_pull_it_back(hub, tiny_run, monkeypatch, capsys):
    from huggingface_hub import ModelCard

    import genlab
    from genlab.cli import main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["push", str(tiny_run), "me/tiny", "--private"]) == 0
    out = capsys.readouterr()
    assert "pushed" in out.out and TOKEN not in out.out + out.err
    assert hub.repos["me/tiny"].private
    files = hub.repos["me/tiny"].commits[hub.repos["me/tiny"].refs["main"]]
    assert set(files) == {"config.json", "model.safetensors", "metrics.json", "samples.png", "README.md"}
    assert all(TOKEN.encode() not in data for data in files.values())  # never written anywhere
    pulled = genlab.load_model("me/tiny")
    assert _same_weights(pulled, genlab.load_model(tiny_run))
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "genlab" and card.data.license == "cc-by-4.0"
    assert {"genlab", "vae", "8x8"} <= set(card.data.tags)
    names = {r.metric_name for r in card.data.eval_results}
    assert "test bits/dim" in names
    metrics = json.loads(files["metrics.json"])
    assert metrics["dataset"] == "emoji" and metrics["train"]["steps"] == 2 and metrics["samples"]["temperature"] == 1.0
    assert "python -m genlab train vae" in metrics["train"]["command"]
    # a private repo without the token: the 401 sentence
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(genlab.hub.HubError, match=r"refused access to 'me/tiny' \(401\).*HF_TOKEN"):
        genlab.hub.pull("me/tiny")


def test_push_without_a_token_is_refused_in_one_sentence(hub, tiny_run, capsys):
    from genlab.cli import main

    assert main(["push", str(tiny_run), "me/tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "needs a Hub token with write access" in err, err
    assert "me/tiny" not in hub.repos  # refused before anything was created


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("missing repo", r"the Hub has no model repo 'genlab/nothing-here'"),
        ("missing file", r"'genlab/no-weights' has no model.safetensors: it is not a genlab model"),
        ("bad revision", r"'genlab/tiny-vae' has no revision 'v9'"),
        ("pickle only", r"'genlab/pickled' holds only pickle weights \(pytorch_model.bin\).*never unpickles"),
    ],
)
def test_each_failure_is_one_sentence(hub, tmp_path, tiny_run, case, pattern):
    from genlab.hub import HubError, pull

    folder = exported_model(tmp_path, tiny_run)
    hub.add_folder("genlab/tiny-vae", folder)
    hub.add_files("genlab/no-weights", {"config.json": (folder / "config.json").read_bytes()})
    hub.add_files("genlab/pickled", {"config.json": b"{}", "pytorch_model.bin": b"\x80\x04not really"})
    repo, revision = {
        "missing repo": ("genlab/nothing-here", None),
        "missing file": ("genlab/no-weights", None),
        "bad revision": ("genlab/tiny-vae", "v9"),
        "pickle only": ("genlab/pickled", None),
    }[case]
    with pytest.raises(HubError, match=pattern) as e:
        pull(repo, revision)
    assert "\n" not in str(e.value)
    # nothing of a refused repo reaches the disk: no resolve request was made for it
    assert not any(p.startswith(f"/{repo}/resolve/") for _, p in hub.requests)


def test_server_down_and_timeout(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from genlab.hub import HubError, pull

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with pytest.raises(HubError, match=r"cannot be reached; the local checkpoints still work"):
        pull("genlab/tiny-vae")

    # a server that accepts connections and never answers
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setenv("GENLAB_HUB_TIMEOUT", "1")
    try:
        with pytest.raises(HubError, match=r"did not answer within 1 s"):
            pull("genlab/tiny-vae")
    finally:
        silent.close()


def test_pulled_model_still_loads_from_the_cache_when_the_hub_is_gone(tmp_path, tiny_run, monkeypatch):
    from huggingface_hub import constants

    import genlab

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path / "genlab-home"))  # its pulled-models list stays here
    with FakeHub() as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
        )
        server.add_folder("genlab/tiny-vae", exported_model(tmp_path, tiny_run))
        first = genlab.load_model("genlab/tiny-vae")
    again = genlab.load_model("genlab/tiny-vae")  # the server has shut down
    assert _same_weights(first, again)


def test_cli_pull_prints_where_and_errors_are_one_line(tmp_path, tiny_run):
    """The CLI in its own process, configured only through HF_ENDPOINT as a user would."""
    with FakeHub() as server:
        server.add_folder("genlab/tiny-vae", exported_model(tmp_path, tiny_run))
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf-home")}
        env["GENLAB_HOME"] = str(tmp_path / "genlab-home")  # its pulled-models list must not reach other tests
        ok = subprocess.run(
            [sys.executable, "-m", "genlab", "pull", "genlab/tiny-vae"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ok.returncode == 0, ok.stderr
        folder = Path(ok.stdout.strip().splitlines()[-1])
        assert (folder / "model.safetensors").is_file() and str(tmp_path / "hf-home") in str(folder)
        bad = subprocess.run(
            [sys.executable, "-m", "genlab", "sample", "genlab/absent", "--out", str(tmp_path / "x.png")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "genlab/absent is no local folder, and the Hub has no model repo 'genlab/absent'" in bad.stderr


@pytest.mark.fault
@pytest.mark.slow  # huggingface_hub retries with back-off before it gives up
@pytest.mark.parametrize(
    "where, fault, pattern",
    [
        ("/api/models/genlab/tiny-vae", "500", r"^the Hugging Face Hub answered 500 \(a server error\) for 'genlab/"),
        ("/genlab/tiny-vae/resolve/", "500", r"^the Hugging Face Hub answered 500 \(a server error\) for 'genlab/"),
        ("/genlab/tiny-vae/resolve/", "truncate", r"^the download of 'genlab/tiny-vae' was cut short"),
    ],
)
def test_a_hub_that_fails_midway_is_one_sentence_and_leaves_no_partial_model(
    hub, tmp_path, tiny_run, where, fault, pattern
):
    from genlab.hub import HubError, pull

    hub.add_folder("genlab/tiny-vae", exported_model(tmp_path, tiny_run))
    hub.faults[where] = fault
    with pytest.raises(HubError) as e:
        pull("genlab/tiny-vae")
    assert "\n" not in str(e.value)
    assert re.search(pattern, str(e.value)), str(e.value)
    from genlab.catalog import hub_models

    assert not [m for m in hub_models() if m.label.startswith("genlab/tiny-vae")]  # nothing half-pulled is offered
    hub.faults.clear()
    assert pull("genlab/tiny-vae").path.is_dir()  # and a retry succeeds


@pytest.mark.fault
def test_pull_downloads_only_genlabs_files_never_code(hub, tmp_path, tiny_run):
    """A repo that also holds Python code (as trust_remote_code models do): nothing of it is requested,
    so nothing of it can run."""
    from genlab.hub import pull

    folder = exported_model(tmp_path, tiny_run)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    hub.add_files(
        "genlab/with-code",
        {
            **files,
            "modeling_evil.py": b"import os; os.system('touch /tmp/pwned')",
            "configuration_evil.py": b"raise SystemExit",
        },
    )
    got = pull("genlab/with-code")
    assert not list(got.path.glob("*.py"))
    assert not any(p.endswith(".py") for _, p in hub.requests)


# -- pull is bounded -----------------------------------------------------------------------------
def _files(tmp_path, tiny_run) -> dict[str, bytes]:
    """The five files a genlab repo holds (an exported folder has the run's records too)."""
    from genlab.export import HUB_FILES

    folder = exported_model(tmp_path, tiny_run)
    return {name: (folder / name).read_bytes() for name in HUB_FILES}


def _refused(repo_id: str, pattern: str):
    from genlab.hub import HubError, pull

    with pytest.raises(HubError) as e:
        pull(repo_id)
    assert re.fullmatch(pattern, str(e.value)), str(e.value)
    assert "\n" not in str(e.value)


def _nothing_kept(hub, tmp_path, repo_id: str, requested: bool) -> None:
    """A refused pull changed nothing: no entry in the pulled list, no file in the Hub cache (huggingface_hub's
    own empty lock files and cache tag aside) and, when refused from the listing, not one file requested."""
    from genlab.catalog import hub_models

    assert not [m for m in hub_models() if m.label.startswith(repo_id)]
    registry = tmp_path / "genlab-home" / "hub-models.json"
    assert not registry.exists() or repo_id not in registry.read_text()
    cache = tmp_path / "hf-cache"
    kept = [p for p in cache.rglob("*") if not p.is_dir() and ".locks" not in p.parts and p.name != "CACHEDIR.TAG"]
    assert not kept, kept
    if not requested:
        assert not any(p.startswith(f"/{repo_id}/resolve/") for _, p in hub.requests)


def test_a_repo_over_the_pull_limit_is_refused_before_anything_is_downloaded(hub, tmp_path, tiny_run, monkeypatch):
    from genlab.hub import pull

    files = _files(tmp_path, tiny_run)
    total = sum(len(b) for b in files.values())
    hub.add_files("genlab/big", files)
    monkeypatch.setenv("GENLAB_MAX_PULL_BYTES", str(total - 1))
    _refused(
        "genlab/big",
        r"'genlab/big' is [\d.]+ KiB of model files, more than the pull limit of [\d.]+ KiB "
        r"\(GENLAB_MAX_PULL_BYTES\); nothing was downloaded",
    )
    _nothing_kept(hub, tmp_path, "genlab/big", requested=False)
    monkeypatch.setenv("GENLAB_MAX_PULL_BYTES", str(total))  # exactly at the limit: a good repo still pulls
    assert set(pull("genlab/big").files) == set(files)


def test_a_declared_size_of_gigabytes_is_refused_without_serving_it(hub, tmp_path, tiny_run):
    hub.add_files("genlab/huge", _files(tmp_path, tiny_run))
    hub.listed_sizes["genlab/huge/model.safetensors"] = 3 * 2**30  # declared only: nothing that big exists
    _refused(
        "genlab/huge",
        r"'genlab/huge' is 3 GiB of model files, more than the pull limit of 512 MiB "
        r"\(GENLAB_MAX_PULL_BYTES\); nothing was downloaded",
    )
    _nothing_kept(hub, tmp_path, "genlab/huge", requested=False)


def test_public_mode_pulls_less(hub, tmp_path, tiny_run, monkeypatch):
    from genlab.hub import pull

    files = _files(tmp_path, tiny_run)
    hub.add_files("genlab/mid", files)
    hub.listed_sizes["genlab/mid/model.safetensors"] = 100 * 2**20  # under the local limit, over the public one
    hub.add_files("genlab/tiny", files)
    monkeypatch.setenv("GENLAB_PUBLIC", "1")
    _refused(
        "genlab/mid",
        r"'genlab/mid' is 100 MiB of model files, more than this public app's pull limit of 64 MiB "
        r"\(GENLAB_PUBLIC_MAX_PULL_BYTES\); nothing was downloaded",
    )
    _nothing_kept(hub, tmp_path, "genlab/mid", requested=False)
    monkeypatch.setenv("GENLAB_PUBLIC_MAX_PULL_BYTES", "1000")
    _refused("genlab/tiny", r"'genlab/tiny' is .* more than this public app's pull limit of 1000 bytes .*")
    _nothing_kept(hub, tmp_path, "genlab/tiny", requested=False)
    monkeypatch.delenv("GENLAB_PUBLIC")  # the same repo, pulled by a local user
    assert pull("genlab/tiny").path.is_dir()


def test_an_oversized_config_json_is_refused_before_anything_is_downloaded(hub, tmp_path, tiny_run):
    files = _files(tmp_path, tiny_run)
    hub.add_files("genlab/fat-config", {**files, "config.json": b'{"pad": "' + b" " * 3 * 2**20 + b'"}'})
    _refused(
        "genlab/fat-config",
        r"'genlab/fat-config' lists a config.json of 3 MiB, larger than any genlab config.json \(at most 1 MiB\); "
        r"nothing was downloaded",
    )
    _nothing_kept(hub, tmp_path, "genlab/fat-config", requested=False)


@pytest.mark.parametrize("listed, said", [(100, "100 bytes"), (None, "no size")])
def test_a_listing_that_understates_a_size_stops_the_download_and_keeps_nothing(
    hub, tmp_path, tiny_run, monkeypatch, listed, said
):
    """The listing says 100 bytes, or nothing, for the weights; the server then sends more. The download
    stops at the bound, and config.json, already in the cache by then, is removed again."""
    from genlab.hub import pull

    files = _files(tmp_path, tiny_run)
    total = sum(len(b) for b in files.values())
    hub.add_files("genlab/liar", files)
    hub.listed_sizes["genlab/liar/model.safetensors"] = listed
    monkeypatch.setenv("GENLAB_MAX_PULL_BYTES", str(total - 1))
    _refused(
        "genlab/liar",
        rf"'genlab/liar' sent more than [\d.]+ (bytes|KiB) of model.safetensors \(its listing said {said}\); "
        r"the download was stopped and nothing was kept",
    )
    assert ("GET", f"/genlab/liar/resolve/{hub.repos['genlab/liar'].refs['main']}/model.safetensors") in hub.requests
    _nothing_kept(hub, tmp_path, "genlab/liar", requested=True)
    if listed is None:  # a size missing from the listing is fetched within what the limit leaves
        monkeypatch.setenv("GENLAB_MAX_PULL_BYTES", str(total))
        assert pull("genlab/liar").path.is_dir()


def test_a_file_of_the_wrong_kind_is_refused_and_nothing_is_kept(hub, tmp_path, tiny_run):
    hub.add_files("genlab/odd", {**_files(tmp_path, tiny_run), "samples.png": b"GIF89a" + bytes(100)})
    _refused("genlab/odd", r"'genlab/odd' sent a samples.png that is not a PNG image of at most 2100×2100 pixels; .*")
    _nothing_kept(hub, tmp_path, "genlab/odd", requested=True)


@pytest.mark.parametrize(
    "name, content, field",
    [
        ("metrics.json", b'{"samples": "x"}', "'samples' must be an object"),
        ("metrics.json", b'{"test_bpd": "low"}', "'test_bpd' must be a number"),
        ("config.json", None, "latent_dim must be at most 4,096"),
    ],
)
def test_a_repo_whose_files_the_pages_could_not_show_is_refused_and_nothing_is_kept(
    hub, tmp_path, tiny_run, name, content, field
):
    files = _files(tmp_path, tiny_run)
    if content is None:  # a config.json of a model too large for this machine
        content = json.dumps({**json.loads(files["config.json"]), "latent_dim": 20_000_000}).encode()
    hub.add_files("genlab/bad", {**files, name: content})
    _refused(
        "genlab/bad", r"'genlab/bad' is not a model genlab can offer: .*" + re.escape(field) + r".*; nothing was kept"
    )
    _nothing_kept(hub, tmp_path, "genlab/bad", requested=True)


def test_a_samples_png_too_large_to_show_is_refused_and_nothing_is_kept(hub, tmp_path, tiny_run):
    hub.add_files("genlab/bomb", {**_files(tmp_path, tiny_run), "samples.png": png_header(6000, 6000)})
    _refused("genlab/bomb", r"'genlab/bomb' sent a samples.png that is not a PNG image of at most 2100×2100 pixels; .*")
    _nothing_kept(hub, tmp_path, "genlab/bomb", requested=True)
