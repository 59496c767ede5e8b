"""A small Dockerfile reader and step emulator (no Docker engine here).

`parse()` reads instructions and stages; `DockerIgnore` applies .dockerignore rules the way
Docker does (last matching pattern wins, a pattern also matches every path below it);
`Emulator` replays COPY / ENV / WORKDIR / RUN of the stages into a directory that stands for
"/", so the RUN commands really run (pip, protoc) against the files Docker would send.
Absolute paths in COPY and WORKDIR, and absolute ENV values, are rebased under that directory;
the Dockerfiles keep every absolute path of their RUN lines in such ENV variables.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Instruction:
    cmd: str  # upper-case keyword
    args: str  # the rest, continuations joined
    flags: dict[str, str] = field(default_factory=dict)
    line: int = 0


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)


def parse(path: Path) -> tuple[list[Instruction], list[Stage]]:
    """Instructions before the first FROM (global ARGs) and the stages."""
    lines = path.read_text().splitlines()
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for no, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):  # comment inside a continuation
            continue
        if not buf:
            start = no
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        logical.append((start, buf))
        buf = ""
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for no, text in logical:
        keyword, _, rest = text.partition(" ")
        rest = rest.strip()
        flags: dict[str, str] = {}
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            key, _, value = flag[2:].partition("=")
            flags[key] = value
            rest = rest.strip()
        ins = Instruction(keyword.upper(), rest, flags, no)
        if ins.cmd == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append(ins)
        else:
            preamble.append(ins)
    return preamble, stages


class DockerIgnore:
    def __init__(self, path: Path):
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:] if negate else line
            pattern = pattern.strip("/")
            self.rules.append((negate, re.compile(self._regex(pattern))))

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                out += ".*"
                i += 2
            elif pattern[i] == "*":
                out += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                out += "[^/]"
                i += 1
            else:
                out += re.escape(pattern[i])
                i += 1
        return out

    def excluded(self, rel: str) -> bool:
        parts = rel.strip("/").split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for negate, rx in self.rules:
            if any(rx.fullmatch(p) for p in prefixes):
                result = not negate
        return result


# RUN lines of the runtime stage that set up the OS image itself (users, the system pip);
# they need root on the real image and are checked by test_dockerfiles, not replayed.
SYSTEM_ONLY = ("groupadd ", "useradd ", "python -m pip uninstall")


def _tree(top: Path) -> list[Path]:
    """Files and symlinks (to files or directories) below `top`, symlinks not followed."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        out += [here / d for d in dirnames if (here / d).is_symlink()]
        out += [here / f for f in filenames]
    return out


class Emulator:
    """Replays stages into <work>/<stage>/ (each a stand-in for that stage's "/")."""

    def __init__(self, dockerfile: Path, work: Path, context: Path = ROOT):
        self.dockerfile = dockerfile
        self.work = work
        self.context = context
        self.ignore = DockerIgnore(context / ".dockerignore")
        self.preamble, self.stages = parse(dockerfile)
        self.roots: dict[str, Path] = {}
        self.envs: dict[str, dict[str, str]] = {}
        self.shim = work / "shim"
        self.shim.mkdir(parents=True, exist_ok=True)
        python = self.shim / "python"
        if not python.exists():
            # The base image's `python`: this interpreter's base Python 3.11.
            python.symlink_to(getattr(sys, "_base_executable", sys.executable))

    def rebase(self, root: Path, path: str) -> Path:
        return root / path.lstrip("/") if path.startswith("/") else Path(path)

    def context_files(self, src: str) -> list[Path]:
        base = self.context / src
        if base.is_file():
            rel = base.relative_to(self.context).as_posix()
            return [] if self.ignore.excluded(rel) else [base]
        files = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for f in filenames:
                p = Path(dirpath) / f
                if not self.ignore.excluded(p.relative_to(self.context).as_posix()):
                    files.append(p)
        return files

    def run_stage(self, stage: Stage, *, skip_run: bool = False) -> Path:
        root = self.work / stage.name
        if stage.base in self.roots:  # FROM <earlier stage>: start from its files (hard links)
            if not root.exists():
                shutil.copytree(self.roots[stage.base], root, symlinks=True, copy_function=os.link)
            env = dict(self.envs[stage.base])
        else:
            root.mkdir(parents=True, exist_ok=True)
            env = {}
        workdir = root
        for ins in stage.instructions:
            if ins.cmd == "ENV":
                for item in shlex.split(ins.args):
                    key, _, value = item.partition("=")
                    value = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], ""), value)
                    env[key] = value
            elif ins.cmd == "WORKDIR":
                workdir = root / ins.args.lstrip("/")
                workdir.mkdir(parents=True, exist_ok=True)
            elif ins.cmd == "COPY":
                self._copy(ins, root, workdir)
            elif ins.cmd == "RUN" and not skip_run:
                if ins.args.startswith(SYSTEM_ONLY):
                    continue
                self._run(ins.args, root, workdir, env)
        self.roots[stage.name] = root
        self.envs[stage.name] = env
        return root

    def _copy(self, ins: Instruction, root: Path, workdir: Path) -> None:
        *srcs, dest = shlex.split(ins.args)
        dest_path = self.rebase(root, dest) if dest.startswith("/") else workdir / dest
        into_dir = dest.endswith("/") or len(srcs) > 1
        for src in srcs:
            if "from" in ins.flags:
                source = self.roots[ins.flags["from"]] / src.lstrip("/")
                files = _tree(source) if source.is_dir() else [source]
            else:
                source = self.context / src
                files = self.context_files(src)
            is_dir = source.is_dir()
            for path in files:
                target = (
                    dest_path / (path.relative_to(source) if is_dir else path.name)
                    if (is_dir or into_dir)
                    else dest_path
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                if path.is_symlink():
                    if target.exists() or target.is_symlink():
                        target.unlink()
                    target.symlink_to(os.readlink(path))
                elif "from" in ins.flags:  # stage to stage: same filesystem, hard links
                    if target.exists():
                        target.unlink()
                    os.link(path, target)
                else:
                    shutil.copy2(path, target)

    def _run(self, command: str, root: Path, workdir: Path, env: dict[str, str]) -> None:
        run_env = {
            k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
        }
        for key, value in env.items():
            run_env[key] = (
                str(self.rebase(root, value)) if value.startswith("/") and ":" not in value else value
            )
        run_env["PATH"] = f"{self.shim}:{run_env.get('PATH', '/usr/bin:/bin')}"
        proc = subprocess.run(
            ["/bin/sh", "-c", command], cwd=workdir, env=run_env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"{self.dockerfile}: RUN failed ({proc.returncode}): {command}\n"
                f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
            )
