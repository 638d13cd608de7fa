"""Whether Home Assistant reaches Jarvis's HTTP API (MQTT cannot say: its entities only show
that Jarvis reaches the broker)."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .coordinator import JarvisConfigEntry, JarvisCoordinator
from .entity import JarvisEntity


async def async_setup_entry(
    hass: HomeAssistant,
    entry: JarvisConfigEntry,
    async_add_entities: AddEntitiesCallback,
) -> None:
    """One connectivity entity per Jarvis."""
    async_add_entities([JarvisApiReachable(entry)])


class JarvisApiReachable(
    JarvisEntity, CoordinatorEntity[JarvisCoordinator], BinarySensorEntity
):
    """On while `/health` answers; off (never unavailable) while it does not."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC
    _attr_translation_key = "api"

    def __init__(self, entry: JarvisConfigEntry) -> None:
        CoordinatorEntity.__init__(self, entry.runtime_data.coordinator)
        JarvisEntity.__init__(self, entry, "api")

    @property
    def available(self) -> bool:
        """Unreachable is this entity's "off", not its absence."""
        return True

    @property
    def is_on(self) -> bool:
        """The last `/health` read was answered."""
        return self.coordinator.reachable
