"""The Jarvis integration: Jarvis's HTTP API in Home Assistant.

It complements the MQTT entities Jarvis publishes itself (health, Proxmox, last command and
reply, the activity event; see the README) and never duplicates them. It adds what only the
HTTP API gives: the `jarvis.command` and `jarvis.event` actions with their answers as response
data, the API's reachability and reply latency as seen from Home Assistant, diagnostics, and
repair issues when Jarvis stays unreachable or refuses the key.
"""

from __future__ import annotations

from homeassistant.const import CONF_API_KEY, CONF_HOST, CONF_PORT, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from . import issues
from .api import JarvisClient
from .const import DOMAIN
from .coordinator import JarvisConfigEntry, JarvisCoordinator, JarvisRuntime, down_since
from .services import async_setup_services

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """The actions exist once, whatever the number of Jarvis entries."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: JarvisConfigEntry) -> bool:
    """Reads `/health` and checks the key before the entities appear: an unreachable Jarvis
    is retried later (ConfigEntryNotReady), a refused key starts a reauthentication."""
    client = JarvisClient(
        async_get_clientsession(hass),
        entry.data[CONF_HOST],
        entry.data[CONF_PORT],
        entry.data.get(CONF_API_KEY, ""),
    )
    coordinator = JarvisCoordinator(hass, entry, client)
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = JarvisRuntime(client=client, coordinator=coordinator)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: JarvisConfigEntry) -> bool:
    """Removes the entities; the issues stay until the problem is gone or the entry is."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: JarvisConfigEntry) -> None:
    """A removed entry leaves no issue behind."""
    issues.clear_all(hass, entry)
    down_since(hass).pop(entry.entry_id, None)
