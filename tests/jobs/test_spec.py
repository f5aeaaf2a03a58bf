from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.spec import CompressJobSpec, SpecError, TrainJobSpec, load_spec, parse_spec

SPECS = sorted((Path(__file__).parents[2] / "jobs" / "specs").glob("*.yaml"))
BASE = {"kind": "compress", "name": "j", "input": "in", "output": "out", "model": "m"}


def test_specs_are_shipped():
    assert len(SPECS) >= 2


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_loads_and_names_its_command(path):
    spec = load_spec(path)
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# aec {spec.kind} "), first
    assert first.endswith(str(path.relative_to(path.parents[2])))


def test_defaults_and_kinds():
    spec = parse_spec(BASE)
    assert isinstance(spec, CompressJobSpec)
    assert (spec.epochs, spec.batch_size, spec.workers, spec.gpus, spec.modality) == (10, 32, 2, 0.0, "auto")
    assert spec.effort == "default" and spec.models == {}
    archive = parse_spec({"kind": "compress", "name": "a", "input": "in", "output": "out"})  # no model: classic codecs
    assert archive.model is None and archive.modality == "auto"
    with pytest.raises(SpecError, match="modality image needs a model"):
        parse_spec({"kind": "compress", "name": "a", "input": "in", "output": "out", "modality": "image"})
    lossy = parse_spec({"kind": "compress", "name": "a", "input": "in", "output": "out", "lossless": False})
    assert lossy.modality == "auto" and lossy.lossless is False  # photos and sounds lossy, the rest exactly
    with pytest.raises(SpecError, match="models: unknown modality 'video'"):
        parse_spec({"kind": "compress", "name": "a", "input": "in", "output": "out", "models": {"video": "zoo:x"}})
    train = parse_spec({"kind": "train", "name": "t", "input": "in", "model": "m"})
    assert isinstance(train, TrainJobSpec)
    # lmbda, learning_rate, preset and init left unset: the architecture and the zoo decide (jobs.models)
    assert train.regularizer_weights() == {"plain": None} and train.lmbda is None and train.init is None
    with pytest.raises(SpecError, match="unknown preset 'huge' for image-hyperprior; use one of: tiny, small, base"):
        parse_spec({"kind": "train", "name": "t", "input": "in", "model": "m", "preset": "huge"})
    with pytest.raises(SpecError, match="is not a starting point"):
        parse_spec({"kind": "train", "name": "t", "input": "in", "model": "m", "init": "zoo:"})


def test_unknown_key_names_the_nearest_valid_one():
    with pytest.raises(SpecError, match=r"unknown key 'epoch'; did you mean 'epochs'\?"):
        parse_spec({**BASE, "epoch": 3})


def test_missing_required_key():
    raw = dict(BASE)
    del raw["output"]
    with pytest.raises(SpecError, match=r"missing required key 'output'"):
        parse_spec(raw)
    with pytest.raises(SpecError, match=r"missing required key 'kind'"):
        parse_spec({"name": "x"})


def test_wrong_types_and_values_are_one_line():
    for bad, pattern in [
        ({"epochs": "ten"}, r"key 'epochs'"),
        ({"workers": 0}, r"key 'workers'"),
        ({"modality": "vidoe"}, r"unknown modality 'vidoe'"),
        ({"kind": "trian"}, r"key 'kind' is 'trian'; use train or compress"),
        ({"model": "a b"}, r"not a model reference"),
    ]:
        with pytest.raises(SpecError, match=pattern) as info:
            parse_spec({**BASE, **bad})
        assert "\n" not in str(info.value)


def test_set_overrides_any_key_with_yaml_values():
    spec = parse_spec(BASE, ["epochs=3", "gpus=0.5", "name=nightly", "storage_options.anon=true"])
    assert (spec.epochs, spec.gpus, spec.name, spec.storage_options) == (3, 0.5, "nightly", {"anon": True})
    with pytest.raises(SpecError, match=r"expected key=value"):
        parse_spec(BASE, ["epochs"])
    with pytest.raises(SpecError, match=r"did you mean 'batch_size'"):
        parse_spec(BASE, ["batchsize=3"])


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: train\n  name: [oops\n")
    with pytest.raises(SpecError, match=r"not valid YAML at line"):
        load_spec(bad)
    with pytest.raises(SpecError, match=r"no such file"):
        load_spec(tmp_path / "missing.yaml")


def test_cli_reports_unreachable_input_in_one_line(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"kind: train\nname: t\ninput: {tmp_path}/nowhere\nmodel: m\nregistry: {tmp_path}/reg\n")
    result = CliRunner().invoke(app, ["train", str(spec)])
    assert result.exit_code == 2
    assert "does not exist; check the path" in result.output
    assert "Traceback" not in result.output


def test_cli_reports_missing_model_in_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    spec = tmp_path / "s.yaml"
    spec.write_text(f"kind: compress\nname: c\ninput: {tmp_path}/in\noutput: {tmp_path}/out\nmodel: ghost\n"
                    f"registry: {tmp_path}/reg\n")
    result = CliRunner().invoke(app, ["compress", str(spec)])
    assert result.exit_code == 2
    assert "model 'ghost' is not in the registry" in result.output


def test_every_command_help_has_an_example():
    import typer

    def leaves(group, prefix: list[str]) -> list[list[str]]:
        out = []
        for name, cmd in group.commands.items():
            out += leaves(cmd, prefix + [name]) if hasattr(cmd, "commands") else [prefix + [name]]
        return out

    commands = leaves(typer.main.get_command(app), [])
    assert ["cluster", "up"] in commands and ["scheduler", "run"] in commands and len(commands) >= 20
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Example: aec " in result.output, command


@pytest.mark.parametrize("key", ["key", "secret", "token", "aws_secret_access_key", "client_kwargs.aws_session_token",
                                 "password"])
def test_specs_never_carry_credentials(key):
    *parents, leaf = key.split(".")
    options: dict = {leaf: "x"}
    for p in reversed(parents):
        options = {p: options}
    with pytest.raises(SpecError, match="specs never carry credentials"):
        parse_spec({**BASE, "storage_options": options})
    parse_spec({**BASE, "storage_options": {"endpoint_url": "http://127.0.0.1:9000", "anon": True}})
