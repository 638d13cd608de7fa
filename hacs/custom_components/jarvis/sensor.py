"""How long Jarvis took to answer the last `jarvis.command`, as Home Assistant measured it
(request sent → reply read). The MQTT entities carry the reply itself, not its latency."""

from __future__ import annotations

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import SIGNAL_REPLY
from .coordinator import JarvisConfigEntry
from .entity import JarvisEntity


async def async_setup_entry(
    hass: HomeAssistant,
    entry: JarvisConfigEntry,
    async_add_entities: AddEntitiesCallback,
) -> None:
    """One latency entity per Jarvis."""
    async_add_entities([JarvisReplyLatency(entry)])


class JarvisReplyLatency(JarvisEntity, SensorEntity):
    """Unknown until the first command; then the last command's round trip."""

    _attr_device_class = SensorDeviceClass.DURATION
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_native_unit_of_measurement = UnitOfTime.MILLISECONDS
    _attr_suggested_display_precision = 0
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_translation_key = "reply_latency"
    _attr_should_poll = False

    def __init__(self, entry: JarvisConfigEntry) -> None:
        super().__init__(entry, "reply_latency")
        self._entry = entry

    async def async_added_to_hass(self) -> None:
        """Follows the replies."""
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                SIGNAL_REPLY.format(self._entry.entry_id),
                self.async_write_ha_state,
            )
        )

    @property
    def native_value(self) -> float | None:
        """Milliseconds, or None before the first command."""
        reply = self._entry.runtime_data.last_reply
        return None if reply is None else round(reply.latency_ms, 1)
