"""Slack's OAuth v2 side of the emulator: installs into several workspaces, per-token
identity, token rotation and revocation.

Shapes follow Slack's documentation of `oauth.v2.access`
(https://api.slack.com/methods/oauth.v2.access) and of token rotation
(https://api.slack.com/authentication/rotation):

- `authorize(team_id, ...)` plays a person approving the install on Slack's page and
  returns the temporary `code` Slack appends to the redirect URL;
- `oauth.v2.access` exchanges a code once (`grant_type` absent or
  `authorization_code`), or a refresh token once (`grant_type=refresh_token`), with the
  app's client id and secret (HTTP Basic, as slack_sdk sends them, or form fields);
- with rotation on (`token_lifetime` set), bot tokens are `xoxe.xoxb-…` with an
  `expires_in` and a single-use `refresh_token` (`xoxe-1-…`);
- `uninstall(team_id)` revokes every token of that workspace (the app's side then gets
  the `app_uninstalled` event from the driver);
- `authorize_org(enterprise_id, ...)` plays an org-wide install in an Enterprise Grid
  org: `oauth.v2.access` answers `team: null`, the `enterprise` and
  `is_enterprise_install: true`, and its tokens belong to the org (`team_of_token`
  answers the org's id).
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]


class OAuthError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass
class Workspace:
    team_id: str
    team_name: str
    bot_user_id: str
    bot_id: str
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    is_enterprise_install: bool = False
    installed: bool = False


@dataclass
class IssuedToken:
    token: str
    team_id: str
    expires_at: float | None = None
    revoked: bool = False


@dataclass
class OAuthSide:
    client_id: str = "1111.2222"
    client_secret: str = "emulator-client-secret"
    app_id: str = "A0001"
    scopes: tuple[str, ...] = ()
    # Seconds an access token lives (None: no rotation, tokens never expire).
    token_lifetime: float | None = None
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> team
    codes: dict[str, str] = field(default_factory=dict)  # code -> team
    refreshes: list[str] = field(default_factory=list)  # refresh tokens presented, in order
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- what a test does

    def add_workspace(
        self,
        team_id: str,
        team_name: str,
        *,
        bot_user_id: str | None = None,
        enterprise_id: str | None = None,
        enterprise_name: str | None = None,
    ) -> Workspace:
        with self._lock:
            found = self.workspaces.get(team_id)
            if found is None:
                found = Workspace(
                    team_id=team_id,
                    team_name=team_name,
                    bot_user_id=bot_user_id or f"UB{team_id[1:]}"[:11],
                    bot_id=f"B{team_id[1:]}"[:11],
                    enterprise_id=enterprise_id,
                    enterprise_name=enterprise_name,
                )
                self.workspaces[team_id] = found
            return found

    def authorize(self, team_id: str, team_name: str | None = None) -> str:
        """A person approved the install in `team_id`: the code for the redirect."""
        with self._lock:
            self.add_workspace(team_id, team_name or team_id)
            code = f"{team_id}.{secrets.token_hex(12)}"
            self.codes[code] = team_id
            return code

    def authorize_org(self, enterprise_id: str, enterprise_name: str | None = None) -> str:
        """A person approved an org-wide install of Enterprise Grid org `enterprise_id`:
        the code for the redirect."""
        with self._lock:
            if enterprise_id not in self.workspaces:
                self.workspaces[enterprise_id] = Workspace(
                    team_id=enterprise_id,
                    team_name=enterprise_name or enterprise_id,
                    bot_user_id=f"UB{enterprise_id[1:]}"[:11],
                    bot_id=f"B{enterprise_id[1:]}"[:11],
                    enterprise_id=enterprise_id,
                    enterprise_name=enterprise_name or enterprise_id,
                    is_enterprise_install=True,
                )
            code = f"{enterprise_id}.{secrets.token_hex(12)}"
            self.codes[code] = enterprise_id
            return code

    def uninstall(self, team_id: str) -> None:
        """The workspace removed the app: every token of it stops working."""
        with self._lock:
            for issued in self.tokens.values():
                if issued.team_id == team_id:
                    issued.revoked = True
            for refresh, team in list(self.refresh_tokens.items()):
                if team == team_id:
                    del self.refresh_tokens[refresh]
            if team_id in self.workspaces:
                self.workspaces[team_id].installed = False

    def team_of_token(self, token: str) -> str | None:
        with self._lock:
            issued = self.tokens.get(token)
            return issued.team_id if issued is not None else None

    def tokens_of(self, team_id: str) -> list[str]:
        with self._lock:
            return [t.token for t in self.tokens.values() if t.team_id == team_id]

    # --- what the Web API side asks

    def knows(self, token: str) -> bool:
        with self._lock:
            return token in self.tokens

    def check(self, token: str, now: float) -> IssuedToken:
        with self._lock:
            issued = self.tokens[token]
            if issued.revoked:
                raise OAuthError("token_revoked")
            if issued.expires_at is not None and now >= issued.expires_at:
                raise OAuthError("token_expired")
            return issued

    def access(self, params: Mapping[str, Any], headers: Mapping[str, str], now: float) -> JsonDict:
        client_id, client_secret = _client_credentials(params, headers)
        if client_id != self.client_id:
            raise OAuthError("invalid_client_id")
        if client_secret != self.client_secret:
            raise OAuthError("bad_client_secret")
        grant = str(params.get("grant_type") or "authorization_code")
        with self._lock:
            if grant == "authorization_code":
                team_id = self.codes.pop(str(params.get("code") or ""), None)
                if team_id is None:
                    raise OAuthError("invalid_code")
                workspace = self.workspaces[team_id]
                workspace.installed = True
                return self._grant(workspace, now, installing=True)
            if grant == "refresh_token":
                refresh = str(params.get("refresh_token") or "")
                self.refreshes.append(refresh)
                team_id = self.refresh_tokens.pop(refresh, None)  # single use
                if team_id is None:
                    raise OAuthError("invalid_refresh_token")
                return self._grant(self.workspaces[team_id], now, installing=False)
            raise OAuthError("invalid_grant_type")

    def _grant(self, workspace: Workspace, now: float, *, installing: bool) -> JsonDict:
        rotating = self.token_lifetime is not None
        prefix = "xoxe.xoxb-1-" if rotating else "xoxb-"
        token = f"{prefix}{workspace.team_id}-{secrets.token_hex(12)}"
        expires_at = now + self.token_lifetime if self.token_lifetime is not None else None
        self.tokens[token] = IssuedToken(token, workspace.team_id, expires_at)
        answer: JsonDict = {
            "ok": True,
            "app_id": self.app_id,
            "access_token": token,
            "token_type": "bot",
            "scope": ",".join(self.scopes),
            "bot_user_id": workspace.bot_user_id,
            "team": (
                None  # an org-wide install belongs to the org, not to one workspace
                if workspace.is_enterprise_install
                else {"id": workspace.team_id, "name": workspace.team_name}
            ),
            "enterprise": (
                {"id": workspace.enterprise_id, "name": workspace.enterprise_name}
                if workspace.enterprise_id
                else None
            ),
            "is_enterprise_install": workspace.is_enterprise_install,
        }
        if installing:
            answer["authed_user"] = {"id": f"U{workspace.team_id[1:]}INST"[:11]}
        if rotating:
            refresh = f"xoxe-1-{secrets.token_hex(16)}"
            self.refresh_tokens[refresh] = workspace.team_id
            answer["refresh_token"] = refresh
            answer["expires_in"] = int(self.token_lifetime or 0)
        return answer


def _client_credentials(params: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[str, str]:
    auth = headers.get("authorization", "")
    if auth.startswith("Basic "):
        try:
            pair = base64.b64decode(auth[len("Basic ") :]).decode("utf-8")
        except ValueError:
            return "", ""
        client_id, _, client_secret = pair.partition(":")
        return client_id, client_secret
    return str(params.get("client_id") or ""), str(params.get("client_secret") or "")
