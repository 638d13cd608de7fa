"""The device every Jarvis entity of this integration belongs to.

Since HA 2026.8 a device belongs to one config entry, so this device is not merged with the
`Jarvis` device of the MQTT entities; its model says which side it is ("HTTP API").
"""

from __future__ import annotations

from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity

from .const import DOMAIN
from .coordinator import JarvisConfigEntry


class JarvisEntity(Entity):
    """Named after its device; unique ids start with the instance name."""

    _attr_has_entity_name = True

    def __init__(self, entry: JarvisConfigEntry, key: str) -> None:
        instance = entry.unique_id or entry.entry_id
        self._attr_unique_id = f"{instance}_{key}"
        health = entry.runtime_data.coordinator.data or {}
        host, port = entry.data[CONF_HOST], entry.data[CONF_PORT]
        shown = f"[{host}]" if ":" in host else host
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, instance)},
            name=entry.title,
            manufacturer="Jarvis",
            model="HTTP API",
            sw_version=health.get("version"),
            configuration_url=f"http://{shown}:{port}/health",
        )
