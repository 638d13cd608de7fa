"""Fixtures: a real Jarvis (the built binary) per test, on loopback ports, with no models.

The binary is `$JARVIS_BIN`, else `target/debug/jarvis` of the repository above `hacs/`
(`cargo build --bin jarvis`). Each Jarvis gets its own temporary directory for its audit
log, event memory and configuration (speech-to-text, text-to-speech and wake word off), and
an instance name of its own, which the integration uses as its unique id.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import socket
import subprocess
import time
from typing import Any
import uuid

import pytest

from homeassistant.const import CONF_API_KEY, CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant

from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.jarvis.const import DOMAIN

HACS_DIR = Path(__file__).resolve().parent.parent
JARVIS_BIN = Path(
    os.environ.get("JARVIS_BIN", HACS_DIR.parent / "target" / "debug" / "jarvis")
)
#: How long Jarvis may take to start serving.
START_LIMIT = 20.0
KEY = "hacs-test-key-1"


class Jarvis:
    """One `jarvis serve` process; `restart` keeps its port and may change its key."""

    def __init__(
        self,
        workdir: Path,
        key: str,
        *,
        zeroconf: bool = False,
        rate_limit_per_minute: int = 60,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.key = key
        self.zeroconf = zeroconf
        self.name = f"jarvis-hacs-{uuid.uuid4().hex[:8]}"
        self.host = "127.0.0.1"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log_path = workdir / "jarvis.log"
        self._config = workdir / "jarvis.toml"
        self._config.write_text(
            f'[wyoming.zeroconf]\nname = "{self.name}"\n'
            f"[http]\nrate_limit_per_minute = {rate_limit_per_minute}\n"
            "[stt]\nenabled = false\n[tts]\nenabled = false\n[wake]\nenabled = false\n"
        )

    @property
    def audit_path(self) -> Path:
        return self.workdir / "audit.jsonl"

    @property
    def events_path(self) -> Path:
        """Jarvis's event memory (SQLite)."""
        return self.workdir / "events.db"

    def start(self) -> None:
        """Starts Jarvis and waits for its "jarvis is serving" line."""
        if not JARVIS_BIN.is_file():
            pytest.fail(
                f"{JARVIS_BIN} does not exist: build it with `cargo build --bin jarvis` "
                "(or point JARVIS_BIN at a jarvis binary)"
            )
        bind = "0.0.0.0" if self.zeroconf else "127.0.0.1"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("JARVIS_") and key != "RUST_LOG"
        }
        env |= {
            "JARVIS_HTTP_ADDR": f"{bind}:{self.port}",
            "JARVIS_WYOMING_ADDR": f"{bind}:0",
            "JARVIS_HTTP_API_KEY": self.key,
            "JARVIS_AUDIT_PATH": str(self.audit_path),
            "JARVIS_EVENTS_PATH": str(self.events_path),
            "JARVIS_MODELS_DIR": str(self.workdir),
            "JARVIS_LOG_FORMAT": "json",
        }
        args = [str(JARVIS_BIN), "serve", "--config", str(self._config)]
        if not self.zeroconf:
            args.append("--no-zeroconf")
        offset = self._log_path.stat().st_size if self._log_path.exists() else 0
        with self._log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        ready = self._wait_for_serving(offset)
        self.port = int(ready["http"].rsplit(":", 1)[1])

    def _wait_for_serving(self, offset: int) -> dict[str, Any]:
        # Jarvis picks its own port (port 0) and says which in this line: the log is the only
        # place to learn it, so it is read until the line is there (or Jarvis exits).
        deadline = time.monotonic() + START_LIMIT
        assert self.process is not None
        while time.monotonic() < deadline:
            with self._log_path.open("rb") as log:
                log.seek(offset)
                for line in log.read().decode(errors="replace").splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if record.get("message") == "jarvis is serving":
                        return record
            if self.process.poll() is not None:
                pytest.fail(f"jarvis exited ({self.process.returncode}):\n{self.log()}")
            time.sleep(0.02)
        pytest.fail(f"jarvis did not serve within {START_LIMIT} s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM, then waits: afterwards the port refuses connections."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, key: str | None = None) -> None:
        """Stops and starts on the same port, with `key` if given."""
        self.stop()
        if key is not None:
            self.key = key
        self.start()

    def log(self) -> str:
        return (
            self._log_path.read_text(errors="replace")
            if self._log_path.exists()
            else ""
        )

    def audit(self) -> list[dict[str, Any]]:
        """The audit log's records (what Jarvis did, as Jarvis recorded it)."""
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Lets HA load `custom_components/jarvis`."""


@pytest.fixture(autouse=True)
def real_sockets(socket_enabled: None) -> None:
    """The tests talk to a real Jarvis: sockets on (still to 127.0.0.1 only, unless a test
    allows more)."""


@pytest.fixture
def jarvis(tmp_path: Path) -> Iterator[Jarvis]:
    """A running Jarvis with the key `KEY`."""
    served = Jarvis(tmp_path, KEY)
    served.start()
    yield served
    served.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def entry_for(jarvis: Jarvis, key: str | None = None) -> MockConfigEntry:
    """A config entry as the config flow creates it for `jarvis`."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=jarvis.name,
        unique_id=jarvis.name,
        data={
            CONF_HOST: jarvis.host,
            CONF_PORT: jarvis.port,
            CONF_API_KEY: jarvis.key if key is None else key,
        },
    )


async def set_up(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Adds `entry` and sets it up, whatever the outcome."""
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
async def loaded(hass: HomeAssistant, jarvis: Jarvis) -> MockConfigEntry:
    """The integration set up against `jarvis`."""
    entry = entry_for(jarvis)
    await set_up(hass, entry)
    return entry
