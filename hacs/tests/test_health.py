"""The entities this integration adds (HTTP API reachability, reply latency) and the repair
issues: Jarvis unreachable for a while, the key refused by a later check."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir

from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.jarvis.const import (
    DOMAIN,
    KEY_CHECK_INTERVAL,
    UNREACHABLE_REPAIR_AFTER,
)

from .conftest import Jarvis, entry_for, set_up


def _entity(
    hass: HomeAssistant, platform: str, entry: MockConfigEntry, key: str
) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(
        platform, DOMAIN, f"{entry.unique_id}_{key}"
    )
    assert entity_id is not None
    return entity_id


async def test_entities_and_device_describe_the_http_api(
    hass: HomeAssistant, jarvis: Jarvis, loaded: MockConfigEntry
) -> None:
    reachable = _entity(hass, "binary_sensor", loaded, "api")
    state = hass.states.get(reachable)
    assert state.state == STATE_ON
    assert state.attributes["device_class"] == "connectivity"
    assert hass.states.get(_entity(hass, "sensor", loaded, "reply_latency")).state == (
        STATE_UNKNOWN
    )
    # Only what MQTT does not give: two entities, both diagnostic.
    entries = er.async_entries_for_config_entry(er.async_get(hass), loaded.entry_id)
    assert sorted(e.unique_id for e in entries) == [
        f"{jarvis.name}_api",
        f"{jarvis.name}_reply_latency",
    ]
    assert {e.entity_category for e in entries} == {er.EntityCategory.DIAGNOSTIC}
    device = dr.async_get(hass).async_get_device(identifiers={(DOMAIN, jarvis.name)})
    assert device is not None
    assert device.sw_version == "0.1.0"
    assert device.model == "HTTP API"
    assert device.configuration_url == f"http://127.0.0.1:{jarvis.port}/health"


async def test_unreachable_for_a_while_raises_an_issue_that_clears_when_jarvis_answers(
    hass: HomeAssistant,
    jarvis: Jarvis,
    loaded: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    coordinator = loaded.runtime_data.coordinator
    reachable = _entity(hass, "binary_sensor", loaded, "api")
    issue_id = f"unreachable_{loaded.entry_id}"

    jarvis.stop()
    await coordinator.async_refresh()
    assert hass.states.get(reachable).state == STATE_OFF
    # Just gone (a restart, a hiccup): no issue yet.
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    freezer.tick(UNREACHABLE_REPAIR_AFTER - timedelta(seconds=1))
    await coordinator.async_refresh()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    freezer.tick(timedelta(seconds=1))
    await coordinator.async_refresh()
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {
        "title": jarvis.name,
        "host": "127.0.0.1",
        "port": str(jarvis.port),
        "minutes": "5",
    }

    jarvis.start()
    await coordinator.async_refresh()
    assert hass.states.get(reachable).state == STATE_ON
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_an_unreachable_jarvis_at_setup_is_retried_and_counted_across_retries(
    hass: HomeAssistant,
    jarvis: Jarvis,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    entry = entry_for(jarvis)
    jarvis.stop()
    await set_up(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    freezer.tick(UNREACHABLE_REPAIR_AFTER)
    await hass.config_entries.async_reload(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert issue_registry.async_get_issue(DOMAIN, f"unreachable_{entry.entry_id}")

    jarvis.start()
    await hass.config_entries.async_reload(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    assert not issue_registry.async_get_issue(DOMAIN, f"unreachable_{entry.entry_id}")


async def test_the_periodic_key_check_notices_a_new_key_and_starts_reauth(
    hass: HomeAssistant,
    jarvis: Jarvis,
    loaded: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    coordinator = loaded.runtime_data.coordinator
    jarvis.restart(key="rotated")
    # Within the interval the key is not checked again (each check spends a command).
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    freezer.tick(KEY_CHECK_INTERVAL)
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert not coordinator.last_update_success
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == "reauth"
    assert issue_registry.async_get_issue(DOMAIN, f"invalid_auth_{loaded.entry_id}")
    # Jarvis is still reachable: only the key is wrong.
    assert (
        hass.states.get(_entity(hass, "binary_sensor", loaded, "api")).state == STATE_ON
    )


async def test_removing_the_entry_removes_its_issues(
    hass: HomeAssistant,
    jarvis: Jarvis,
    issue_registry: ir.IssueRegistry,
) -> None:
    entry = entry_for(jarvis, key="stale")
    await set_up(hass, entry)
    assert issue_registry.async_get_issue(DOMAIN, f"invalid_auth_{entry.entry_id}")
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not issue_registry.async_get_issue(DOMAIN, f"invalid_auth_{entry.entry_id}")
