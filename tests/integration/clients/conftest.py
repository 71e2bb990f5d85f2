"""Fixtures of the real sliding-sync client tests: the matrix-sdk client binary
(tests/sliding_client, built here if missing or outdated: cargo is incremental, and
`scripts/install.sh test` builds it ahead of `make test`) and a runner for one client process
whose JSON lines are read with deadlines."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CLIENT_DIR = REPO / "tests" / "sliding_client"
CLIENT_BIN = CLIENT_DIR / "target" / "debug" / "sliding_client"
NODE = REPO / "node_modules" / ".bin" / "node"

# A cold build of the client takes ~10 minutes on two cores; an up-to-date one a second.
BUILD_TIMEOUT = 40 * 60
# Longest a whole client scenario may take; every step inside is bounded more tightly.
RUN_TIMEOUT = 180.0


@pytest.fixture(scope="session")
def sliding_client() -> Path:
    """The client binary, built (incrementally) first. A failed build fails the test: the
    proof must not turn into a skip."""
    cargo = os.environ.get("CARGO", "cargo")
    try:
        r = subprocess.run([cargo, "build", "--locked", "--manifest-path", str(CLIENT_DIR / "Cargo.toml"),
                            "--target-dir", str(CLIENT_DIR / "target")],
                           capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"cannot build tests/sliding_client: {e}")
    if r.returncode != 0 or not CLIENT_BIN.exists():
        pytest.fail(f"cannot build tests/sliding_client (exit {r.returncode}):\n{r.stderr[-4000:]}")
    return CLIENT_BIN


@pytest.fixture(scope="session")
def node() -> Path:
    if not NODE.exists() or not (REPO / "node_modules" / "matrix-js-sdk").is_dir():
        pytest.fail("node_modules/.bin/node or matrix-js-sdk is missing (run `npm install`)")
    return NODE


class ClientRun:
    """One client process: `expect(event)` waits for the next JSON line with that `event`
    (an `error` line or the process ending first fails the test, with everything it printed)."""

    def __init__(self, cmd: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.cmd = cmd
        self.lines: list[dict] = []
        self.log_path = log_path
        self._stderr = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env={**os.environ, **(env or {})}, cwd=REPO)
        self.deadline = time.monotonic() + RUN_TIMEOUT
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self._q.put(json.loads(raw))
            except ValueError:
                self._q.put({"event": "garbage", "line": raw.decode(errors="replace")})
        self._q.put(None)

    def _describe(self) -> str:
        self._stderr.flush()
        tail = self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""
        printed = "\n".join(json.dumps(line)[:6000] for line in self.lines)
        return f"{' '.join(self.cmd[:2])}\n--- printed:\n{printed}\n--- stderr tail:\n{tail}"

    def expect(self, event: str) -> dict:
        while True:
            left = self.deadline - time.monotonic()
            try:
                line = self._q.get(timeout=max(left, 0.1))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"client still running after {RUN_TIMEOUT:.0f}s, waiting for {event!r}\n{self._describe()}")
            if line is None:
                self.proc.wait(10)
                raise AssertionError(f"client exited ({self.proc.returncode}) before {event!r}\n{self._describe()}")
            self.lines.append(line)
            if line.get("event") == "error":
                raise AssertionError(f"client failed in step {line.get('step')!r}: {line.get('error')}\n{self._describe()}")
            if line.get("event") == event:
                return line

    def finish(self) -> None:
        """The `done` line, then a clean exit."""
        self.expect("done")
        assert self.proc.wait(30) == 0, self._describe()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()


@pytest.fixture
def run_client(tmp_path):
    """`run_client(cmd)` -> a started ClientRun; every process is killed at teardown."""
    runs: list[ClientRun] = []

    def start(cmd: list[str], env: dict[str, str] | None = None) -> ClientRun:
        run = ClientRun([str(c) for c in cmd], tmp_path / f"client-{len(runs)}.stderr", env)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.kill()
