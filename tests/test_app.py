"""The Streamlit app through streamlit.testing's AppTest: every page renders, the sliders change
the image, a run launched from the Train page trains, charts and stops, and the Models page pulls from and
pushes to a local Hub (tests/hub_server.py)."""

import base64
import dataclasses
import io
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from conftest import exported_model, stop_all_runs, tiny_train_config, wait_until  # noqa: E402
from genlab import GenlabError, load_model  # noqa: E402
from genlab.models import VAE, RealNVP, RealNVPConfig, VAEConfig  # noqa: E402
from hub_server import TOKEN  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    "app_pages/home.py",
    "app_pages/train.py",
    "app_pages/sample.py",
    "app_pages/compare.py",
    "app_pages/models.py",
    "app_pages/likelihood.py",
]


def _shipped(root: Path) -> None:
    """A tiny VAE and a tiny flow at 16×16 'trained on' emoji, as shipped checkpoints."""
    torch.manual_seed(0)
    VAE(VAEConfig(image_size=16, latent_dim=8, width=8, max_width=16)).save_pretrained(root / "tiny-vae")
    flow = RealNVP(RealNVPConfig(image_size=16, num_scales=2, num_blocks=1, features=8))
    with torch.no_grad():  # move the zero-initialised couplings away from the identity
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    flow.save_pretrained(root / "tiny-flow")
    for name, model in (("tiny-vae", "vae"), ("tiny-flow", "realnvp")):
        (root / name / "run.json").write_text(json.dumps({"config": {"model": model, "dataset": "emoji"}}))


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    ck, runs = tmp_path / "checkpoints", tmp_path / "runs"
    ck.mkdir()
    _shipped(ck)
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ck))
    monkeypatch.setenv("GENLAB_RUNS", str(runs))
    monkeypatch.chdir(ROOT)
    yield runs
    stop_all_runs(runs)


def _open(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _image_urls(at: AppTest) -> list[str]:
    return [im.proto.imgs[0].url for im in at.get("image")]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app_env, page):
    at = _open(page)
    assert at.title[0].value


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_no_models(tmp_path, monkeypatch, page):
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(tmp_path / "none"))
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(ROOT)
    at = _open(page)
    if page in ("app_pages/sample.py", "app_pages/compare.py"):
        assert any("No " in i.value and "Train" in i.value for i in at.info)


@pytest.mark.parametrize("page", ["app_pages/home.py", "app_pages/sample.py", "app_pages/compare.py"])
def test_a_corrupt_shipped_checkpoint_is_an_error_message_not_a_traceback(app_env, page):
    weights = Path(app_env).parent / "checkpoints" / "tiny-vae" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    at = _open(page)
    if page == "app_pages/sample.py":
        at.selectbox(key="sample_model").set_value(str(weights.parent)).run()
    assert not at.exception
    assert any("tiny-vae cannot be loaded" in e.value for e in at.error)


def test_sidebar_shows_device_fid_weights_and_folders(app_env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()  # the default page; AppTest drops the sidebar's tree after switch_page
    text = " ".join(c.value for c in at.caption)
    assert "Device:" in text and ("CPU" in text or "GPU" in text)
    assert "FID weights:" in text and str(app_env) in text


def test_temperature_and_latent_sliders_change_the_image(app_env):
    at = _open("app_pages/sample.py")
    at.selectbox(key="sample_model").set_value(str(Path(app_env).parent / "checkpoints" / "tiny-vae")).run()
    assert not at.exception, at.exception
    before = _image_urls(at)
    at.slider(key="temperature").set_value(1.3).run()
    after = _image_urls(at)
    assert after[0] != before[0]  # the sample grid
    at.slider(key="dim_0").set_value(2.5).run()
    edited = _image_urls(at)
    # the grid and the sample as drawn stay; the edited one moves; the strips (-3 to +3) do not depend on sliders
    assert edited[0] == after[0] and edited[1] == after[1] and edited[2] != after[2] and edited[3] == after[3]
    assert at.get("download_button")


def test_flow_page_has_temperature_strip_and_interpolation(app_env):
    at = _open("app_pages/sample.py")
    at.selectbox(key="sample_model").set_value(str(Path(app_env).parent / "checkpoints" / "tiny-flow")).run()
    captions = [im.proto.imgs[0].caption for im in at.get("image")]
    assert any("rows: T" in c for c in captions) and any("path in latent space" in c for c in captions)
    before = _image_urls(at)
    at.radio(key="method").set_value("linear").run()
    assert _image_urls(at)[1] != before[1]


def test_a_flow_gets_one_temperature_slider_per_latent_level(app_env):
    at = _open("app_pages/sample.py")
    at.selectbox(key="sample_model").set_value(str(Path(app_env).parent / "checkpoints" / "tiny-flow")).run()
    at.slider(key="temperature").set_value(0.55).run()  # moved first: the levels start where it is now
    single = _image_urls(at)[0]
    at.toggle(key="per_level").set_value(True).run()  # every level starts at the slider's temperature
    assert not at.exception, at.exception
    levels = [at.slider(key=f"level_t_{i}") for i in range(2)]  # the tiny flow: 2 scales, 2 levels
    assert [s.value for s in levels] == [at.slider(key="temperature").value] * 2
    assert "finest" in levels[0].label and "coarsest" in levels[1].label
    assert _image_urls(at)[0] == single  # equal temperatures are the single one: the same cached image
    at.slider(key="level_t_1").set_value(0.0).run()
    assert _image_urls(at)[0] != single
    assert "T=" in at.get("image")[0].proto.imgs[0].caption and "/0.00" in at.get("image")[0].proto.imgs[0].caption


def test_compare_table_has_both_models_and_bpd(app_env):
    at = _open("app_pages/compare.py")
    at.number_input(key="cmp_n").set_value(16)
    at.toggle(key="cmp_bpd").set_value(True).run()
    assert not at.exception, at.exception
    table = at.table[0].value  # a column per model, a row per figure
    kind = dict(zip(table.loc["model"], table.loc["bits/dim is"]))  # a VAE and a flow on the same data, by default
    assert kind == {"VAE": "-ELBO, 1 sample", "RealNVP flow": "exact, 1 dequantization"}
    tight = dict(zip(table.loc["model"], table.loc["tighter bound ↓"]))
    assert "IWAE bound, k=100" in tight["VAE"] and "exact" in tight["RealNVP flow"]


def _launch(at: AppTest, steps: int) -> None:
    at.selectbox(key="image_size").set_value(16)
    at.radio(key="length").set_value("steps")
    at.number_input(key="amount").set_value(steps)
    at.number_input(key="batch_size").set_value(16)
    for name, v in (("latent_dim", 4), ("width", 4), ("max_width", 8)):
        at.number_input(key=f"opt_vae_{name}").set_value(v)
    at.button(key="FormSubmitter:launch-Launch run").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])


def _wait(at: AppTest, cond, timeout=120.0):
    def rerun():
        at.run()  # fragment timers do not tick in AppTest: rerun by hand
        assert not at.exception, at.exception

    def progress():
        return "the app; progress: " + " ".join(p.proto.text for p in at.get("progress"))

    wait_until(lambda: cond(at), timeout, progress, poll_s=1.0, on_poll=rerun)


def _status(at: AppTest) -> str:
    p = at.get("progress")
    return p[0].proto.text.split("**")[1] if p else ""


def _decode(arr) -> list:
    """plotly 7 sends arrays as {"dtype", "bdata": base64}; older versions as lists."""
    if isinstance(arr, dict):
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=arr["dtype"]).tolist()
    return list(arr)


def _last_step(run: Path) -> int:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return max((r["step"] for r in rows), default=0)


def _chart_points(at: AppTest, trace: str = "train bits/dim") -> int:
    """Points in the named trace of the page's first Plotly chart (the bits/dim chart)."""
    charts = at.get("plotly_chart")
    if not charts:
        return 0
    return max(
        (len(_decode(t["x"])) for t in json.loads(charts[0].proto.spec)["data"] if t["name"] == trace), default=0
    )


def _chart_titled(at: AppTest, title: str) -> dict | None:
    """The spec of the page's Plotly chart whose title starts with ``title``, or None."""
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next((s for s in specs if s["layout"].get("title", {}).get("text", "").startswith(title)), None)


def test_launching_an_unavailable_dataset_says_why_and_creates_nothing(app_env):
    at = _open("app_pages/train.py")
    at.selectbox(key="dataset").set_value("cifar10")
    at.button(key="FormSubmitter:launch-Launch run").click().run()
    assert not at.exception
    assert any(e.value.startswith("Could not launch: cifar10 is not available here") for e in at.error)
    assert not list(app_env.glob("*/run.json")) if app_env.exists() else True


def test_fid_rows_get_their_own_chart_titled_with_k_and_weights(app_env):
    run = app_env / "with-fid"
    run.mkdir(parents=True)
    (run / "run.json").write_text(
        json.dumps(
            {"status": "finished", "total_steps": 20, "config": {"model": "vae", "dataset": "emoji", "batch_size": 8}}
        )
    )
    t = {"epoch": 1.0, "time": 1.0, "timestamp": 1.0}
    rows = [{"kind": "train", "step": s, "bpd": 6.0 - s / 10, "images_per_s": 100.0, **t} for s in (10, 20)]
    rows += [
        {
            "kind": "fid",
            "step": s,
            "fid": 300.0 - s,
            "fid_samples": 500,
            "fid_weights": "TF-Inception (test)",
            "fid_ref_images": 3608,
            **t,
        }
        for s in (10, 20)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    at = _open("app_pages/train.py")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2
    fid = charts[1]
    assert "FID@500" in fid["layout"]["title"]["text"] and "TF-Inception (test)" in fid["layout"]["title"]["text"]
    assert _decode(fid["data"][0]["y"]) == [290.0, 280.0]


def test_a_failed_run_shows_its_error(app_env):
    run = app_env / "broken"
    run.mkdir(parents=True)
    (run / "run.json").write_text(
        json.dumps(
            {
                "status": "failed",
                "error": "step 21: the loss was not finite",
                "config": {"model": "vae", "dataset": "emoji"},
            }
        )
    )
    (run / "train.log").write_text("Traceback ...\nFloatingPointError: boom\n")
    at = _open("app_pages/train.py")
    assert [e.value for e in at.error] == ["step 21: the loss was not finite"]
    assert "FloatingPointError: boom" in at.code[0].value
    assert at.button(key="resume").disabled is False and at.button(key="stop").disabled is True


@pytest.mark.slow
def test_launch_from_train_page_charts_and_finishes(app_env):
    at = _open("app_pages/train.py")
    _launch(at, steps=30)
    runs = [p.parent for p in app_env.glob("*/run.json")]
    assert len(runs) == 1  # the run directory exists as soon as Launch returns
    _wait(at, lambda a: _status(a) == "finished")
    rows = [json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    n_train = sum(r["kind"] == "train" for r in rows)
    n_eval = sum(r["kind"] == "eval" for r in rows)
    assert _chart_points(at) == n_train >= 2  # every logged step is on the chart
    assert _chart_points(at, "test bits/dim") == n_eval == 30  # 30 steps: an evaluation at every step (cadence 1)
    assert len(list(runs[0].glob("samples/step-*.png"))) <= 16  # older grids thinned
    terms = [json.loads(c.proto.spec) for c in at.get("plotly_chart")][1]  # the loss terms, each on its own axis
    assert {a["text"] for a in terms["layout"]["annotations"]} >= {"reconstruction bits/dim", "KL bits/dim"}
    assert any("only 30 steps" in w.value for w in at.warning)  # the short-run warning
    assert at.get("download_button")
    assert _chart_titled(at, "learning rate") is None  # a constant rate gets no chart


@pytest.mark.slow
def test_a_run_launched_with_tensorboard_says_where_its_logs_are(app_env):
    at = _open("app_pages/train.py")
    assert at.multiselect(key="log_to").options == ["tensorboard", "wandb", "trackio"]  # what is installed
    at.multiselect(key="log_to").set_value(["tensorboard"])
    _launch(at, steps=6)
    (run,) = [p.parent for p in app_env.glob("*/run.json")]
    assert json.loads((run / "run.json").read_text())["config"]["log"] == "tensorboard"
    _wait(at, lambda a: _status(a) == "finished")
    assert f"tensorboard: `tensorboard --logdir {run / 'tensorboard'}`" in [c.value for c in at.caption]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))


def test_a_public_app_offers_no_trackers(app_env, monkeypatch):
    monkeypatch.setenv("GENLAB_PUBLIC", "1")
    monkeypatch.setenv("GENLAB_HOME", str(app_env.parent / "home"))
    at = _open("app_pages/train.py")
    assert not at.get("multiselect")
    from genlab.errors import PublicModeError
    from genlab.public import cap_config

    with pytest.raises(PublicModeError, match="not to trackers"):
        cap_config(tiny_train_config(log="tensorboard"))


@pytest.mark.slow
def test_launch_a_flow_from_train_page(app_env):
    at = _open("app_pages/train.py")
    at.radio(key="train_model").set_value("realnvp").run()
    assert at.selectbox(key="preset").value == "custom"  # a model picked by hand: Custom, the flow's own defaults
    assert at.radio(key="length").value == "steps" and at.number_input(key="amount").value == 1000
    at.selectbox(key="image_size").set_value(16)
    at.number_input(key="amount").set_value(20)
    at.number_input(key="batch_size").set_value(8)
    for name, v in (("num_blocks", 1), ("features", 4)):
        at.number_input(key=f"opt_realnvp_{name}").set_value(v)
    at.selectbox(key="lr_schedule").set_value("cosine")
    at.number_input(key="ema").set_value(0.99)
    at.checkbox(key="hflip").check()
    at.button(key="FormSubmitter:launch-Launch run").click().run()
    assert not at.exception and not at.error
    _wait(at, lambda a: _status(a) == "finished")
    run = next(app_env.glob("*/run.json")).parent
    cfg = json.loads((run / "run.json").read_text())["config"]
    assert (cfg["model"], cfg["image_size"], cfg["max_steps"], cfg["model_config"]) == (
        "realnvp",
        16,
        20,
        {"num_blocks": 1, "features": 4},
    )
    assert cfg["lr_schedule"] == "cosine" and cfg["ema"] == 0.99 and cfg["hflip"] is True
    assert any(k.startswith("train.") for k in load_file(str(run / "checkpoint" / "optimizer.safetensors")))
    lrs = [r["lr"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    assert lrs[-1] == pytest.approx(cfg["lr"] / 10)  # the last step is at the cosine's floor
    assert _chart_points(at) == 2
    lr_chart = _chart_titled(at, "learning rate")  # the schedule as trained, under the loss chart
    assert list(_decode(lr_chart["data"][0]["y"])) == pytest.approx(lrs)


@pytest.mark.slow
def test_stop_from_train_page(app_env):
    at = _open("app_pages/train.py")
    _launch(at, steps=100_000)
    _wait(at, lambda a: _status(a) == "running" and _chart_points(a) >= 2)
    at.button(key="stop").click().run()
    _wait(at, lambda a: _status(a) == "stopped")
    run = next(app_env.glob("*/run.json")).parent
    assert json.loads((run / "run.json").read_text())["status"] == "stopped"
    assert (run / "checkpoint" / "model.safetensors").is_file()
    stopped_at = json.loads((run / "checkpoint" / "trainer_state.json").read_text())["step"]
    # Resume continues from the checkpoint (queued like a launch), and stops again
    at.button(key="resume").click().run()
    _wait(at, lambda a: _status(a) == "running" and _last_step(run) > stopped_at + 10)
    train_steps = [
        r["step"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"
    ]
    assert train_steps == sorted(set(train_steps))  # no step logged twice across the resume
    at.button(key="stop").click().run()
    _wait(at, lambda a: _status(a) == "stopped")


def test_with_several_gpus_the_train_page_launches_one_process_per_gpu(app_env, monkeypatch):
    from genlab.runs import jobs

    launched = {}

    def fake_launch(cfg, root, name=None, max_concurrent=None, processes=1, preset=None, owner=None):
        launched.update(cfg=cfg, processes=processes)
        raise GenlabError("not started in this test")

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(jobs, "launch", fake_launch)
    at = _open("app_pages/train.py")
    assert at.number_input(key="gpus").value == 4  # all visible GPUs by default
    at.number_input(key="gpus").set_value(2)
    at.button(key="FormSubmitter:launch-Launch run").click().run()
    from genlab.recipes import fastest

    assert launched["processes"] == 2 and launched["cfg"].batch_size == fastest().config().batch_size  # global batch
    assert any("not started in this test" in e.value for e in at.error)


def test_the_run_list_shows_how_many_processes_a_run_uses(app_env):
    run = app_env / "ddp"
    run.mkdir(parents=True)
    (run / "run.json").write_text(
        json.dumps(
            {"status": "finished", "processes": 2, "total_steps": 4, "config": {"model": "vae", "dataset": "emoji"}}
        )
    )
    at = _open("app_pages/train.py")
    table = at.dataframe[0].value
    assert list(table["processes"]) == ["2"]


# -- a newcomer's first run (issue: presets, safe defaults, pages that explain themselves) -------------
def _finished_run(root: Path, name: str, status: str = "finished", **info) -> Path:
    """A run folder with a tiny VAE checkpoint, written as the trainer would."""
    from genlab.runs import checkpoint
    from genlab.runs.records import EvalRow, TrainRow
    from genlab.runs.rundir import RunDir

    run = RunDir(root / name)
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_size=16, latent_dim=8, width=8, max_width=16))
    cfg = {"model": "vae", "dataset": "emoji", "image_size": 16, "max_steps": 20, "batch_size": 8}
    cfg["model_config"] = {"latent_dim": 8, "width": 8, "max_width": 16}
    run.path.mkdir(parents=True)
    (run.path / "run.json").write_text(json.dumps({"status": status, "total_steps": 20, "config": cfg, **info}))
    opt = torch.optim.Adam(model.parameters())
    checkpoint.save(run.path, model, opt, {"step": 20, "elapsed": 1.0})
    for r in (TrainRow(step=20, epoch=1.0, time=1.0, timestamp=1.0, images_per_s=9.0, metrics={"bpd": 5.0}),
              EvalRow(step=20, epoch=1.0, time=1.0, timestamp=1.0, metrics={"test_bpd": 5.1})):  # fmt: skip
        run.append_metrics(r)
    return run.path


def test_the_form_starts_from_the_fastest_preset_with_every_field_filled(app_env):
    from genlab.recipes import fastest

    at = _open("app_pages/train.py")
    cfg = fastest().config()
    assert at.selectbox(key="preset").value == fastest().name
    assert at.selectbox(key="dataset").value == cfg.dataset and at.radio(key="length").value == "steps"
    assert at.number_input(key="amount").value == cfg.max_steps
    assert at.number_input(key="batch_size").value == cfg.batch_size
    for k, v in cfg.model_config.items():
        assert at.number_input(key=f"opt_{cfg.model}_{k}").value == v
    at.selectbox(key="preset").set_value("realnvp-emoji-32").run()  # another preset refills every field
    flow = __import__("genlab.recipes", fromlist=["recipe"]).recipe("realnvp-emoji-32").config()
    assert at.radio(key="train_model").value == "realnvp" and at.number_input(key="amount").value == flow.max_steps
    assert at.number_input(key="opt_realnvp_num_scales").value == flow.model_config["num_scales"]
    assert at.checkbox(key="hflip").value is True


def test_the_form_offers_what_the_config_allows_and_says_what_it_refuses(app_env):
    from genlab.config import field_spec
    from genlab.runs.config import TrainConfig

    at = _open("app_pages/train.py")
    for key in ("batch_size", "lr", "ema", "fid_every", "fid_samples"):
        spec, widget = field_spec(TrainConfig, key), at.number_input(key=key)
        assert (widget.min, widget.max, widget.help) == (
            spec.widget_bounds().get("min_value"),
            spec.widget_bounds().get("max_value"),
            spec.help,
        ), key
    assert at.number_input(key="batch_size").max == 65536 and at.number_input(key="fid_samples").min == 2
    at.number_input(key="lr").set_value(0.0)  # the widget allows it; TrainConfig says why not
    at.button(key="FormSubmitter:launch-Launch run").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Could not launch: lr must be greater than 0, got 0.0"]
    assert not app_env.exists() or not list(app_env.iterdir())


def test_an_empty_folder_field_is_refused_with_a_sentence(app_env):
    at = _open("app_pages/train.py")
    at.selectbox(key="dataset").set_value("folder:…")
    at.button(key="FormSubmitter:launch-Launch run").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Give the folder or .zip of images to train on (the field under Dataset), or pick a data set."
    ]
    assert not app_env.exists() or not list(app_env.iterdir())


def test_a_dataset_that_needs_the_internet_says_so_and_its_failure_offers_no_resume(app_env, monkeypatch):
    from genlab import data

    monkeypatch.delenv("GENLAB_OFFLINE")  # online as far as genlab knows, but nothing cached
    info = data.dataset_info("cifar10")
    assert info.available and info.needs_network
    at = _open("app_pages/train.py")
    labels = at.selectbox(key="dataset").options
    assert "cifar10 (needs internet)" in labels and "celeba (needs internet)" in labels
    # a run whose data set cannot be had fails with the sentence, and a resume would not fix it
    _finished_run(
        app_env, "no-data", status="failed", error="Dataset 'cifar10' could not be downloaded", resumable=False
    )
    at = _open("app_pages/train.py")
    assert at.button(key="resume").disabled is True
    assert any("A resume cannot fix this" in e.value for e in at.error)


def test_delete_run_asks_first_and_is_refused_while_it_trains(app_env):
    _finished_run(app_env, "old")
    at = _open("app_pages/train.py")
    at.button(key="ask_delete").click().run()
    assert any("for good?" in w.value for w in at.warning) and (app_env / "old").exists()  # asks first
    at.button(key="cancel_delete").click().run()
    assert not at.get("button") or all(b.key != "delete" for b in at.button)
    at.button(key="ask_delete").click().run()
    at.button(key="delete").click().run()
    assert not at.exception and not (app_env / "old").exists()
    _finished_run(app_env, "busy", status="running", pid=1)
    from genlab.runs import jobs
    from genlab.runs.rundir import RunDir

    run = RunDir(app_env / "busy")
    lock = run.acquire_lock()  # a live training process holds it
    try:
        at = _open("app_pages/train.py")
        assert at.button(key="ask_delete").disabled is True
        with pytest.raises(RuntimeError, match="stop it before deleting it"):
            jobs.delete(run)
    finally:
        lock.release()
    assert (app_env / "busy").is_dir()


def test_the_runs_folder_is_genlab_runs_everywhere(app_env):
    """No per-session folder field: the Train page, the pickers and the sidebar all read GENLAB_RUNS."""
    _finished_run(app_env, "mine")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert str(app_env) in " ".join(c.value for c in at.caption)  # the sidebar
    at.switch_page("app_pages/train.py").run()
    assert not at.get("text_input") or all(t.key != "runs_root" for t in at.text_input)
    assert any(str(app_env) in c.value for c in at.caption) and at.selectbox(key="train_run").value == "mine"
    at.switch_page("app_pages/sample.py").run()
    assert "run: mine  (vae 16×16 · emoji)" in at.selectbox(key="sample_model").options
    at.switch_page("app_pages/models.py").run()
    assert any("mine" in e.label for e in at.expander)


def test_the_train_page_shows_the_grid_before_a_half_written_one(app_env):
    run = _finished_run(app_env, "grids")
    from genlab.runs.grids import write_grid

    write_grid(run / "samples" / "step-0000010.png", torch.rand(4, 3, 8, 8), nrow=2)
    (run / "samples" / "step-0000020.png").write_bytes(b"\x89PNG\r\n\x1a\n half")
    at = _open("app_pages/train.py")
    assert not at.exception
    assert [im.proto.imgs[0].caption for im in at.get("image")] == ["samples at step 10 (T=1)"]


def test_switching_models_sets_the_temperature_to_the_models_card(app_env):
    ck = Path(app_env).parent / "checkpoints"
    (ck / "tiny-vae" / "metrics.json").write_text(json.dumps({"samples": {"temperature": 0.6}}))
    (ck / "tiny-flow" / "metrics.json").write_text(json.dumps({"samples": {"temperature": 0.9}}))
    at = _open("app_pages/sample.py")
    at.selectbox(key="sample_model").set_value(str(ck / "tiny-vae")).run()
    assert at.slider(key="temperature").value == 0.6
    at.slider(key="temperature").set_value(1.2).run()
    at.selectbox(key="sample_model").set_value(str(ck / "tiny-flow")).run()
    assert at.slider(key="temperature").value == 0.9
    at.selectbox(key="sample_model").set_value(str(ck / "tiny-vae")).run()
    assert at.slider(key="temperature").value == 0.6


def test_home_shows_a_users_run_only_if_it_finished_and_reached_its_presets_figure(app_env, monkeypatch):
    from genlab import recipes

    monkeypatch.setattr(recipes.Recipe, "bpd_ceiling", lambda self: 5.5)
    _finished_run(app_env, "good", preset="vae-emoji-32")
    _finished_run(app_env, "custom")  # no preset: no floor to beat
    at = _open("app_pages/home.py")
    captions = [im.proto.imgs[0].caption for im in at.get("image")]
    assert sum(c.startswith("your run · good") for c in captions) == 1
    assert not any("custom" in c for c in captions)
    monkeypatch.setattr(recipes.Recipe, "bpd_ceiling", lambda self: 5.0)  # its 5.1 is no longer good enough
    at = _open("app_pages/home.py")
    assert not any(im.proto.imgs[0].caption.startswith("your run") for im in at.get("image"))


def test_compare_says_how_to_read_it_and_when_figures_are_not_comparable(app_env):
    at = _open("app_pages/compare.py")
    assert not at.exception
    text = " ".join(e.proto.body for e in at.markdown)
    assert "Lower is better" in text and "−ELBO" in text and "FID@K" in text
    table = at.table[0].value
    assert {"test bits/dim ↓", "bits/dim is", "evaluated on", "FID ↓", "FID@K, reference"} <= set(table.index)


def test_models_shows_each_model_card_with_its_grid(app_env):
    from genlab.export import export_model

    ck = Path(app_env).parent / "checkpoints"
    export_model(ck / "tiny-vae", ck / "carded", evaluate=False, dataset="emoji")
    at = _open("app_pages/models.py")
    assert not at.exception
    body = " ".join(m.value for m in at.markdown)
    assert "a genlab VAE at 16×16" in body and "## Data" in body
    assert any(im.proto.imgs[0].caption == "samples" for im in at.get("image"))


# -- the Models page and the Hub (tests/hub_server.py; moved here from test_hub.py) ----------------------
def _models_page(monkeypatch, tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    _shipped(ck)
    monkeypatch.setenv("GENLAB_CHECKPOINTS", str(ck))
    monkeypatch.setenv("GENLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/models.py").run()
    assert not at.exception, at.exception
    return at


def test_app_pulls_shows_the_card_and_offers_the_model_everywhere(hub, tmp_path, tiny_run, monkeypatch):
    hub.add_folder("genlab/tiny-vae", exported_model(tmp_path, tiny_run))
    at = _models_page(monkeypatch, tmp_path)
    at.text_input(key="pull_repo").input("genlab/tiny-vae")
    at.button(key="FormSubmitter:pull-Pull from the Hub").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert any("Pulled `genlab/tiny-vae`" in s.value for s in at.success)
    assert any("a genlab VAE at 8×8 trained on Twemoji" in m.value for m in at.markdown)  # the model card
    at.switch_page("app_pages/sample.py").run()
    options = at.selectbox(key="sample_model").options
    assert any(o.startswith("hub: genlab/tiny-vae") for o in options), options


def test_app_with_the_hub_down_says_so_in_one_line_and_keeps_everything_local(tmp_path, monkeypatch):
    from huggingface_hub import constants

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    at = _models_page(monkeypatch, tmp_path)
    at.text_input(key="pull_repo").input("genlab/vae-emoji-64")
    at.button(key="FormSubmitter:pull-Pull from the Hub").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"Could not pull: the Hugging Face Hub (http://127.0.0.1:{port}) cannot be "
        "reached; the local checkpoints still work."
    ]
    assert [x.label for x in at.expander][:2] == ["tiny-flow  (realnvp 16×16 · emoji)", "tiny-vae  (vae 16×16 · emoji)"]
    at.switch_page("app_pages/home.py").run()
    assert not at.exception and len(at.get("image")) == 2  # the shipped models still sample


def test_app_pushes_with_a_token_that_is_not_kept(hub, tmp_path, monkeypatch):
    at = _models_page(monkeypatch, tmp_path)
    source = at.selectbox(key="push_source")
    source.set_value(str(tmp_path / "checkpoints" / "tiny-vae"))  # the value is the path; options are labels
    at.text_input(key="push_repo").input("me/from-the-app")
    at.text_input(key="push_token").input(TOKEN)
    at.button(key="FormSubmitter:push-Push to the Hub").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Pushed" in s.value and "me/from-the-app" in s.value for s in at.success)
    assert "model.safetensors" in hub.repos["me/from-the-app"].commits[hub.repos["me/from-the-app"].refs["main"]]
    # the form is cleared after the call: the token is not kept in the session
    assert "push_token" not in repr(at.session_state) and TOKEN not in repr(at.session_state)
    # ... nor written anywhere genlab writes (its cache, the checkpoints, the pushed files)
    for folder in (tmp_path,):
        for f in folder.rglob("*"):
            if f.is_file() and "hf-cache" not in f.parts:
                assert TOKEN.encode() not in f.read_bytes(), f
    pushed = hub.repos["me/from-the-app"].commits[hub.repos["me/from-the-app"].refs["main"]]
    assert not any(TOKEN.encode() in data for data in pushed.values())


@pytest.mark.slow
def test_the_preset_at_300_steps_writes_a_bounded_number_of_grids_and_warns_when_it_should(app_env):
    """emoji-faces has 98 training images: at the old cadence (an evaluation every epoch) a 300-step run
    wrote 600 PNGs. From the form, with the fastest preset shortened to 300 steps: at most 60, and the
    over-fitting warning exactly when the test bits/dim rose; a 10-step run gets the short-run warning."""
    from genlab.runs import advice
    from genlab.runs.rundir import RunDir

    at = _open("app_pages/train.py")
    at.selectbox(key="preset").set_value("vae-emoji-32").run()
    at.number_input(key="amount").set_value(10)
    at.text_input(key="run_name").set_value("ten")
    at.button(key="FormSubmitter:launch-Launch run").click().run()
    _wait(at, lambda a: _status(a) == "finished")
    assert any("only 10 steps" in w.value for w in at.warning)

    at.number_input(key="amount").set_value(300)
    at.text_input(key="run_name").set_value("three-hundred")
    at.button(key="FormSubmitter:launch-Launch run").click().run()
    at.selectbox(key="train_run").set_value("three-hundred").run()
    _wait(at, lambda a: _status(a) == "finished", timeout=600)
    run = RunDir(app_env / "three-hundred")
    assert run.info().preset == "vae-emoji-32" and run.config().dataset == "emoji-faces"
    assert len(list(run.samples.glob("*.png"))) <= 60
    said = [w.value for w in at.warning]
    overfit = advice.overfitting(run.read_metrics(), 98)
    assert (overfit in said) if overfit else not any(w.startswith("Over-fitting") for w in said)


def test_a_preset_run_is_shown_at_its_recipes_temperature_and_changed_kinds_drop_the_preset(app_env):
    from genlab.catalog import model_entry
    from genlab.recipes import recipe

    run = _finished_run(app_env, "from-preset", preset="vae-emoji-32")
    assert model_entry(run).temperature == recipe("vae-emoji-32").temperature
    assert model_entry(_finished_run(app_env, "custom")).temperature == VAE.default_temperature
    at = _open("app_pages/train.py")
    at.selectbox(key="preset").set_value("vae-emoji-32").run()
    at.selectbox(key="dataset").set_value("emoji")  # another data set: no longer that preset's kind of run
    at.number_input(key="amount").set_value(2)
    at.button(key="FormSubmitter:launch-Launch run").click().run()
    launched = sorted(app_env.glob("vae-emoji-*/run.json"))
    assert launched and json.loads(launched[0].read_text()).get("preset") is None
    stop_all_runs(app_env)


def test_a_second_visit_to_home_samples_nothing(app_env, monkeypatch):
    """Home's grids are cached across sessions: the first visitor samples each model once, the next none."""
    import streamlit as st

    from app_pages import common

    calls = []
    real = common.sample
    monkeypatch.setattr(common, "sample", lambda *a, **kw: calls.append(a[1:]) or real(*a, **kw))
    st.cache_data.clear()
    first = _open("app_pages/home.py")
    assert len(calls) == 2  # the two shipped models, 16 images each
    second = _open("app_pages/home.py")  # a new session
    assert len(calls) == 2
    assert _image_urls(second) == _image_urls(first)


def _png(size: int = 20, colour=(30, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def test_likelihood_page_shows_the_table_histograms_and_scores_an_uploaded_image(app_env, monkeypatch):
    monkeypatch.setenv("GENLAB_HOME", str(app_env.parent / "home"))
    at = _open("app_pages/likelihood.py")
    at.selectbox(key="lik_model").set_value(str(app_env.parent / "checkpoints" / "tiny-flow")).run()
    at.select_slider(key="lik_n").set_value(200).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table.index) == ["emoji (in)", "mnist (colour)", "fashion-mnist (colour)"]
    assert table["images"].tolist() == [200, 200, 200]
    assert table["AUROC bits/dim"].iloc[1:].between(0, 1).all()
    charts = at.get("plotly_chart")
    assert len(charts) == 2 and all('"type":"histogram"' in c.proto.spec.replace(" ", "") for c in charts)
    caption = next(m.value for m in at.markdown if m.value.startswith("**"))
    at.file_uploader[0].set_value(("mine.png", _png(), "image/png")).run()
    assert not at.exception, at.exception
    yours = next(m.value for m in at.markdown if m.value.startswith("Yours:"))
    assert "bits/dim" in yours and yours != caption
    spec = at.get("plotly_chart")[0].proto.spec
    assert "your image" in spec  # the histogram marks where it falls
    at.file_uploader[0].set_value(("big.png", b"\x89PNG" + b"0" * (3 * 1024 * 1024), "image/png")).run()
    assert any("limit is 2 MB" in e.value for e in at.error)


def test_public_likelihood_page_offers_no_upload_and_scores_few_new_images(app_env, monkeypatch):
    monkeypatch.setenv("GENLAB_HOME", str(app_env.parent / "home"))
    monkeypatch.setenv("GENLAB_PUBLIC", "1")
    at = _open("app_pages/likelihood.py")
    assert not at.file_uploader
    assert any("off in this public app" in c.value for c in at.caption)
    at.select_slider(key="lik_n").set_value(2000).run()
    assert any("at most 200 new images per set" in i.value for i in at.info)


def _carry_sweep(folder: Path, temperatures) -> None:
    """Write sweep points into a model folder's sweep/, as `genlab sweep --ship` does (figures made up)."""
    from genlab.metrics.sweep import SWEEP_REF, SWEEP_SAMPLES, SweepPoint, point_file

    model = load_model(folder)
    for t in temperatures:
        p = SweepPoint(t, 100 * t, 0.1 * t, 0.01, 1 - t / 2, t / 2, SWEEP_SAMPLES, "emoji train split", "test weights")
        path = folder / "sweep" / point_file(model, "emoji", SWEEP_SAMPLES, SWEEP_REF, 0, "w", t)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(p)))


def test_compare_plots_the_sweep_curves_the_model_folders_carry(app_env, monkeypatch):
    monkeypatch.setenv("GENLAB_HOME", str(app_env.parent / "home"))
    ck = app_env.parent / "checkpoints"
    _carry_sweep(ck / "tiny-vae", [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    _carry_sweep(ck / "tiny-flow", [0.5, 0.7])
    at = _open("app_pages/compare.py")
    chart = at.get("plotly_chart")[-1].proto.spec
    assert "tiny-vae" in chart and "tiny-flow" in chart and "precision" in chart and "KID" in chart
    assert any("Compute the missing curves" in b.label for b in at.button)  # the flow lacks four temperatures
    monkeypatch.setenv("GENLAB_PUBLIC", "1")
    at = _open("app_pages/compare.py")
    assert not any("Compute the missing curves" in b.label for b in at.button)
    assert any("does not compute new ones" in c.value for c in at.caption)
