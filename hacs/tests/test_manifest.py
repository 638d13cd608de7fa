"""The files HACS and hassfest read, checked against their documented rules (see
shared/docs/ha-integration.md §6 and hacs/README.md): hacs.json, manifest.json, translations,
services.yaml and the brand images."""

from __future__ import annotations

import json
from pathlib import Path
import re
import typing

from awesomeversion import AwesomeVersion
from PIL import Image
import yaml

from homeassistant.loader import Manifest

from .conftest import HACS_DIR

COMPONENT = HACS_DIR / "custom_components" / "jarvis"


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_hacs_json_has_the_required_name_and_only_known_keys() -> None:
    hacs = _json(HACS_DIR / "hacs.json")
    # HACS rejects extra keys (HACS_MANIFEST_JSON_SCHEMA, extra=PREVENT_EXTRA).
    allowed = {
        "name": str,
        "content_in_root": bool,
        "zip_release": bool,
        "filename": str,
        "hide_default_branch": bool,
        "country": (str, list),
        "homeassistant": str,
        "hacs": str,
        "persistent_directory": str,
        "render_readme": bool,
    }
    assert isinstance(hacs.get("name"), str) and hacs["name"]
    for key, value in hacs.items():
        assert key in allowed, f"hacs.json: unknown key {key!r}"
        assert isinstance(value, allowed[key]), f"hacs.json: {key} is {value!r}"
    if hacs.get("zip_release"):
        assert hacs.get("filename"), "zip_release needs filename"
    # The minimum HA is a version HA can compare, and the one the tests run on meets it.
    from homeassistant.const import __version__ as ha_version

    assert AwesomeVersion(ha_version) >= AwesomeVersion(hacs["homeassistant"])
    # The integration sits where HACS looks: one folder under custom_components/.
    assert [
        p.name for p in (HACS_DIR / "custom_components").iterdir() if p.is_dir()
    ] == ["jarvis"]
    assert (HACS_DIR / "README.md").is_file()


def test_manifest_has_what_hacs_and_hassfest_require() -> None:
    manifest = _json(COMPONENT / "manifest.json")
    # HACS: domain, name, documentation, issue_tracker, codeowners, version.
    for key in (
        "domain",
        "name",
        "documentation",
        "issue_tracker",
        "codeowners",
        "version",
    ):
        assert manifest.get(key), f"manifest.json lacks {key}"
    assert manifest["domain"] == COMPONENT.name
    for key in ("documentation", "issue_tracker"):
        assert re.fullmatch(r"https://\S+", manifest[key]), key
    assert "home-assistant.io/integrations" not in manifest["documentation"]
    assert manifest["codeowners"] and all(
        o.startswith("@") for o in manifest["codeowners"]
    )
    assert AwesomeVersion(manifest["version"]).valid
    # hassfest: every key known to HA's manifest, keys sorted domain, name, then the rest.
    known = set(typing.get_type_hints(Manifest))
    assert set(manifest) <= known, set(manifest) - known
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert manifest["iot_class"] in {
        "assumed_state",
        "calculated",
        "cloud_polling",
        "cloud_push",
        "local_polling",
        "local_push",
    }
    assert manifest["integration_type"] in {"device", "hub", "service"}
    assert manifest["config_flow"] is True and (COMPONENT / "config_flow.py").is_file()
    # The record Jarvis advertises (src/zeroconf.rs HTTP_SERVICE; test_zeroconf.py browses it).
    assert manifest["zeroconf"] == ["_jarvis._tcp.local."]
    assert manifest["requirements"] == []


def test_translations_match_strings_and_cover_every_service_field() -> None:
    strings = _json(COMPONENT / "strings.json")
    assert _json(COMPONENT / "translations" / "en.json") == strings
    services = yaml.safe_load((COMPONENT / "services.yaml").read_text())
    assert set(services) == set(strings["services"]) == {"command", "event"}
    for name, service in services.items():
        assert set(service["fields"]) == set(strings["services"][name]["fields"]), name
    icons = _json(COMPONENT / "icons.json")
    assert set(icons["services"]) == set(services)


def test_brand_images_exist_with_the_sizes_ha_expects() -> None:
    brand = COMPONENT / "brand"
    sizes = {
        "icon.png": (256, 256),
        "icon@2x.png": (512, 512),
    }
    for name, size in sizes.items():
        with Image.open(brand / name) as image:
            assert image.format == "PNG" and image.size == size, name
    for name, height in (
        ("logo.png", 128),
        ("logo@2x.png", 256),
        ("dark_logo.png", 128),
    ):
        with Image.open(brand / name) as image:
            assert image.format == "PNG" and image.height == height, name
            assert image.width >= image.height, name
