"""The install is part of the product: pins agree everywhere, CI calls the README's command."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pins(text):
    """name==version lines -> {normalised name: version} (PEP 503 names)."""
    found = re.findall(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)", text, re.M)
    return {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in found}


def test_environment_yml_has_the_same_pins_as_requirements():
    req = _pins((ROOT / "requirements.txt").read_text())
    env = _pins((ROOT / "environment.yml").read_text())
    env.pop("horovod", None)  # built from source, named in a comment
    assert req == env
    lock = _pins((ROOT / "requirements-lock.txt").read_text())
    for name, version in req.items():
        assert lock.get(name) == version, name


def test_installed_versions_match_the_pins():
    import importlib.metadata as md

    for name, version in _pins((ROOT / "requirements.txt").read_text()).items():
        assert md.version(name) == version, name
    assert md.version("horovod") == "0.28.1"


def test_package_dependencies_admit_the_pins_and_cover_the_imports():
    """pyproject's ranges hold the pinned versions, and every third-party package the kit imports
    is declared there (or is Horovod, built by setup.sh)."""
    import ast
    import importlib.metadata as md
    import sys
    import tomllib

    from packaging.requirements import Requirement

    deps = [Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    pins = _pins((ROOT / "requirements.txt").read_text())
    declared = set()
    for req in deps:
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert req.specifier.contains(pins[name]), (name, pins[name])
        declared.add(name)
    imported = set()
    for path in (ROOT / "lpcnet").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("lpcnet", "horovod")}
    providers = md.packages_distributions()
    for module in sorted(third_party):
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(module, [])}
        # IPython comes with ipywidgets, which the notebooks' widgets need.
        assert dists & (declared | ({"ipython"} if "ipywidgets" in declared else set())), module


def test_horovod_built_with_tensorflow_and_gloo_without_mpi():
    import horovod.tensorflow as hvd

    assert hvd.gloo_built() and not hvd.mpi_built()


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```bash") + 1: readme.index("```bash") + 3]
    commands = [line.split("#")[0].strip() for line in block]
    assert commands == ["make demo", "make test"]
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()
          if l.strip() and not l.startswith("#")]
    assert "make test" in ci and not any("pytest" in l for l in ci)


def test_shell_scripts_parse():
    for script in [ROOT / "env.sh", ROOT / ".ci" / "run", *sorted((ROOT / "run_scripts").glob("*.sh"))]:
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_env_sh_exports_overridable_defaults(tmp_path):
    out = subprocess.run(["bash", "-c", f"DATA_DIR={tmp_path} NP=3; export DATA_DIR NP; source {ROOT}/env.sh; "
                          "echo $DATA_DIR $NP $OUTPUT_DIR $TF_NUM_INTRAOP_THREADS"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == str(tmp_path) and out[1] == "3"
    assert out[2].endswith("work/output") and int(out[3]) >= 1


def test_notebooks_are_numbered_and_stored_without_outputs():
    import json

    names = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert names == ["01_data_prep", "02_model_anatomy", "03_train_single_device",
                     "04_horovod_launch", "05_listening_mos", "06_amp_vs_fp32_throughput"]
    for name in names:
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code), name
        src = "".join("".join(c["source"]) for c in code)
        assert "LPCNET_NB_SMALL" in src, name
        assert "\ndef " not in "\n" + src and "\nclass " not in "\n" + src, name


def _script(name, *args, env=None):
    import os

    return subprocess.run(["bash", str(ROOT / "run_scripts" / name), *map(str, args)], capture_output=True,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})),
                          timeout=300)


def _demo_run(run):
    """A demo-model run folder: checkpoints epoch 99 and 120 (the carried checkpoint), its config,
    and a TensorBoard folder with the batch/loss scalars the trainer logs."""
    import tensorflow as tf

    carried = ROOT / "models" / "training_demo_v2"
    run.mkdir(parents=True)
    for epoch in (99, 120):
        (run / f"demo2_256_{epoch}.keras").symlink_to(carried / "demo2_256_109.keras")
    (run / "demo2_256_config.json").write_text((carried / "demo2_256_config.json").read_text())
    writer = tf.summary.create_file_writer(str(run / "tensorboard"))
    with writer.as_default():
        for step in (1, 2, 3):
            tf.summary.scalar("batch/loss", 5.0 - step, step=step)
    writer.close()


def test_carry_demo_training_carries_the_newest_epoch_and_checks_before_replacing(tmp_path):
    """The default RUN ($OUTPUT_DIR/demo_model_v2/run: underscores in the path) with epochs 99
    and 120: 120 is carried and the previously carried checkpoint replaced; a run without its
    config, or without checkpoints, is refused in one line with the destination untouched."""
    out, dest = tmp_path / "out_dir", tmp_path / "dest"
    _demo_run(out / "demo_model_v2" / "run")
    dest.mkdir()
    (dest / "demo2_256_109.keras").write_bytes(b"previously carried")
    env = {"OUTPUT_DIR": str(out), "LPCNET_CARRY_DEST": str(dest)}
    r = _script("carry_demo_training.sh", env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dest.glob("*.keras")) == ["demo2_256_120.keras"]
    assert (dest / "loss.csv").read_text().splitlines()[1:] == ["1,4.0,", "2,3.0,", "3,2.0,"]
    for broken, words in (("config", "no demo2_256_config.json"), ("checkpoints", "no checkpoint")):
        run = tmp_path / broken / "demo_model_v2" / "run"
        _demo_run(run)
        for p in run.glob("demo2_256_*.keras" if broken == "checkpoints" else "*_config.json"):
            p.unlink()
        before = sorted(p.name for p in dest.iterdir())
        r = _script("carry_demo_training.sh", run, env=env)
        err = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(err) == 1 and words in err[0], r.stderr
        assert sorted(p.name for p in dest.iterdir()) == before


def test_demo_scripts_print_a_usage_line_for_bad_arguments(tmp_path):
    out = tmp_path / "eval_out"
    for args in ((), (out,), (out, "demo"), (out, "=models/demo/lpcnet_demo_256.bin"),
                 (out, "a,b=models/demo/lpcnet_demo_256.bin"), (out, "../x=ckpt"), (out, "demo="),
                 (out, "anchor_lp3k5=ckpt"), (out, "a=ckpt", "a=ckpt2")):
        r = _script("eval_demo_model.sh", *args)
        err = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(err) == 1 and err[0].startswith("usage:"), (args, r.stderr)
        assert not out.exists()
    for args in ((), ("ckpt.keras",)):
        r = _script("finish_demo_model.sh", *args)
        err = r.stderr.strip().splitlines()
        assert r.returncode == 2 and err == [f"usage: {ROOT / 'run_scripts' / 'finish_demo_model.sh'} "
                                             "CHECKPOINT WORK_DIR [OUT_DIR]"], r.stderr


def test_eval_demo_model_quotes_its_csv_and_scores_each_test_set(tmp_path):
    """An OUT_DIR with a comma in its path: pairs.csv fields quoted, `lpcnet eval` reads it, and
    each test set (Asterisk prompts, ARCTIC) is scored on its own; eval.json joins both."""
    import csv
    import json

    prompts = [ln for ln in (ROOT / "models/demo/heldout_prompts.txt").read_text().splitlines() if ln]
    asterisk = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
    if not all((asterisk / p).is_file() for p in prompts):
        import pytest

        pytest.skip("Asterisk prompts not installed")
    out = tmp_path / "a,b" / "eval"
    r = _script("eval_demo_model.sh", out, f"demo={ROOT / 'models/demo/lpcnet_demo_256.bin'}",
                env={"LPCNET_EVAL_FLAGS": "--no-dnsmos"})
    assert r.returncode == 0, r.stderr[-2000:]
    with open(out / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * (len(prompts) + 2) and all(Path(r["synthesis"]).is_file() for r in rows)
    table = {t["condition"] for t in json.loads((out / "eval.json").read_text())["table"]}
    assert table == {f"{c}_{s}" for c in ("demo", "anchor_lp3k5", "anchor_ulaw8") for s in ("allison", "arctic")}
