"""The train flags are declared once (faceml.flags): the parser, the TrainConfig it builds and a
model card's command line all follow from them."""

import shlex

import pytest

from faceml import flags
from faceml.cli import build_parser
from faceml.cli.train import train_config
from faceml.data.prepare import PrepOptions
from faceml.config import TrainConfig


def _round_trip(cfg: TrainConfig) -> TrainConfig:
    argv = shlex.split(flags.train_command(cfg.canonical()))
    assert argv[:4] == ["python", "-m", "faceml", "train"]
    return train_config(build_parser(["train"]).parse_args(argv[3:]))


@pytest.mark.parametrize("cfg", [
    TrainConfig(),
    TrainConfig(data=PrepOptions(dataset_options={"n": 300, "label_noise": 0.1}),
                heads=["gender", "age"], lr=0.000123456789, mixed_precision=True, epochs=3),
    TrainConfig(data=PrepOptions(dataset="utkface", path="a b/c'd", age="decades"),
                heads=["age"], head_weights={"age": 0.3333333333333333},
                augmentation=["zoom", "flip"]),
    TrainConfig(data=PrepOptions(dataset="fairface", framing="face"), heads=["gender"]),
    TrainConfig(data=PrepOptions(dataset="utkface,fairface", framing="native"),
                heads=["gender"]),
], ids=["defaults", "options-and-exact-lr", "quoted-path-and-weights", "one-dataset-face-crop",
        "several-native-crop"])
def test_a_config_round_trips_through_its_command_line(cfg):
    parsed = _round_trip(cfg)
    assert parsed.canonical() == cfg.canonical()
    assert parsed.run_id() == cfg.run_id()


def test_a_card_shows_what_was_trained_and_only_the_flags_that_differ():
    line = flags.train_command(TrainConfig(heads=["gender"]).canonical())
    assert line == ("python -m faceml train --dataset synthetic --size 64 --color rgb "
                    "--arch default_cnn --heads gender --optimizer adam --lr 0.001 "
                    "--schedule constant --batch-size 64 --epochs 10 --seed 0")


def test_a_flag_declared_once_reaches_the_parser_the_config_and_the_card(monkeypatch):
    add = flags.add_train_args

    def with_repeat(p):
        add(p)
        flags._arg(p, "--repeat", type=int, default=0, key="repeat")

    monkeypatch.setattr(flags, "add_train_args", with_repeat)
    cfg = TrainConfig(heads=["gender"], repeat=2)
    assert "--repeat 2" in flags.train_command(cfg.canonical())
    assert "--repeat" not in flags.train_command(TrainConfig(heads=["gender"]).canonical())
    parser = flags.argparse.ArgumentParser()
    with_repeat(parser)
    values = flags.train_values(parser.parse_args(["--heads", "gender", "--repeat", "2"]))
    assert TrainConfig.from_dict(values).run_id() == cfg.run_id()


def test_the_crop_flag_is_written_only_when_it_is_not_the_datasets_default():
    """--framing: native for one dataset and face for several unless given; a run id made
    before the flag existed holds, and the card's command names a crop only when chosen."""
    one = TrainConfig(data=PrepOptions(dataset="fairface"), heads=["gender"])
    assert "--framing" not in flags.train_command(one.canonical())
    face = TrainConfig(data=PrepOptions(dataset="fairface", framing="face"), heads=["gender"])
    assert "--framing face" in flags.train_command(face.canonical())
    assert face.run_id() != one.run_id()
    parsed = train_config(build_parser(["train"]).parse_args(
        ["train", "--dataset", "utkface,fairface", "--heads", "gender"]))
    assert parsed.data.framing == "face"
    assert "--framing" not in flags.train_command(parsed.canonical())
    with pytest.raises(SystemExit):
        build_parser(["train"]).parse_args(["train", "--framing", "tight"])
