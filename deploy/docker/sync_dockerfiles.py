"""Write services/<name>/Dockerfile from deploy/docker/service.Dockerfile.in.

python deploy/docker/sync_dockerfiles.py          # rewrite
python deploy/docker/sync_dockerfiles.py --check  # exit 1 if any Dockerfile is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "docker" / "service.Dockerfile.in"
# Service -> ports the image serves (service port, Prometheus metrics).
PORTS: dict[str, list[int]] = {
    "edge": [20128, 9464],
    "admin": [20129, 9464],
    "router": [50051, 9464],
    "executor": [50061, 9464],
    "accounting": [20131, 9464],
    "analytics": [20132, 9464],
}


def render(name: str) -> str:
    text = TEMPLATE.read_text()
    return (
        text.replace("@NAME@", name)
        .replace("@PKG@", name.replace("-", "_"))
        .replace("@PORTS@", " ".join(str(p) for p in PORTS[name]))
    )


def main(argv: list[str]) -> int:
    stale = []
    for name in PORTS:
        path = ROOT / "services" / name / "Dockerfile"
        want = render(name)
        if path.exists() and path.read_text() == want:
            continue
        stale.append(path)
        if "--check" not in argv:
            path.write_text(want)
    if "--check" in argv and stale:
        print("stale:", *(str(p.relative_to(ROOT)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
