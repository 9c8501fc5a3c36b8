"""The Train form is the run it shows: a reload or a ``?run=`` link fills the form with that
run's configuration, so Launch gives the same run id; a missing or damaged run gets a message.
The run panel follows a resumed run. AppTest of app_pages/train.py, plus the pure glue of
ui/runs.py (form_state, launch_config, kept_settings)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from faceml.training import jobs
from faceml.data.prepare import PrepOptions
from faceml.runs import RunStore
from faceml.config import TrainConfig
from ui.runs import form_state, kept_settings, launch_config, results_caption, table_states

PAGE = "../app_pages/train.py"
TIMEOUT = 120


def page(run_id: str | None = None) -> AppTest:
    """A fresh session of the Train page (a reload), with ``?run=`` when given."""
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    if run_id is not None:
        at.query_params["run"] = run_id
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def shown_run(at) -> str | None:
    q = at.query_params.get("run")
    return q[0] if isinstance(q, list) else q


def kept_caption(at) -> list[str]:
    return [c for c in texts(at, "caption") if c.startswith("Launch also keeps")]


def make_run(cfg: TrainConfig, **status):
    run, new = RunStore().create(cfg.run_id(), cfg.canonical())
    assert new
    if status:
        run.set_status(**status)
    return run


def synthetic(**kw) -> PrepOptions:
    base = dict(dataset="synthetic", dataset_options={"n": 400, "label_noise": 0.0}, size=32,
                color="rgb")
    base.update(kw)
    return PrepOptions(**base)


RICH = TrainConfig(
    data=synthetic(dataset_options={"n": 600, "label_noise": 0.1}, size=48, color="gray",
                   fraction=0.5, seed=3, age="decades"),
    arch="small_cnn", heads=["eyewear", "age"], head_weights={"eyewear": 2.0, "age": 0.5},
    age_loss="mae", class_weights=True, optimizer="sgd", lr=0.003, schedule="cosine",
    batch_size=48, epochs=7, early_stopping=2, augmentation=["zoom", "flip"], seed=5,
    mixed_precision=True)
AGE_YEARS = TrainConfig(data=synthetic(), arch="mlp", heads=["age", "expression"],
                        head_weights={"age": 0.2, "expression": 1.5}, age_loss="huber",
                        optimizer="rmsprop", lr=0.0005, epochs=3, batch_size=32)
VAE = TrainConfig(data=synthetic(color="gray"), arch="vae",
                  arch_params={"latent_dim": 6, "beta": 0.2, "recon": "bce", "filters": [8, 16]},
                  epochs=4, batch_size=32, lr=0.002)
CUSTOM = TrainConfig(data=synthetic(size=32), arch="custom", heads=["expression"],
                     arch_params={"conv_blocks": [{"filters": 8, "pool": 2}],
                                  "dense": [{"units": 16}]},
                     epochs=2, batch_size=32)


# -- the pure glue ----------------------------------------------------------------------------
def test_untouched_form_launches_the_loaded_run_itself():
    run_cfg = TrainConfig(data=synthetic(dataset_options={"n": 160}, split=(0.8, 0.1, 0.1)),
                          arch="small_cnn", heads=["eyewear"], epochs=3, repeat=2)
    loaded = run_cfg.canonical()
    # the form as drawn: n coerced to the widget's minimum, label_noise added, no repeat
    drawn = TrainConfig(data=synthetic(dataset_options={"n": 200, "label_noise": 0.0}),
                        arch="small_cnn", heads=["eyewear"], epochs=3).canonical()
    out = launch_config(loaded, drawn, drawn)
    assert TrainConfig.from_dict(out).run_id() == run_cfg.run_id()
    kept = kept_settings(TrainConfig.from_dict(out).canonical(), drawn)
    assert "dataset option n 160" in kept
    assert "dataset option label_noise not set" in kept
    assert "split (train, val, test) [0.8, 0.1, 0.1]" in kept
    assert "repeat (train again) 2" in kept


def test_a_changed_setting_is_the_forms_and_the_rest_stays_the_runs():
    run_cfg = TrainConfig(data=synthetic(split=(0.8, 0.1, 0.1), stratify="eyewear"),
                          arch="small_cnn", heads=["eyewear"], epochs=3, repeat=1)
    drawn = TrainConfig(data=synthetic(), arch="small_cnn", heads=["eyewear"], epochs=3)
    edited = TrainConfig(data=synthetic(), arch="small_cnn", heads=["eyewear"], epochs=3,
                         lr=0.01)
    out = TrainConfig.from_dict(launch_config(run_cfg.canonical(), drawn.canonical(),
                                              edited.canonical()))
    assert out.lr == 0.01 and out.data.split == (0.8, 0.1, 0.1)
    assert out.data.stratify == "eyewear"
    assert out.repeat == 0  # a repeat number stays only while nothing else changed
    # a new dataset or architecture brings its own options, not the old one's
    other = TrainConfig(data=PrepOptions(dataset="utkface", size=32), arch="mlp",
                        heads=["gender"], epochs=3)
    out = TrainConfig.from_dict(launch_config(run_cfg.canonical(), drawn.canonical(),
                                              other.canonical()))
    assert out.data == other.data and out.arch_params == other.arch_params
    assert launch_config(None, None, edited.canonical()) == edited.canonical()


def test_form_state_covers_every_widget_of_the_config():
    s = form_state(RICH)
    assert s["dataset"] == "synthetic" and s["syn_n"] == 600 and s["syn_noise"] == 0.1
    assert (s["size"], s["color"], s["fraction"], s["age_mode"], s["data_seed"]) == \
        (48, "gray", 0.5, "decades", 3)
    assert s["heads_synthetic"] == ["eyewear", "age"]
    assert (s["w_eyewear"], s["w_age"]) == (2.0, 0.5)
    assert (s["optimizer"], s["lr"], s["schedule"], s["batch"], s["epochs"], s["patience"],
            s["seed"], s["mixed"], s["aug"]) == ("sgd", 0.003, "cosine", 48, 7, 2, 5, True,
                                                 ["flip", "zoom"])
    assert form_state(VAE)["vae_filters"] == "8,16" and form_state(VAE)["vae_recon"] == "bce"
    assert json.loads(form_state(CUSTOM)["custom_json"]) == CUSTOM.arch_params
    tl = TrainConfig(arch="vgg16", arch_params={"weights": None, "fine_tune": True})
    assert form_state(tl)["tl_weights"] == "random" and form_state(tl)["tl_finetune"] is True
    utk = TrainConfig(data=PrepOptions(dataset="utkface", path=None), heads=["gender"])
    assert form_state(utk)["path_utkface"] == ""  # empty: the default location, path None
    assert "path_utkface" not in form_state(utk, typed_paths=False)  # hosted: no path input


# -- the page ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [RICH, AGE_YEARS, VAE, CUSTOM],
                         ids=["classifier", "age-years", "vae", "custom"])
def test_a_run_link_fills_the_form_and_launch_gives_the_same_run(cfg):
    run = make_run(cfg)
    at = page(run.id)
    assert any(run.id in m for m in texts(at, "markdown")), "the panel shows the run"
    assert at.selectbox(key="arch").value == cfg.arch
    assert at.number_input(key="epochs").value == cfg.epochs
    assert at.number_input(key="lr").value == pytest.approx(cfg.lr)
    assert at.selectbox(key="size").value == cfg.data.size
    assert at.radio(key="color").value == cfg.data.color
    assert at.number_input(key="syn_n").value == cfg.data.dataset_options["n"]
    if cfg.kind.uses_heads:
        assert at.multiselect(key="heads_synthetic").value == cfg.heads
    assert not kept_caption(at), "the form shows every setting of this run"
    assert not texts(at, "error"), texts(at, "error")
    at.button(key="launch").click().run()
    assert not at.exception, at.exception
    assert [r.id for r in RunStore().list()] == [run.id]  # no new run: the same id
    assert shown_run(at) == run.id
    assert any("already ran" in i for i in texts(at, "info"))


def test_a_run_the_form_cannot_fully_show_is_still_the_one_launched():
    cli = TrainConfig(data=PrepOptions(dataset="synthetic", dataset_options={"n": 160},
                                       size=50, split=(0.8, 0.1, 0.1)),
                      arch="small_cnn", heads=["eyewear"], epochs=2, batch_size=32)
    run = make_run(cli)
    at = page(run.id)
    kept = kept_caption(at)
    assert kept and "image size 50" in kept[0] and "dataset option n 160" in kept[0], kept
    at.button(key="launch").click().run()
    assert [r.id for r in RunStore().list()] == [run.id]
    # an edit launches a new run that keeps what the form could not show
    at.number_input(key="lr").set_value(0.01).run()
    at.button(key="launch").click().run()
    assert not at.exception, at.exception
    new = RunStore().get(shown_run(at))
    assert new.id != run.id
    got = new.train_config()
    assert got.lr == 0.01 and got.data.size == 50 and got.data.split == (0.8, 0.1, 0.1)
    assert got.data.dataset_options == {"n": 160}
    # the session now stands for the new run: the form launches it again, unchanged
    at.run()
    assert not kept_caption(at) or "image size 50" in kept_caption(at)[0]
    at.button(key="launch").click().run()
    assert len(RunStore().list()) == 2 and shown_run(at) == new.id


def test_a_utkface_run_with_and_without_a_path_round_trips(tmp_path):
    from fixtures_formats import make_utkface

    utk = make_utkface(tmp_path / "utk", 30)
    for path in (str(utk), None):
        cfg = TrainConfig(data=PrepOptions(dataset="utkface", path=path, size=32),
                          arch="mlp", heads=["gender"], epochs=2, batch_size=16)
        run = make_run(cfg)
        at = page(run.id)
        assert at.selectbox(key="dataset").value == "utkface"
        assert at.text_input(key="path_utkface").value == (path or "")
        assert not kept_caption(at), kept_caption(at)
        at.button(key="launch").click().run()
        assert shown_run(at) == run.id and not at.exception


def test_hosted_without_a_path_input_a_run_round_trips(tmp_path, monkeypatch):
    from fixtures_formats import make_utkface

    utk = make_utkface(tmp_path / "srv" / "utk", 30)
    conf = tmp_path / "hosting.toml"
    conf.write_text(f'[datasets]\nsynthetic = ""\nutkface = "{utk}"\n')
    monkeypatch.setenv("FACEML_HOSTED", "1")
    monkeypatch.setenv("FACEML_HOSTING_CONFIG", str(conf))
    cfg = TrainConfig(data=PrepOptions(dataset="utkface", path=None, size=32), arch="mlp",
                      heads=["gender"], epochs=2, batch_size=16)
    run = make_run(cfg)
    at = page(run.id)
    assert at.selectbox(key="dataset").value == "utkface"
    assert not [t for t in at.text_input if t.key == "path_utkface"], "hosted: no path input"
    assert not kept_caption(at), kept_caption(at)
    at.button(key="launch").click().run()
    assert not at.exception, at.exception
    assert [r.id for r in RunStore().list()] == [run.id] and shown_run(at) == run.id


@pytest.mark.parametrize("asked,message", [
    ("0123456789ab", "There is no run `0123456789ab`"),
    ("../../etc/passwd", "not valid"),
    ("[x](http://e.vil)", "not valid"),
])
def test_a_missing_or_bad_run_link_is_a_message(asked, message):
    good = make_run(AGE_YEARS)
    at = page(asked)
    assert any(message in w for w in texts(at, "warning")), texts(at, "warning")
    assert "e.vil" not in " ".join(texts(at, "warning"))
    # the page still works: the defaults, and the other run in the table
    assert at.selectbox(key="arch").value == "default_cnn"
    assert good.id in set(at.dataframe[-1].value["run_id"])


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"data": "nope", "heads": 3}'])
def test_a_damaged_run_link_is_a_message_and_other_runs_work(damage):
    good = make_run(AGE_YEARS)
    bad = make_run(RICH)
    (bad.dir / "config.json").write_text(damage)
    at = page(bad.id)
    assert any("damaged" in w and "form keeps its own settings" in w
               for w in texts(at, "warning")), texts(at, "warning")
    assert any("damaged" in e for e in texts(at, "error")), "the panel says so too"
    table = at.dataframe[-1].value.set_index("run_id")
    assert table.loc[bad.id, "state"] == "damaged" and table.loc[good.id, "state"] == "queued"
    # the good run still opens, and fills the form
    at2 = page(good.id)
    assert at2.selectbox(key="arch").value == "mlp" and not kept_caption(at2)


def test_resume_makes_the_panel_follow_the_run_and_labels_its_metrics():
    cfg = TrainConfig(data=synthetic(dataset_options={"n": 200}, size=16, color="gray"),
                      arch="small_cnn", heads=["eyewear"], epochs=1, batch_size=32)
    run = make_run(cfg, state="stopped", reason="stopped by the user after epoch 0")
    at = page(run.id)
    assert any(f"Run `{run.id}`** — stopped" in m for m in texts(at, "markdown"))
    at.button(key=f"resume_{run.id}").click().run()
    assert not at.exception, at.exception
    # redrawn at once: the panel shows the resumed run (and follows it), not "stopped"
    heads = [m for m in texts(at, "markdown") if f"Run `{run.id}`**" in m]
    assert heads and ("— queued" in heads[0] or "— running" in heads[0]), heads
    assert run.status()["state"] in ("queued", "running")
    assert table_states(RunStore())[run.id] in ("queued", "running")
    st = jobs.wait(run, timeout=180)
    assert st["state"] == "done", st.get("reason")
    assert st["results"]["checkpoint"] == "best" and st["results"]["epoch"] == 1
    at.run()
    caption = [c for c in texts(at, "caption") if c.startswith("Metrics of the")]
    assert caption and "**best** checkpoint (epoch 1 of 1)" in caption[0], caption


def test_results_caption_names_the_checkpoint():
    import pandas as pd

    hist = pd.DataFrame({"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.0],
                         "val_loss": [2.0, 1.5, 1.7]})
    assert "**best** checkpoint (epoch 2 of 3)" in results_caption({}, hist)
    assert "lowest validation loss" in results_caption({}, hist)
    last = results_caption({"results": {"checkpoint": "last", "epoch": 3}}, hist)
    assert "**last** checkpoint (epoch 3 of 3)" in last
    no_val = hist.drop(columns="val_loss")
    assert "epoch 3 of 3" in results_caption({}, no_val) and "training loss" in \
        results_caption({}, no_val)


def test_curves_have_whole_epoch_ticks_and_a_legend_under_the_plot():
    import pandas as pd

    from ui.runs import history_figure

    hist = pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.8, 0.7],
                         "val_loss": [1.1, 0.9, 0.8],
                         **{f"{h}_loss": [1.0, 0.9, 0.8] for h in ("a", "b", "c")}})
    fig = history_figure(hist, "loss", "Loss")
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d"
    assert fig.layout.legend.y < 0 and fig.layout.legend.yanchor == "top"
    long = pd.DataFrame({"epoch": range(1, 41), "loss": [1.0] * 40})
    assert history_figure(long, "loss", "Loss").layout.xaxis.dtick == 4


def test_offline_weights_failure_speaks_of_the_random_option_and_offers_no_resume():
    cfg = TrainConfig(data=synthetic(), arch="small_cnn", heads=["eyewear"], epochs=1)
    reason = ("the ImageNet weights for VGG16 could not be downloaded (URL fetch failure); "
              "choose weights=None (random initialisation) to build without them")
    run = make_run(cfg, state="failed", reason=reason)
    at = page(run.id)
    errs = " ".join(e.value for e in at.error)
    assert 'Weights = "random"' in errs and "weights=None" not in errs, errs
    assert not [b for b in at.button if b.key == f"resume_{run.id}"]
    assert any("Resume would fail the same way" in c for c in texts(at, "caption"))


def test_the_crop_control_is_the_runs_framing():
    """Crop: "auto" leaves PrepOptions.framing to its default (native for one dataset, the face
    box for several); a run with a chosen crop fills the control and launches as itself."""
    assert form_state(TrainConfig(data=synthetic(), heads=["eyewear"]))["framing"] == "auto"
    boxed = TrainConfig(data=synthetic(framing="face"), arch="small_cnn", heads=["eyewear"],
                        epochs=2, batch_size=32)
    assert form_state(boxed)["framing"] == "face"
    run = make_run(boxed)
    at = page(run.id)
    assert at.radio(key="framing").value == "face"
    assert not kept_caption(at), kept_caption(at)
    at.button(key="launch").click().run()
    assert [r.id for r in RunStore().list()] == [run.id]
    # back to the default: a new run, whose config leaves the crop out (the old id rule)
    at.radio(key="framing").set_value("auto").run()
    at.button(key="launch").click().run()
    assert not at.exception, at.exception
    new = RunStore().get(shown_run(at))
    assert new.id != run.id and "framing" not in new.config["data"]
    assert new.train_config().data.framing == "native"
