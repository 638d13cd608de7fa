"""Diagnostics, through HA's own download endpoint: useful, and without the key."""

from __future__ import annotations

import json

import pytest

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.jarvis.const import DOMAIN

from .conftest import KEY, Jarvis


async def test_diagnostics_show_the_api_and_redact_the_key(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    jarvis: Jarvis,
    loaded: MockConfigEntry,
) -> None:
    await hass.services.async_call(
        DOMAIN, "command", {"text": "ping"}, blocking=True, return_response=True
    )
    jarvis.restart(key="rotated-secret-key")
    with pytest.raises(HomeAssistantError):
        await hass.services.async_call(
            DOMAIN, "command", {"text": "ping"}, blocking=True, return_response=True
        )

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded)

    assert diagnostics["entry"]["data"]["api_key"] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["port"] == jarvis.port
    assert diagnostics["entry"]["unique_id"] == jarvis.name
    assert diagnostics["health"]["instance"] == jarvis.name
    assert diagnostics["health"]["version"] == "0.1.0"
    assert diagnostics["api"]["reachable"] is True
    assert diagnostics["last_reply"]["latency_ms"] > 0
    assert diagnostics["last_error"].startswith("JarvisAuthError")
    assert diagnostics["issues"] == [f"invalid_auth_{loaded.entry_id}"]
    # Neither key appears anywhere in the file.
    text = json.dumps(diagnostics)
    assert KEY not in text
    assert "rotated-secret-key" not in text
