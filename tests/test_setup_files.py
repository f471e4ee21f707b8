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
