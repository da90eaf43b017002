"""docs/settings.md is generated from ``Settings`` and must not go stale (``python -m infra.settings_table``)."""
from dataclasses import fields

import pytest

from infra import settings_table
from infra.settings import Settings
from tests.conftest import cdk_json_context


def test_the_settings_page_is_what_the_generator_writes():
    assert settings_table.PAGE.read_text(encoding="utf-8") == settings_table.render(), (
        "docs/settings.md is stale: run `.venv/bin/python -m infra.settings_table`")


def test_every_setting_is_on_the_page_and_in_cdk_json():
    page = settings_table.PAGE.read_text(encoding="utf-8")
    context = cdk_json_context()
    for f in fields(Settings):
        assert f"| `{f.name}` |" in page
        assert f.name in context, f"setting {f.name} has no default in cdk.json's context"


def test_a_setting_without_a_description_stops_the_generator(monkeypatch):
    monkeypatch.delitem(settings_table.DESCRIPTIONS, "region")
    with pytest.raises(settings_table.MissingDescription, match="region"):
        settings_table.render()
