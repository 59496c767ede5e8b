"""services/*/Dockerfile: static checks, then (slow) a replay of their steps without Docker:
the same files through the same .dockerignore, the same RUN commands (pip, protoc) into a
stand-in "/", and the service package imported from the runtime stage's venv."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .dockerfile import ROOT, DockerIgnore, Emulator, Instruction, parse

sys.path.insert(0, str(ROOT / "deploy" / "docker"))
import sync_dockerfiles

SERVICES = list(sync_dockerfiles.PORTS)
# One worker replays the shared base stage once for all services (pytest -n / --dist loadgroup).
pytestmark = pytest.mark.xdist_group("docker-replay")
BUILD_TOOLS = re.compile(r"apt-get|apk |gcc|build-essential|grpc_tools|grpcio-tools|make ")


def dockerfile(name: str) -> Path:
    return ROOT / "services" / name / "Dockerfile"


def stages(name: str) -> dict:
    _, st = parse(dockerfile(name))
    return {s.name: s for s in st}


def key(ins: Instruction) -> tuple:
    return ins.cmd, tuple(sorted(ins.flags.items())), ins.args


def test_every_service_has_a_dockerfile_from_the_template() -> None:
    on_disk = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))
    assert sorted(SERVICES) == on_disk
    for name in SERVICES:
        assert dockerfile(name).read_text() == sync_dockerfiles.render(name), (
            f"services/{name}/Dockerfile is stale: run python deploy/docker/sync_dockerfiles.py"
        )


@pytest.mark.parametrize("name", SERVICES)
def test_multi_stage_slim_non_root(name: str) -> None:
    preamble, st = parse(dockerfile(name))
    assert [s.name for s in st] == ["base", "build", "runtime"]
    image_arg = next(i for i in preamble if i.cmd == "ARG" and i.args.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", image_arg.args)
    runtime = st[-1]
    assert runtime.base == "${PYTHON_IMAGE}", "the final image starts again from slim Python"
    user = [i.args for i in runtime.instructions if i.cmd == "USER"]
    assert user and user[-1].split(":")[0].isdigit() and int(user[-1].split(":")[0]) >= 1000
    # Nothing from the build context and no build tools in the final image.
    for ins in runtime.instructions:
        if ins.cmd in ("COPY", "ADD"):
            assert ins.cmd == "COPY" and "from" in ins.flags, f"{name}: {ins.args}"
        if ins.cmd == "RUN":
            assert not BUILD_TOOLS.search(ins.args.replace("pip uninstall", "")), ins.args
    entry = json.loads(next(i.args for i in runtime.instructions if i.cmd == "ENTRYPOINT"))
    assert entry == ["python", "-m", f"omniroute_{name}"]
    exposed = {int(p) for i in runtime.instructions if i.cmd == "EXPOSE" for p in i.args.split()}
    assert exposed == set(sync_dockerfiles.PORTS[name]) and 9464 in exposed


def test_base_layers_are_shared() -> None:
    """Identical base stages (and runtime stages up to the shared venv COPY) in every
    Dockerfile: Docker reuses one cache and one set of layers for all images."""
    ref = stages(SERVICES[0])
    ref_runtime = [key(i) for i in ref["runtime"].instructions]
    shared_upto = next(n for n, k in enumerate(ref_runtime) if k[1] == (("from", "base"),)) + 1
    for name in SERVICES[1:]:
        st = stages(name)
        assert [key(i) for i in st["base"].instructions] == [key(i) for i in ref["base"].instructions]
        assert [key(i) for i in st["runtime"].instructions][:shared_upto] == ref_runtime[:shared_upto]
    # The base stage never sees a service's own files.
    for ins in ref["base"].instructions:
        if ins.cmd == "COPY":
            assert "services" not in ins.args


def test_stubs_are_generated_like_the_makefile() -> None:
    run = " ".join(i.args for i in stages("edge")["base"].instructions if i.cmd == "RUN")
    assert "-m grpc_tools.protoc -I protos --python_out=libs --pyi_out=libs" in run
    assert "--grpc_python_out=libs protos/omniroute/v1/*.proto" in run


def test_dockerignore_sends_what_the_builds_copy_and_nothing_else() -> None:
    ignore = DockerIgnore(ROOT / ".dockerignore")
    for name in SERVICES:
        for st in stages(name).values():
            for ins in st.instructions:
                if ins.cmd == "COPY" and "from" not in ins.flags:
                    for src in ins.args.split()[:-1]:
                        assert (ROOT / src).exists(), src
                        assert not ignore.excluded(src.rstrip("/")), f"{src} is excluded"
    for path in [
        ".git/config",
        ".venv/bin/python",
        "tests/unit/x.py",
        "bench/run.py",
        "libs/omniroute/v1/router_pb2.py",
        "libs/omniroute/v1/router_pb2_grpc.py",
        "libs/omniroute/v1/router_pb2.pyi",
        "libs/omniroute.egg-info/PKG-INFO",
        "services/edge/omniroute_edge/__pycache__/x.cpython-311.pyc",
        "charts/omniroute/Chart.yaml",
    ]:
        assert ignore.excluded(path), path
    for path in [
        "libs/omniroute/v1/__init__.py",
        "libs/pyproject.toml",
        "protos/omniroute/v1/router.proto",
        "services/router/omniroute_router/__init__.py",
        "requirements.txt",
    ]:
        assert not ignore.excluded(path), path


# ---- the replay ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_stage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The shared base stage, built once (the Dockerfiles' base stages are identical)."""
    work = tmp_path_factory.mktemp("docker")
    em = Emulator(dockerfile(SERVICES[0]), work / SERVICES[0])
    root = em.run_stage(stages(SERVICES[0])["base"])
    return root, em.envs["base"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SERVICES)
def test_replay_build_and_import(name: str, base_stage: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    em = Emulator(dockerfile(name), tmp_path)
    em.roots["base"], em.envs["base"] = base_stage
    st = stages(name)
    em.run_stage(st["build"])
    runtime = em.run_stage(st["runtime"])

    venv = runtime / "opt" / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    assert (site / f"omniroute_{name}" / "__init__.py").exists()
    assert (site / "omniroute" / "v1" / "router_pb2_grpc.py").exists(), "stubs generated in the build"
    assert not (site / "grpc_tools").exists(), "grpcio-tools is build-time only"
    assert not (site / "pip").exists(), "no pip in the runtime venv"

    checks = [
        f"import omniroute_{name}",
        "import omniroute.v1.router_pb2_grpc, omniroute.v1.executor_pb2_grpc",
        "import grpc, grpc_health.v1.health",
    ]
    if (ROOT / "services" / name / f"omniroute_{name}" / "__main__.py").exists():
        checks.append(f"import importlib.util as u; assert u.find_spec('omniroute_{name}.__main__')")
    if name == "admin" and (ROOT / "libs" / "omniroute" / "store" / "migrate.py").exists():
        checks.append("import importlib.util as u; assert u.find_spec('omniroute.store.migrate')")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(tmp_path)}
    for code in checks:
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-c", code],
            cwd=runtime / "tmp",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, f"{name}: {code}\n{proc.stderr[-3000:]}"
    # The image's interpreter is the venv's: nothing leaks in from this test run.
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert os.path.samefile(proc.stdout.strip(), venv)
