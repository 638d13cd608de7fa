"""`jarvis.command` and `jarvis.event` against a real Jarvis: the answers as response data, and
each way a call can fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import voluptuous as vol

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_API_KEY, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.jarvis.const import DOMAIN

from .conftest import KEY, Jarvis, entry_for, set_up


async def _command(hass: HomeAssistant, data: dict, response: bool = True):
    return await hass.services.async_call(
        DOMAIN, "command", data, blocking=True, return_response=response
    )


def _latency_entity(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{entry.unique_id}_reply_latency"
    )
    assert entity_id is not None
    return entity_id


async def test_command_returns_jarvis_answer_as_response_data(
    hass: HomeAssistant, jarvis: Jarvis, loaded: MockConfigEntry
) -> None:
    latency = _latency_entity(hass, loaded)
    assert hass.states.get(latency).state == STATE_UNKNOWN

    response = await _command(hass, {"text": "ping"})
    assert response["reply"] == "I'm here. Proxmox isn't set up yet."
    assert response["handled"] is True
    assert response["intent"] == "Ping"
    assert response["pending_confirmation"] is False
    assert response["conversation_id"]

    # Jarvis recorded the command as an HTTP one: it really went there.
    (record,) = [r for r in jarvis.audit() if r.get("text") == "ping"]
    assert record["channel"] == "http"
    # The round trip as HA measured it.
    state = hass.states.get(latency)
    assert float(state.state) > 0
    assert state.attributes["unit_of_measurement"] == "ms"


async def test_command_continues_the_conversation_it_is_given(
    hass: HomeAssistant, jarvis: Jarvis, loaded: MockConfigEntry
) -> None:
    response = await _command(hass, {"text": "ping", "conversation_id": "ha-kitchen-7"})
    assert response["conversation_id"] == "ha-kitchen-7"


async def test_command_without_response_variable_still_runs(
    hass: HomeAssistant, jarvis: Jarvis, loaded: MockConfigEntry
) -> None:
    assert await _command(hass, {"text": "what can you do?"}, response=False) is None
    assert [r["text"] for r in jarvis.audit() if "text" in r] == ["what can you do?"]


async def test_command_text_jarvis_refuses_is_a_validation_error(
    hass: HomeAssistant, jarvis: Jarvis, loaded: MockConfigEntry
) -> None:
    with pytest.raises(ServiceValidationError) as raised:
        await _command(hass, {"text": "x" * 2001})
    assert raised.value.translation_key == "rejected"
    assert raised.value.translation_placeholders["status"] == "413"
    assert "2000 characters" in raised.value.translation_placeholders["error"]


async def test_command_empty_text_is_refused_before_jarvis(
    hass: HomeAssistant, jarvis: Jarvis, loaded: MockConfigEntry
) -> None:
    with pytest.raises(vol.Invalid, match="length"):
        await _command(hass, {"text": "   "})
    assert jarvis.audit() == []


async def test_command_to_a_stopped_jarvis_cannot_connect(
    hass: HomeAssistant, jarvis: Jarvis, loaded: MockConfigEntry
) -> None:
    jarvis.stop()
    with pytest.raises(HomeAssistantError) as raised:
        await _command(hass, {"text": "ping"})
    assert raised.value.translation_key == "cannot_connect"


async def test_command_over_the_rate_limit_says_so(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    limited = Jarvis(tmp_path, KEY, rate_limit_per_minute=2)
    limited.start()
    try:
        await set_up(hass, entry_for(limited))  # the key check spends one
        await _command(hass, {"text": "ping"})
        with pytest.raises(HomeAssistantError) as raised:
            await _command(hass, {"text": "ping"})
        assert raised.value.translation_key == "rate_limited"
        assert "try again in" in raised.value.translation_placeholders["error"]
    finally:
        limited.stop()


async def test_a_key_refused_later_raises_an_issue_and_starts_reauth(
    hass: HomeAssistant,
    jarvis: Jarvis,
    loaded: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    # HA's pooled connection to the old process is now closed: the call still reaches the
    # new one (sent again after EPIPE).
    jarvis.restart(key="hacs-test-key-2")
    with pytest.raises(HomeAssistantError) as raised:
        await _command(hass, {"text": "ping"})
    assert raised.value.translation_key == "invalid_auth", (
        raised.value.translation_placeholders
    )
    issue_id = f"invalid_auth_{loaded.entry_id}"
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is not None
    await hass.async_block_till_done()
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == "reauth"

    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_API_KEY: "hacs-test-key-2"}
    )
    assert result["reason"] == "reauth_successful"
    await hass.async_block_till_done()
    assert loaded.state is ConfigEntryState.LOADED
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    response = await _command(hass, {"text": "ping"})
    assert response["handled"] is True


async def test_with_two_jarvis_the_call_names_one(
    hass: HomeAssistant, jarvis: Jarvis, loaded: MockConfigEntry, tmp_path: Path
) -> None:
    other = Jarvis(tmp_path / "other", KEY)
    other.start()
    try:
        second = entry_for(other)
        await set_up(hass, second)
        with pytest.raises(ServiceValidationError) as raised:
            await _command(hass, {"text": "ping"})
        assert raised.value.translation_key == "several_entries"
        await _command(hass, {"text": "ping", "config_entry_id": second.entry_id})
        assert [r["text"] for r in other.audit() if "text" in r] == ["ping"]
        assert [r for r in jarvis.audit() if "text" in r] == []
    finally:
        other.stop()
