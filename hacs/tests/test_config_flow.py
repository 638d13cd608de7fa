"""The config flow against a real Jarvis: typed in, discovered over zeroconf, reauthenticated."""

from __future__ import annotations

from ipaddress import ip_address

from homeassistant.config_entries import SOURCE_USER, SOURCE_ZEROCONF, ConfigEntryState
from homeassistant.const import CONF_API_KEY, CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.jarvis.const import DOMAIN

from .conftest import KEY, Jarvis, entry_for, set_up


async def _user_flow(hass: HomeAssistant, data: dict) -> dict:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return await hass.config_entries.flow.async_configure(result["flow_id"], data)


async def test_user_flow_creates_an_entry_keyed_on_the_instance(
    hass: HomeAssistant, jarvis: Jarvis
) -> None:
    result = await _user_flow(
        hass, {CONF_HOST: jarvis.host, CONF_PORT: jarvis.port, CONF_API_KEY: KEY}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == jarvis.name
    assert result["data"] == {
        CONF_HOST: jarvis.host,
        CONF_PORT: jarvis.port,
        CONF_API_KEY: KEY,
    }
    entry = result["result"]
    assert entry.unique_id == jarvis.name
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    # Checking the key did nothing in Jarvis: no command reached its audit log.
    assert jarvis.audit() == []


async def test_user_flow_refuses_a_wrong_key_and_accepts_the_right_one(
    hass: HomeAssistant, jarvis: Jarvis
) -> None:
    data = {CONF_HOST: jarvis.host, CONF_PORT: jarvis.port, CONF_API_KEY: "wrong"}
    result = await _user_flow(hass, data)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], data | {CONF_API_KEY: KEY}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_API_KEY] == KEY


async def test_user_flow_with_no_key_for_a_keyed_jarvis_is_invalid_auth(
    hass: HomeAssistant, jarvis: Jarvis
) -> None:
    result = await _user_flow(
        hass, {CONF_HOST: jarvis.host, CONF_PORT: jarvis.port, CONF_API_KEY: ""}
    )
    assert result["errors"] == {"base": "invalid_auth"}


async def test_user_flow_cannot_connect_to_an_unreachable_jarvis(
    hass: HomeAssistant, closed_port: int
) -> None:
    result = await _user_flow(
        hass, {CONF_HOST: "127.0.0.1", CONF_PORT: closed_port, CONF_API_KEY: KEY}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}


async def test_the_same_jarvis_twice_is_already_configured_and_its_address_updated(
    hass: HomeAssistant, jarvis: Jarvis
) -> None:
    old = entry_for(jarvis)
    old.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        old, data=old.data | {CONF_PORT: jarvis.port + 1}
    )
    result = await _user_flow(
        hass, {CONF_HOST: jarvis.host, CONF_PORT: jarvis.port, CONF_API_KEY: KEY}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert old.data[CONF_PORT] == jarvis.port


def _discovered(jarvis: Jarvis, host: str, port: int) -> ZeroconfServiceInfo:
    """The record Jarvis advertises (see tests/zeroconf.rs), as HA's zeroconf passes it."""
    return ZeroconfServiceInfo(
        ip_address=ip_address(host),
        ip_addresses=[ip_address(host)],
        port=port,
        hostname="jarvis-host.local.",
        type="_jarvis._tcp.local.",
        name=f"{jarvis.name}._jarvis._tcp.local.",
        properties={"version": "0.1.0", "path": "/", "id": jarvis.name},
    )


async def test_zeroconf_discovery_asks_for_the_key_and_creates_the_entry(
    hass: HomeAssistant, jarvis: Jarvis
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=_discovered(jarvis, jarvis.host, jarvis.port),
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    assert result["description_placeholders"]["name"] == jarvis.name
    flows = hass.config_entries.flow.async_progress()
    assert flows[0]["context"]["title_placeholders"] == {"name": jarvis.name}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_API_KEY: "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_API_KEY: KEY}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == jarvis.name
    assert result["data"] == {
        CONF_HOST: jarvis.host,
        CONF_PORT: jarvis.port,
        CONF_API_KEY: KEY,
    }


async def test_zeroconf_for_a_configured_jarvis_follows_its_new_address(
    hass: HomeAssistant, jarvis: Jarvis, closed_port: int
) -> None:
    entry = entry_for(jarvis)
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, data=entry.data | {CONF_PORT: closed_port}
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=_discovered(jarvis, jarvis.host, jarvis.port),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_PORT] == jarvis.port
    assert entry.data[CONF_API_KEY] == KEY


async def test_zeroconf_for_an_unreachable_jarvis_aborts(
    hass: HomeAssistant, jarvis: Jarvis, closed_port: int
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_ZEROCONF},
        data=_discovered(jarvis, "127.0.0.1", closed_port),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "cannot_connect"


async def test_a_refused_key_at_setup_starts_reauth_and_raises_an_issue(
    hass: HomeAssistant, jarvis: Jarvis, issue_registry: ir.IssueRegistry
) -> None:
    entry = entry_for(jarvis, key="stale")
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == ["reauth"]
    issue = issue_registry.async_get_issue(DOMAIN, f"invalid_auth_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders == {"title": jarvis.name}

    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {CONF_API_KEY: "still-wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {CONF_API_KEY: KEY}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert entry.data[CONF_API_KEY] == KEY
    assert entry.state is ConfigEntryState.LOADED
    assert (
        issue_registry.async_get_issue(DOMAIN, f"invalid_auth_{entry.entry_id}") is None
    )


async def test_reauth_against_another_jarvis_aborts(
    hass: HomeAssistant, jarvis: Jarvis
) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="jarvis-elsewhere",
        unique_id="jarvis-elsewhere",
        data={CONF_HOST: jarvis.host, CONF_PORT: jarvis.port, CONF_API_KEY: "stale"},
    )
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_API_KEY: KEY}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_jarvis"
    assert entry.data[CONF_API_KEY] == "stale"
