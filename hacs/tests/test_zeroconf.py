"""Zeroconf discovery of a real Jarvis: its `_jarvis._tcp` record, browsed on the network with
python-zeroconf for the type the manifest declares, starts the integration's flow.

Needs avahi-daemon (scripts/bootstrap.sh --test starts it, as for the Rust zeroconf tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address
import json
from pathlib import Path
import subprocess
import sys

import pytest
import pytest_socket

from homeassistant.config_entries import SOURCE_ZEROCONF, ConfigEntryState
from homeassistant.const import CONF_API_KEY, CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from custom_components.jarvis.const import DOMAIN

from .conftest import HACS_DIR, KEY, Jarvis

MANIFEST = HACS_DIR / "custom_components" / "jarvis" / "manifest.json"


@pytest.fixture
def advertised(tmp_path: Path) -> Iterator[Jarvis]:
    """A Jarvis listening on every interface with zeroconf on."""
    served = Jarvis(tmp_path, KEY, zeroconf=True)
    served.start()
    yield served
    served.stop()


def _browse(service_type: str, name: str) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("browse.py")),
            service_type,
            name,
            "10",
        ],
        capture_output=True,
        check=True,
        text=True,
        timeout=30,
    )
    return json.loads(result.stdout)


async def test_the_advertised_record_starts_the_flow_and_creates_the_entry(
    hass: HomeAssistant, advertised: Jarvis
) -> None:
    (service_type,) = json.loads(MANIFEST.read_text())["zeroconf"]
    record = await hass.async_add_executor_job(_browse, service_type, advertised.name)
    assert record, (
        f"no {service_type} record named {advertised.name} within 10 s: is avahi-daemon "
        f"running? (scripts/bootstrap.sh --test starts it)\n{advertised.log()}"
    )
    assert record["port"] == advertised.port
    assert record["properties"]["id"] == advertised.name
    assert record["properties"]["path"] == "/"

    addresses = [ip_address(a.split("%")[0]) for a in record["addresses"]]
    usable = [a for a in addresses if a.version == 4 and not a.is_link_local]
    assert usable, record
    # HA picks the address to use the same way: not link-local, not unspecified.
    pytest_socket.socket_allow_hosts(["127.0.0.1", *map(str, usable)])
    info = ZeroconfServiceInfo(
        ip_address=usable[0],
        ip_addresses=addresses,
        port=record["port"],
        hostname=record["hostname"],
        type=record["type"],
        name=record["name"],
        properties=record["properties"],
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=info
    )
    assert result["type"] is FlowResultType.FORM, result
    assert result["step_id"] == "zeroconf_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_API_KEY: KEY}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    entry = result["result"]
    assert entry.unique_id == advertised.name
    assert entry.data == {
        CONF_HOST: str(usable[0]),
        CONF_PORT: advertised.port,
        CONF_API_KEY: KEY,
    }
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
