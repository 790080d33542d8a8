"""The manifest for distribution: OAuth redirect URL on the request URL's host, token
rotation on, valid against Slack's schema; the other manifests keep rotation off."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.manifest import ManifestError, build_manifest, render_manifest_yaml
from tests.test_manifest import REQUEST_URL, manifest_schema, schema_errors

__all__ = ["manifest_schema"]  # the fixture, shared with tests/test_manifest.py


def test_the_distribution_manifest_validates_against_slacks_schema(
    manifest_schema: dict[str, Any],
) -> None:
    manifest = yaml.safe_load(
        render_manifest_yaml(build_manifest(request_url=REQUEST_URL, distribution=True))
    )

    assert schema_errors(manifest_schema, manifest) == []


def test_the_distribution_manifest_redirects_installs_to_bolts_path_and_rotates_tokens() -> None:
    manifest = build_manifest(request_url=REQUEST_URL, distribution=True)

    assert manifest["oauth_config"]["redirect_urls"] == [
        "https://milestones.example.com/slack/oauth_redirect"
    ]
    assert manifest["settings"]["token_rotation_enabled"] is True
    single = build_manifest(request_url=REQUEST_URL)
    assert manifest["oauth_config"]["scopes"] == single["oauth_config"]["scopes"]
    assert "redirect_urls" not in single["oauth_config"]
    assert single["settings"]["token_rotation_enabled"] is False
    assert build_manifest()["settings"]["token_rotation_enabled"] is False


def test_distribution_needs_a_public_request_url() -> None:
    with pytest.raises(ManifestError, match="--distribution needs --request-url"):
        build_manifest(distribution=True)


def test_the_cli_prints_the_distribution_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "--request-url", REQUEST_URL, "--distribution"]) == 0

    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == build_manifest(request_url=REQUEST_URL, distribution=True)
