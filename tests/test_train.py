"""``lpcnet train``: CLI flags, learning on real speech, checkpoints, resume, finetune, AMP,
throughput JSON, TensorBoard and one-line errors on bad input (docs/training.md)."""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lpcnet import cli  # noqa: E402
from lpcnet.config import ModelConfig, TrainConfig  # noqa: E402
from lpcnet.errors import LpcnetError  # noqa: E402
from lpcnet.formats import read_data, read_features, write_data, write_features  # noqa: E402
from lpcnet.train import add_arguments, configs_from_args, str2bool, train  # noqa: E402

TINY = ModelConfig(gru_a=16, gru_b=8)


def _tcfg(pair, model_dir, **kw) -> TrainConfig:
    base = dict(features=str(pair[0]), data=str(pair[1]), output="m", model_dir=str(model_dir),
                batch_size=4, epochs=1, steps_per_epoch=3, seed=11, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _parse(argv):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(argv)


#: ModelConfig / TrainConfig defaults of the seed-compatible command line (before the flags were
#: generated from the dataclass fields).
DEFAULT_MODEL = {'gru_a': 384, 'gru_b': 16, 'cond_size': 128, 'nb_features': 20, 'frame_size': 160, 'embed_size': 128, 'pitch_embed': 64, 'pcm_levels': 256, 'noise_std': 0.005, 'weight_clip': 0.992, 'end2end': False}
DEFAULT_TRAIN = {'features': '', 'data': '', 'output': 'lpcnet', 'model_dir': 'lpcnet_model', 'batch_size': 128, 'epochs': 120, 'steps_per_epoch': 0, 'lr': None, 'decay': None, 'density_split': [0.05, 0.05, 0.2], 'grub_density_split': [1.0, 1.0, 1.0], 'finetune': None, 'retrain': None, 'quantize': None, 'start_epoch': 0, 'resume': False, 'use_amp': False, 'amp_dtype': None, 'enable_tensorboard': False, 'use_horovod': False, 'use_performance': False, 'num_gpus': 0, 'num_mlus': 0, 'seed': None, 'progress': True, 'sparsify_schedule': None, 'log_every': 10, 'jit_compile': False, 'scale_lr': False}

#: (argv, expected): the configs the hand-written parser made (fields that differ from the
#: defaults), its LpcnetError message start, or its argparse exit status.
PARSE_CASES = [
    (['--features', 'f.f32', '--data', 'd.u8'],
     {'features': 'f.f32', 'data': 'd.u8'}),
    (['--features', 'f.f32', '--data', 'd.u8', '--output', 'mlu_model', '--model_dir', 'mlu_model', '--batch_size', '16', '--epochs', '120', '--steps_per_epoch', '1000', '--lr', '0.001', '--decay', '2.5e-5', '--density', '0.1', '--grub-density', '0.5', '--grua-size', '384', '--grub-size', '16', '--start_epoch', '0', '--use_amp', 'False', '--enable_tensorboard', 't', '--use_horovod', 'no', '--use_performance', 'YES', '--num_gpus', '0', '--num_mlus', '0', '--seed', '3', '--amp_dtype', 'bfloat16'],
     {'features': 'f.f32', 'data': 'd.u8', 'output': 'mlu_model', 'model_dir': 'mlu_model', 'batch_size': 16, 'steps_per_epoch': 1000, 'lr': 0.001, 'decay': 2.5e-05, 'grub_density_split': [0.25, 0.25, 1.0], 'amp_dtype': 'bfloat16', 'enable_tensorboard': True, 'use_performance': True, 'seed': 3}),
    (['--features', 'f.f32', '--data', 'd.u8', '--density-split', '0.1', '0.2', '0.3', '--grub-density-split', '1', '0.5', '1', '--quantize', 'q.h5', '--resume', '0'],
     {'features': 'f.f32', 'data': 'd.u8', 'density_split': [0.1, 0.2, 0.3], 'grub_density_split': [1.0, 0.5, 1.0], 'quantize': 'q.h5'}),
    # Both given: the split wins, as in the seed (the hand-written parser let --density win).
    (['--features', 'f.f32', '--data', 'd.u8', '--density', '0.2', '--density-split', '0.1', '0.2', '0.3'],
     {'features': 'f.f32', 'data': 'd.u8', 'density_split': [0.1, 0.2, 0.3]}),
    (['--features', 'f.f32', '--data', 'd.u8', '--grub-density-split', '0.1', '0.2', '0.3', '--grub-density', '0.4'],
     {'features': 'f.f32', 'data': 'd.u8', 'grub_density_split': [0.1, 0.2, 0.3]}),
    (['--features', 'f.f32', '--data', 'd.u8', '--density', '0.6'],
     {'features': 'f.f32', 'data': 'd.u8', 'density_split': [0.3, 0.3, 1.0]}),
    (['--features', 'f.f32', '--data', 'd.u8', '--finetune', 'x.h5', '--start_epoch', '3'],
     {'features': 'f.f32', 'data': 'd.u8', 'finetune': 'x.h5', 'start_epoch': 3}),
    (['--features', 'f.f32', '--data', 'd.u8', '--retrain', 'x.keras'],
     {'features': 'f.f32', 'data': 'd.u8', 'retrain': 'x.keras'}),
    (['--features', 'f.f32', '--data', 'd.u8', '--resume'],
     {'features': 'f.f32', 'data': 'd.u8', 'resume': True}),
    (['--features', 'f.f32', '--data', 'd.u8', '--resume', 'True', '--use_amp', '--amp_dtype', 'float16'],
     {'features': 'f.f32', 'data': 'd.u8', 'resume': True, 'use_amp': True, 'amp_dtype': 'float16'}),
    (['--features', 'f.f32', '--data', 'd.u8', '--use_horovod', '--scale_lr', '--jit_compile', '1', '--enable_tensorboard', '--use_performance'],
     {'features': 'f.f32', 'data': 'd.u8', 'enable_tensorboard': True, 'use_horovod': True, 'use_performance': True, 'jit_compile': True, 'scale_lr': True}),
    (['--features', 'f.f32', '--data', 'd.u8', '--no-progress', '--noise-std', '0', '--cond-size', '64', '--grua-size', '16', '--grub-size', '8'],
     {'model.gru_a': 16, 'model.gru_b': 8, 'model.cond_size': 64, 'model.noise_std': 0.0, 'features': 'f.f32', 'data': 'd.u8', 'progress': False}),
    (['--features', 'f.f32', '--data', 'd.u8', '--sparsify-schedule', '1', '3', '1', '--num_gpus', '2', '--num_mlus', '1'],
     {'features': 'f.f32', 'data': 'd.u8', 'num_gpus': 2, 'num_mlus': 1, 'sparsify_schedule': [1, 3, 1]}),
    (['--features', 'f.f32', '--data', 'd.u8', '--end2end', '--gamma', '2'],
     {'model.end2end': True, 'features': 'f.f32', 'data': 'd.u8', 'gamma': 2.0}),
    (['--features', 'f.f32', '--data', 'd.u8', '--end2end'],
     {'model.end2end': True, 'features': 'f.f32', 'data': 'd.u8'}),
    (['--features', 'f.f32', '--data', 'd.u8', '--gamma', '2'],
     {'error': '--gamma 2: the loss weight of the end-to-end variant'}),
    (['--features', 'f.f32', '--data', 'd.u8', '--end2end', '--gamma', '-1'],
     {'error': '--gamma must be a finite number >= 0'}),
    (['--features', 'f.f32', '--data', 'd.u8', '--density', '1.5'],
     {'error': 'density must lie in (0, 1], got 1.5'}),
    (['--features', 'f.f32', '--data', 'd.u8', '--density-split', '0.1', '2', '0.3'],
     {'error': 'density split must be 3 values in [0, 1], got (0.1, 2.0, 0.3)'}),
    (['--features', 'f.f32', '--data', 'd.u8', '--grua-size', '20'],
     {'exit': 2}),                                  # refused at parse time (config.gru_units)
    (['--features', 'f.f32', '--data', 'd.u8', '--finetune', 'a', '--retrain', 'b'],
     {'exit': 2}),
    (['--features', 'f.f32', '--data', 'd.u8', '--use_amp', 'maybe'],
     {'exit': 2}),
    (['--features', 'f.f32', '--data', 'd.u8', '--amp_dtype', 'float32'],
     {'exit': 2}),
    (['--data', 'd.u8'],
     {'exit': 2}),
    (['--features', 'f.f32', '--data', 'd.u8', '--density-split', '0.1', '0.2'],
     {'exit': 2}),
    (['--features', 'f.f32', '--data', 'd.u8', '--features=g.f32', '--seed=7', '--lr=3e-3', '--quantize=q.keras'],
     {'features': 'g.f32', 'data': 'd.u8', 'lr': 0.003, 'quantize': 'q.keras', 'seed': 7}),
]


@pytest.mark.parametrize("argv,expected", PARSE_CASES, ids=[str(i) for i in range(len(PARSE_CASES))])
def test_generated_cli_parses_like_the_hand_written_one(argv, expected, capsys):
    """The flags generated from the config fields give the configs the hand-written parser gave."""
    assert ModelConfig().to_dict() == DEFAULT_MODEL
    assert {k: v for k, v in TrainConfig().to_dict().items() if k in DEFAULT_TRAIN} == DEFAULT_TRAIN
    if "exit" in expected:
        with pytest.raises(SystemExit) as exc:
            _parse(argv)
        assert exc.value.code == expected["exit"]
        return
    args = _parse(argv)
    if "error" in expected:
        with pytest.raises(LpcnetError) as exc:
            configs_from_args(args)
        assert str(exc.value).startswith(expected["error"])
        return
    mcfg, tcfg = configs_from_args(args)
    want_model = dict(DEFAULT_MODEL, **{k[6:]: v for k, v in expected.items() if k.startswith("model.")})
    want_train = dict(DEFAULT_TRAIN, **{k: v for k, v in expected.items() if not k.startswith("model.")})
    got = tcfg.to_dict()
    assert mcfg.to_dict() == want_model
    assert {k: got[k] for k in want_train} == want_train
    # Fields added after the golden cases were recorded keep their defaults under the seed's flags.
    defaults = TrainConfig().to_dict()
    assert {k: got[k] for k in set(got) - set(want_train)} == {k: defaults[k] for k in set(got) - set(want_train)}


def test_cli_accepts_every_seed_flag():
    args = _parse([
        "--features", "f.f32", "--data", "d.u8", "--output", "mlu_model", "--model_dir", "mlu_model",
        "--batch_size", "16", "--epochs", "120", "--steps_per_epoch", "1000", "--lr", "0.001",
        "--decay", "2.5e-5", "--density", "0.1", "--grub-density", "0.5", "--grua-size", "384",
        "--grub-size", "16", "--start_epoch", "0", "--use_amp", "False", "--enable_tensorboard", "t",
        "--use_horovod", "no", "--use_performance", "YES", "--num_gpus", "0", "--num_mlus", "0",
        "--seed", "3", "--amp_dtype", "bfloat16"])
    mcfg, tcfg = configs_from_args(args)
    assert (mcfg.gru_a, mcfg.gru_b) == (384, 16)
    assert tcfg.density_split == pytest.approx((0.05, 0.05, 0.2))
    assert tcfg.grub_density_split == pytest.approx((0.25, 0.25, 1.0))
    assert tcfg.enable_tensorboard and tcfg.use_performance and not tcfg.use_amp and not tcfg.use_horovod
    args = _parse(["--features", "f", "--data", "d", "--density-split", "0.1", "0.2", "0.3",
                   "--grub-density-split", "1", "0.5", "1", "--quantize", "q.h5", "--resume", "0"])
    _, tcfg = configs_from_args(args)
    assert tcfg.density_split == (0.1, 0.2, 0.3) and tcfg.grub_density_split == (1, 0.5, 1)
    assert (tcfg.learning_rate, tcfg.lr_decay, tcfg.schedule) == (3e-5, 0.0, (10000, 30000, 100))
    for flag in ("--finetune", "--retrain"):
        _, t = configs_from_args(_parse(["--features", "f", "--data", "d", flag, "x.h5"]))
        assert t.schedule == (0, 0, 1)
    assert TrainConfig().schedule == (2000, 40000, 400) and TrainConfig().learning_rate == 1e-3
    assert [str2bool(v) for v in ("Y", "true", "1", "n", "False", "0")] == [True] * 3 + [False] * 3
    with pytest.raises(argparse.ArgumentTypeError):
        str2bool("maybe")
    assert "train" in cli.COMMANDS


@pytest.fixture(scope="module")
def trained(slice_training_pair, tmp_path_factory):
    """3 epochs x 10 steps of a small model on the real speech slice, all outputs on."""
    out = tmp_path_factory.mktemp("run")
    cwd = os.getcwd()
    os.chdir(out)                      # the seed-compatible ./summary/summary.json lands here
    try:
        res = train(TINY, _tcfg(slice_training_pair, out / "models", epochs=3, steps_per_epoch=10,
                                lr=3e-3, jit_compile=True, use_performance=True,
                                enable_tensorboard=True, log_every=5))
    finally:
        os.chdir(cwd)
    return res, out


def test_loss_goes_down_on_real_speech(trained):
    res, _ = trained
    loss = res["history"]["loss"]
    assert len(loss) == 3 and np.isfinite(loss).all()
    assert loss[0] < 5.6                              # starts near ln(256) = 5.545
    assert loss[2] < loss[0] - 0.1, loss


def test_checkpoints_config_and_summary(trained):
    res, out = trained
    models = out / "models"
    assert sorted(p.name for p in models.glob("*.keras")) == ["m_16_01.keras", "m_16_02.keras", "m_16_03.keras"]
    assert not list(models.glob(".*tmp*"))           # atomic writes leave no temp files
    saved = json.loads((models / "m_16_config.json").read_text())
    assert ModelConfig.from_dict(saved["model"]) == TINY and saved["train"]["seed"] == 11
    for path in (models / "summary" / "summary.json", out / "summary" / "summary.json"):
        s = json.loads(path.read_text())
        st = s["overall_stats"]
        assert st["batch_size"] == 4 and st["e2e"] > 0
        assert st["throughput_mean"] == pytest.approx(4 / st["e2e"])
        md = s["metadata"]
        assert md["precision"] == "fp32" and md["world_size"] == 1 and md["gru_a"] == 16
        assert md["steps_timed"] == 30 and md["tf_version"] and md["cpu"]


def test_tensorboard_scalars(trained):
    import tensorflow as tf

    _, out = trained
    events = list((out / "models" / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    tags = set()
    for ev in events:
        for e in tf.compat.v1.train.summary_iterator(str(ev)):
            tags.update(v.tag for v in e.summary.value)
    for tag in ("batch/loss", "batch/accuracy", "batch/learning_rate", "batch/sequences_per_s",
                "epoch/loss", "density/gru_a_z", "density/gru_a_h", "density/gru_b_r"):
        assert tag in tags, sorted(tags)


def test_resume_equals_uninterrupted_and_sparsity(slice_training_pair, tmp_path):
    from lpcnet.callbacks import gate_matrices
    from lpcnet.model import model_weights
    from lpcnet.sparsity import block_density

    kw = dict(steps_per_epoch=3, sparsify_schedule=(1, 4, 1), density_split=(0.25, 0.5, 0.5),
              grub_density_split=(0.5, 0.5, 1.0), jit_compile=True)
    full = train(TINY, _tcfg(slice_training_pair, tmp_path / "a", epochs=2, **kw))
    train(TINY, _tcfg(slice_training_pair, tmp_path / "b", epochs=1, **kw))
    resumed = train(TINY, _tcfg(slice_training_pair, tmp_path / "b", epochs=2, resume=True, **kw))
    assert resumed["initial_epoch"] == 1 and len(resumed["history"]["loss"]) == 1
    assert resumed["history"]["loss"][0] == pytest.approx(full["history"]["loss"][1], abs=1e-3)
    wa, wb = model_weights(full["model"]), model_weights(resumed["model"])
    for layer in wa:
        for k in wa[layer]:
            np.testing.assert_allclose(wb[layer][k], wa[layer][k], atol=1e-3, err_msg=f"{layer}/{k}")
    assert int(resumed["model"].optimizer.iterations) == 6
    # After the schedule ends each gate sits at its target density (within one 4x8 block).
    m = resumed["model"]
    for a, want in zip(gate_matrices(m.get_layer("gru_a"), "recurrent"), (0.25, 0.5, 0.5)):
        assert abs(block_density(a, True) - want) <= 1 / 8
    for a, want in zip(gate_matrices(m.get_layer("gru_b"), "kernel", 16), (0.5, 0.5, 1.0)):
        assert abs(block_density(a, False) - want) <= 1 / 4
    # Resuming a finished run is refused; the run's own sizes are used, not the flag defaults (384).
    with pytest.raises(LpcnetError, match="already reached epoch 2"):
        train(ModelConfig(), _tcfg(slice_training_pair, tmp_path / "b", epochs=2, resume=True, **kw))


def test_finetune_from_epoch_and_quantize_from_seed_h5(trained, slice_training_pair, tmp_path):
    from lpcnet.model import save_seed_h5

    res, out = trained
    ft = train(ModelConfig(), _tcfg(slice_training_pair, tmp_path / "ft", finetune=str(out / "models" / "m_16_03.keras"),
                                    start_epoch=2, epochs=4, steps_per_epoch=2))
    assert ft["model_config"].gru_a == 16                       # sizes come from the checkpoint
    assert ft["initial_epoch"] == 2 and len(ft["history"]["loss"]) == 2
    assert sorted(p.name for p in (tmp_path / "ft").glob("*.keras")) == ["m_16_03.keras", "m_16_04.keras"]
    assert ft["history"]["loss"][0] < res["history"]["loss"][0]  # started from the trained weights
    save_seed_h5(res["model"], tmp_path / "seed.h5")
    rc = cli.main(["train", "--features", str(slice_training_pair[0]), "--data", str(slice_training_pair[1]),
                   "--output", "rt", "--model_dir", str(tmp_path / "rt"), "--batch_size", "4",
                   "--epochs", "1", "--steps_per_epoch", "2", "--grua-size", "16", "--grub-size", "8",
                   "--quantize", str(tmp_path / "seed.h5"), "--seed", "1", "--no-progress"])
    assert rc == 0 and (tmp_path / "rt" / "rt_16_01.keras").is_file()
    # Quantisation-aware mode prunes straight to the final densities (0.05, 0.05, 0.2).
    from lpcnet.model import read_checkpoint_weights
    from lpcnet.sparsity import block_density

    rk = read_checkpoint_weights(tmp_path / "rt" / "rt_16_01.keras")["gru_a"]["recurrent_kernel"]
    for g, want in enumerate((0.05, 0.05, 0.2)):
        assert abs(block_density(rk[:, g * 16:(g + 1) * 16], True) - want) <= 1 / 8


def test_resume_keeps_the_runs_quantize_schedule_and_densities(trained, slice_training_pair, tmp_path):
    """--resume of a --quantize run goes on quantising on its schedule (not the from-scratch one),
    with the run's densities, without needing the --quantize file again; its config keeps them."""
    from lpcnet.model import read_checkpoint_weights, save_seed_h5
    from lpcnet.sparsity import block_density

    res, _ = trained
    save_seed_h5(res["model"], tmp_path / "seed.h5")
    kw = dict(steps_per_epoch=2, density_split=(0.25, 0.25, 0.5))
    train(TINY, _tcfg(slice_training_pair, tmp_path / "q", quantize=str(tmp_path / "seed.h5"), **kw))
    (tmp_path / "seed.h5").unlink()
    resumed = train(TINY, _tcfg(slice_training_pair, tmp_path / "q", epochs=2, resume=True, steps_per_epoch=2))
    assert resumed["initial_epoch"] == 1
    saved = json.loads((tmp_path / "q" / "m_16_config.json").read_text())["train"]
    assert saved["quantize"] == str(tmp_path / "seed.h5") and saved["density_split"] == [0.25, 0.25, 0.5]
    assert (saved["lr"], saved["decay"]) == (None, None)
    # Quantisation-aware mode prunes every step to the final densities; the from-scratch
    # schedule (first at step 2400) would have let the resumed steps regrow the pruned weights.
    rk = read_checkpoint_weights(tmp_path / "q" / "m_16_02.keras")["gru_a"]["recurrent_kernel"]
    for g, want in enumerate((0.25, 0.25, 0.5)):
        assert abs(block_density(rk[:, g * 16:(g + 1) * 16], True) - want) <= 1 / 8
    # Densities given again must be the run's.
    with pytest.raises(LpcnetError, match=r"--density-split 0.5 0.5 0.5 \(run: 0.25 0.25 0.5\)"):
        train(TINY, _tcfg(slice_training_pair, tmp_path / "q", epochs=3, resume=True,
                          density_split=(0.5, 0.5, 0.5)))


def test_amp_bf16_matches_fp32(slice_training_pair, tmp_path):
    fp32 = train(TINY, _tcfg(slice_training_pair, tmp_path / "fp32", steps_per_epoch=4))
    amp = train(TINY, _tcfg(slice_training_pair, tmp_path / "amp", steps_per_epoch=4, use_amp=True))
    assert amp["precision"] == "amp_bfloat16"
    assert amp["model"].get_layer("gru_a").compute_dtype == "bfloat16"
    # Same init and batches; bf16 keeps ~3 significant digits: losses agree within 0.005 nats (measured: 5e-5).
    assert abs(amp["loss"] - fp32["loss"]) < 0.005, (amp["loss"], fp32["loss"])
    f16 = train(TINY, _tcfg(slice_training_pair, tmp_path / "f16", steps_per_epoch=2, use_amp=True,
                            amp_dtype="float16"))
    assert type(f16["model"].optimizer).__name__ == "LossScaleOptimizer" and np.isfinite(f16["loss"])
    assert f16["model"].get_layer("tree_to_pdf").compute_dtype == "float32"
    # A step skipped for overflowing float16 gradients still counts (the step counter of the LR
    # decay, the sparsify schedule and --resume's data position), weights unchanged, scale halved.
    from lpcnet.data import TrainingLoader
    from lpcnet.model import model_weights

    m, opt = f16["model"], f16["model"].optimizer
    opt.dynamic_scale.assign(1e30)
    before, it = model_weights(m), int(opt.iterations)
    x, y = TrainingLoader(*slice_training_pair, 4, seed=0).batch(0)
    m.train_on_batch(x, y)
    assert int(opt.iterations) == it + 1 and float(opt.dynamic_scale) == pytest.approx(5e29)
    after = model_weights(m)
    for layer in before:
        for k in before[layer]:
            np.testing.assert_array_equal(after[layer][k], before[layer][k], err_msg=f"{layer}/{k}")
    m.train_on_batch(x, y)                  # a finite step (scale back to 1) applies and counts too
    opt.dynamic_scale.assign(1.0)
    m.train_on_batch(x, y)
    assert int(opt.iterations) == it + 3
    assert not np.array_equal(model_weights(m)["gru_a"]["kernel"], before["gru_a"]["kernel"])


# --- bad input: one line, exit 1, nothing overwritten ------------------------------------
@pytest.fixture(scope="module")
def bad_files(slice_training_pair, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    feats, data = read_features(slice_training_pair[0]), read_data(slice_training_pair[1])
    write_data(d / "short_data.u8", data[:-3 * 160])
    write_features(d / "tiny.f32", feats[:40])
    write_data(d / "tiny.u8", data[:40 * 160])
    nan = np.array(feats)
    nan[5, 2] = np.nan
    nan.tofile(d / "nan.f32")
    (d / "corrupt.keras").write_bytes(b"PK\x03\x04 truncated")
    from lpcnet.model import build_lpcnet, save_seed_h5

    save_seed_h5(build_lpcnet(ModelConfig(gru_a=24, gru_b=8)).model, d / "gru24.h5")
    import h5py

    with h5py.File(d / "other.h5", "w") as f:
        f.create_dataset("model_weights/dense/dense/kernel:0", data=np.zeros((2, 2)))
    (d / "a_file").write_text("x")
    return d


BAD_CASES = {
    "data_mismatch": (dict(data="short_data.u8"), "frames"),
    "too_short": (dict(features="tiny.f32", data="tiny.u8"), "too short for one batch"),
    "nan_features": (dict(features="nan.f32"), "non-finite"),
    "corrupt_finetune": (dict(extra=["--finetune", "corrupt.keras"]), "cannot read checkpoint"),
    "not_lpcnet_finetune": (dict(extra=["--finetune", "other.h5"]), "not an LPCNet checkpoint"),
    "wrong_arch_retrain": (dict(extra=["--retrain", "gru24.h5"]), "different architecture"),
    "start_epoch": (dict(extra=["--finetune", "gru24.h5", "--start_epoch", "3", "--epochs", "3"]),
                    "must be below --epochs"),
    "unwritable_model_dir": (dict(model_dir="a_file/sub"), "not writable"),
    "mlu": (dict(extra=["--num_mlus", "1"]), "MLU"),
    "horovod": (dict(extra=["--use_horovod", "true"]), "Horovod"),
    "gamma_without_end2end": (dict(extra=["--gamma", "2"]), "--gamma 2"),
    "end2end_from_standard": (dict(extra=["--retrain", "gru24.h5", "--end2end"]),
                              "a standard LPCNet checkpoint, but --end2end was given"),
    "bf16_xla_cpu": (dict(extra=["--use_amp", "true", "--jit_compile", "true"]), "impractically slow"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_one_line_error(case, bad_files, slice_training_pair, tmp_path, capsys):
    spec, expect = BAD_CASES[case]
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    (model_dir / "m_16_01.keras").write_bytes(b"previous")
    feats = bad_files / spec["features"] if "features" in spec else slice_training_pair[0]
    data = bad_files / spec["data"] if "data" in spec else slice_training_pair[1]
    mdir = bad_files / spec["model_dir"] if "model_dir" in spec else model_dir
    extra = [str(bad_files / a) if a.endswith((".keras", ".h5")) else a for a in spec.get("extra", [])]
    argv = ["train", "--features", str(feats), "--data", str(data), "--model_dir", str(mdir),
            "--output", "m", "--grua-size", "16", "--grub-size", "8", "--batch_size", "4",
            "--epochs", "2", "--steps_per_epoch", "1", "--no-progress", *extra]
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert len(err) == 1 and err[0].startswith("lpcnet train: error:") and expect in err[0], err
    assert sorted(p.name for p in model_dir.iterdir()) == ["m_16_01.keras"]
    assert (model_dir / "m_16_01.keras").read_bytes() == b"previous"


@pytest.mark.parametrize("flags", [
    ["--noise-std", "nan"], ["--noise-std", "-1"], ["--noise-std", "2"],
    ["--sparsify-schedule", "-5", "-1", "-1"], ["--batch_size", "0"], ["--epochs", "-1"],
    ["--steps_per_epoch", "-2"], ["--commit-every", "0"], ["--eval-every", "-3"], ["--min-np", "-3"],
    ["--seed", "-1"], ["--seed", str(2 ** 32)], ["--cond-size", "0"], ["--grua-size", "7"],
    ["--num_gpus", "-1"], ["--start_epoch", "-1"]])
def test_impossible_numbers_refused_at_parse_time(flags, slice_training_pair, tmp_path, capsys):
    """Numeric flags that NaN, a negative or a zero would break (a Keras traceback, a silently
    ignored setting) are refused by argparse in one line (exit 2), before anything is written."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--features", str(slice_training_pair[0]), "--data", str(slice_training_pair[1]),
                  "--model_dir", str(tmp_path / "m"), *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and flags[0].split("_")[0] in err[0], err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("schedule", [("100", "10", "0"), ("1", "0", "1"), ("5", "10", "0")])
def test_impossible_sparsify_schedule_refused_at_start(schedule, slice_training_pair, tmp_path, capsys):
    """docs/training.md, Sparsification: 0 <= T_START <= T_END, INTERVAL >= 1 (0 0 1: the final
    densities at once, the --finetune default)."""
    rc = cli.main(["train", "--features", str(slice_training_pair[0]), "--data", str(slice_training_pair[1]),
                   "--model_dir", str(tmp_path / "m"), "--sparsify-schedule", *schedule])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "--sparsify-schedule" in err[0] and "T_START <= T_END" in err[0]
    assert not (tmp_path / "m").exists()
    assert TrainConfig(sparsify_schedule=(0, 0, 1)).schedule == (0, 0, 1)


def test_model_config_refuses_noise_keras_cannot_take():
    with pytest.raises(LpcnetError, match="--noise-std must be a number from 0 to 1, got nan"):
        ModelConfig(gru_a=16, gru_b=8, noise_std=float("nan"))


def test_callbacks_module_hooks_into_fit(slice_training_pair, tmp_path, monkeypatch, capsys):
    """--callbacks-module: tests/train_hooks.py's callbacks run inside fit; a bad module is one line."""
    from lpcnet.model import model_weights

    monkeypatch.setenv("LPCNET_TEST_FAIL_AT", "0:2")
    with pytest.raises(RuntimeError, match="rank 0 fails on purpose after 2 steps"):
        train(TINY, _tcfg(slice_training_pair, tmp_path / "a", callbacks_module="train_hooks"))
    monkeypatch.delenv("LPCNET_TEST_FAIL_AT")
    monkeypatch.setenv("LPCNET_TEST_WEIGHTS_DIR", str(tmp_path / "w"))
    res = train(TINY, _tcfg(slice_training_pair, tmp_path / "b", steps_per_epoch=2,
                            callbacks_module="train_hooks"))
    with np.load(tmp_path / "w" / "rank0.npz") as saved:
        for layer, vs in model_weights(res["model"]).items():
            for k, v in vs.items():
                np.testing.assert_array_equal(saved[f"{layer}/{k}"], v)
    assert json.loads((tmp_path / "w" / "rank0.json").read_text()) == res["history"]
    rc = cli.main(["train", "--features", str(slice_training_pair[0]), "--data", str(slice_training_pair[1]),
                   "--model_dir", str(tmp_path / "c"), "--grua-size", "16", "--grub-size", "8",
                   "--callbacks-module", "no_such_module_here", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "--callbacks-module no_such_module_here" in err[0], err
    assert not (tmp_path / "c").exists()                      # refused before anything is written


def test_more_gpus_than_present_is_refused(slice_training_pair, tmp_path, capsys):
    import tensorflow as tf

    n = len(tf.config.list_physical_devices("GPU"))
    rc = cli.main(["train", "--features", str(slice_training_pair[0]), "--data", str(slice_training_pair[1]),
                   "--model_dir", str(tmp_path), "--num_gpus", str(n + 1), "--no-progress"])
    assert rc == 1 and "GPU" in capsys.readouterr().err


def test_seed_throughput_rule():
    from lpcnet.callbacks import performance_summary, seed_mean_step_time

    t = np.arange(300, dtype=float)
    assert seed_mean_step_time(t) == pytest.approx(t[10:300].mean())        # exactly 300 steps
    assert seed_mean_step_time(t[:100]) == pytest.approx(t[60:100].mean())  # last 40
    assert seed_mean_step_time(t[:30]) == pytest.approx(t[15:30].mean())    # second half
    s = performance_summary([0.5] * 20, 16, {"precision": "fp32"})
    assert s["overall_stats"] == {"batch_size": 16, "throughput_mean": 32.0, "e2e": 0.5}
    assert s["metadata"]["precision"] == "fp32" and s["metadata"]["steps_timed"] == 20


def test_module_entry_point_help():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "lpcnet.train", "--help"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0
    for flag in ("--features", "--data", "--output", "--model_dir", "--batch_size", "--epochs",
                 "--steps_per_epoch", "--lr", "--decay", "--density", "--density-split", "--grub-density",
                 "--grub-density-split", "--grua-size", "--grub-size", "--finetune", "--retrain",
                 "--start_epoch", "--quantize", "--use_amp", "--enable_tensorboard", "--use_horovod",
                 "--use_performance", "--num_gpus", "--num_mlus", "--resume", "--seed", "--amp_dtype",
                 "--cond-size", "--noise-std", "--sparsify-schedule", "--scale_lr", "--jit_compile",
                 "--no-progress", "--end2end", "--gamma", "--callbacks-module"):
        assert flag in out.stdout, flag


@pytest.mark.slow
def test_bench_train_smoke(slice_training_pair):
    from lpcnet.bench import bench_train

    r = bench_train(gru_a=16, gru_b=8, batch=2, steps=2, warmup=1, rounds=2,
                    features=slice_training_pair[0], data=slice_training_pair[1],
                    variants=("ours_fp32", "keras_fit_fp32"))
    assert set(r["variants"]) == {"ours_fp32", "keras_fit_fp32"}
    assert all(v["seq_per_s"] > 0 and v["steps"] == 2 for v in r["variants"].values())
    v = r["variants"]
    assert set(r["ratios"]) == {"ours_over_plain_fp32"}
    assert abs(r["ratios"]["ours_over_plain_fp32"] - v["ours_fp32"]["seq_per_s"] / v["keras_fit_fp32"]["seq_per_s"]) < 1e-9
