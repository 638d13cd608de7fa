"""The blueprints in blueprints/automation/jarvis: each one loads with Home Assistant's own
blueprint schema, and, filled with inputs, becomes an automation that Home Assistant accepts
(triggers, conditions and actions validated as for a user's automation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeassistant.components.automation.config import (
    ValidationStatus,
    async_validate_config_item,
)
from homeassistant.components.blueprint import models, schemas
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import yaml as hayaml

BLUEPRINTS = Path(__file__).resolve().parents[2] / "blueprints" / "automation" / "jarvis"

INPUTS = {
    "announce_person.yaml": {
        "arrival_events": ["event.front_door_arrival"],
        "tts_entity": "tts.piper",
        "media_players": ["media_player.kitchen"],
        "satellites": ["assist_satellite.hall"],
    },
    "notify_failed_action.yaml": {
        "activity_event": "event.jarvis_activity",
        "notify_action": "notify.notify",
        "include_refusals": True,
    },
}


def test_every_blueprint_is_tested() -> None:
    assert sorted(p.name for p in BLUEPRINTS.glob("*.yaml")) == sorted(INPUTS)


@pytest.mark.parametrize("name", sorted(INPUTS))
async def test_a_blueprint_filled_in_is_a_valid_automation(hass: HomeAssistant, name: str) -> None:
    assert await async_setup_component(hass, "homeassistant", {})
    data = hayaml.load_yaml(str(BLUEPRINTS / name))
    blueprint = models.Blueprint(
        data, expected_domain="automation", schema=schemas.BLUEPRINT_SCHEMA
    )
    inputs = models.BlueprintInputs(
        blueprint, {"use_blueprint": {"path": f"jarvis/{name}", "input": INPUTS[name]}}
    )
    inputs.validate()
    config = dict(inputs.async_substitute())
    config["id"] = name
    validated = await async_validate_config_item(hass, name, config)
    assert validated is not None
    assert validated.validation_status == ValidationStatus.OK, validated.validation_error


async def test_a_missing_input_is_refused(hass: HomeAssistant) -> None:
    data = hayaml.load_yaml(str(BLUEPRINTS / "announce_person.yaml"))
    blueprint = models.Blueprint(
        data, expected_domain="automation", schema=schemas.BLUEPRINT_SCHEMA
    )
    inputs = models.BlueprintInputs(
        blueprint, {"use_blueprint": {"path": "jarvis/announce_person.yaml", "input": {}}}
    )
    with pytest.raises(Exception, match="arrival_events"):
        inputs.validate()
