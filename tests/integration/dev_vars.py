"""Reading `.dev.vars` (the development secrets `scripts/dev-vars.sh` writes). A module of
its own, not part of `conftest`: tests import it by name, and the federation folder has a
`conftest` of its own that would shadow the root one under that name."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEV_VARS = REPO / ".dev.vars"


def read_dev_vars(path: Path = DEV_VARS) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote_char, value = value[0], value[1:-1]
            if quote_char == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        out[key.strip()] = value
    return out
