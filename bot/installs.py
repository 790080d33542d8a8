"""Distribution: any workspace installs the bot through Slack's OAuth (bolt's own
`OAuthSettings`), and each workspace is served with its own token.

- Installations and OAuth states live in the app's database, in the tables of
  slack_sdk's SQLAlchemy stores (created by the migration 0008, never by the stores).
- Bot and refresh tokens are encrypted at rest with a `MultiFernet` over
  `TOKEN_ENCRYPTION_KEY` (newest key first: it encrypts; every key decrypts, so a key
  is rotated by putting the new one in front).
- Token rotation: a token that expires soon is refreshed when it is read, under a row
  lock on its `slack_bots` row, and stored in the same transaction; a second process
  waiting on the lock reads the new token and refreshes nothing.
- `app_uninstalled` / `tokens_revoked` delete the workspace's bot and hold its
  deliveries at once (domain.outbox's holds, with the reason); a new install of that
  workspace releases them.
- `InstalledClients` gives the outbox delivery the Web API client of the workspace an
  intent belongs to; with no installation it refuses with `not_installed`, which holds
  the workspace like a revoked token does.

No token ever reaches a log line: the store logs nothing of its rows, errors name the
workspace, never the token.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from slack_bolt import App, BoltContext, BoltResponse
from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store.models.bot import Bot as SlackBot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from slack_sdk.oauth.token_rotation import TokenRotator
from slack_sdk.web import SlackResponse
from sqlalchemy import Engine, and_, desc, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.manifest import BOT_SCOPES, REDIRECT_PATH
from bot.settings import DistributionCredentials
from domain import outbox
from domain.model import Contract, Party
from domain.policy import Clock

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
# A token this close to its expiry is refreshed before it is used (bolt's default).
REFRESH_BEFORE = timedelta(minutes=120)
CLIENT_TTL = 30.0  # seconds a workspace's client is reused before its token is read again
STATE_SECONDS = 600  # an install started must finish within this
NOT_INSTALLED = "not_installed"
UNINSTALLED = "app_uninstalled"
REVOKED = "tokens_revoked"
_SEALED = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")


class TokenCipher:
    """Tokens encrypted at rest: the first key encrypts, every key decrypts."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()

    def is_sealed(self, value: str) -> bool:
        try:
            self._fernet.decrypt(value.encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, sealed: str) -> str:
        """Encrypted again with the newest key (after a key rotation)."""
        return self._fernet.rotate(sealed.encode()).decode()


class EncryptedInstallationStore(SQLAlchemyInstallationStore):
    """slack_sdk's SQLAlchemy store, its token columns encrypted, refreshing a token that
    expires soon under a row lock (see the module's docstring)."""

    def __init__(
        self,
        *,
        client_id: str,
        engine: Engine,
        cipher: TokenCipher,
        rotator: TokenRotator | None = None,
        refresh_before: timedelta = REFRESH_BEFORE,
    ) -> None:
        super().__init__(client_id=client_id, engine=engine, logger=log)
        self.cipher = cipher
        self.rotator = rotator
        self.refresh_before = refresh_before

    # --- encryption on the way in and out

    def _sealed_copy(self, values: dict[str, Any]) -> dict[str, Any]:
        for name in _SEALED:
            value = values.get(name)
            if isinstance(value, str) and value and not self.cipher.is_sealed(value):
                values[name] = self.cipher.seal(value)
        return values

    def _opened(self, value: Any) -> Any:
        return self.cipher.open(value) if isinstance(value, str) and value else value

    def save(self, installation: Installation) -> None:
        sealed = Installation(**self._sealed_copy(_installation_fields(installation)))
        super().save(sealed)  # which saves its bot through `save_bot`, sealed already

    def save_bot(self, bot: SlackBot) -> None:
        super().save_bot(SlackBot(**self._sealed_copy(_bot_fields(bot))))

    def build_installation_entity(self, row: Any) -> Installation:  # type: ignore[override]
        opened = {key: row[key] for key in row.keys()}
        for name in _SEALED:
            opened[name] = self._opened(opened.get(name))
        return super().build_installation_entity(opened)

    def build_bot_entity(self, row: Any) -> SlackBot:  # type: ignore[override]
        opened = {key: row[key] for key in row.keys()}
        for name in ("bot_token", "bot_refresh_token"):
            opened[name] = self._opened(opened.get(name))
        return super().build_bot_entity(opened)

    # --- reads refresh a token that expires soon

    def find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> SlackBot | None:
        found = super().find_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        if found is not None and self._expiring(found.bot_token_expires_at):
            self.refresh(found.enterprise_id, found.team_id)
            found = super().find_bot(
                enterprise_id=enterprise_id,
                team_id=team_id,
                is_enterprise_install=is_enterprise_install,
            )
        return found

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        def find() -> Installation | None:
            return super(EncryptedInstallationStore, self).find_installation(
                enterprise_id=enterprise_id,
                team_id=team_id,
                user_id=user_id,
                is_enterprise_install=is_enterprise_install,
            )

        found = find()
        if found is not None and self._expiring(found.bot_token_expires_at):
            self.refresh(found.enterprise_id, found.team_id)
            found = find()
        return found

    def _expiring(self, expires_at: int | None) -> bool:
        if self.rotator is None or expires_at is None:
            return False
        return expires_at <= time.time() + self.refresh_before.total_seconds()

    def refresh(self, enterprise_id: str | None, team_id: str | None) -> bool:
        """Refresh the workspace's bot token if it still expires soon once its row is
        locked; the new token is stored in that transaction. True if refreshed here."""
        assert self.rotator is not None
        bots, c = self.bots, self.bots.c
        where = and_(
            c.client_id == self.client_id,
            c.enterprise_id == enterprise_id,
            c.team_id == team_id,
            c.bot_token.is_not(None),
        )
        with self.engine.begin() as conn:
            row = (
                conn.execute(
                    select(bots)
                    .where(where)
                    .order_by(desc(c.installed_at))
                    .limit(1)
                    .with_for_update()
                )
                .mappings()
                .first()
            )
            if row is None:
                return False
            current = self.build_bot_entity(row)
            if not self._expiring(current.bot_token_expires_at):
                return False  # another process refreshed it while we waited for the lock
            minutes = int(self.refresh_before.total_seconds() // 60)
            try:
                refreshed = self.rotator.perform_bot_token_rotation(
                    bot=current, minutes_before_expiration=minutes
                )
            except SlackTokenRotationError as error:
                code = error.api_error.response.get("error")
                log.warning("workspace %s: its token could not be refreshed (%s)", team_id, code)
                return False
            if refreshed is None:
                return False
            expires = refreshed.bot_token_expires_at
            values = {
                "bot_token": self.cipher.seal(refreshed.bot_token or ""),
                "bot_refresh_token": self.cipher.seal(refreshed.bot_refresh_token or ""),
                "bot_token_expires_at": (
                    datetime.fromtimestamp(expires, UTC).replace(tzinfo=None)
                    if expires is not None
                    else None
                ),
            }
            conn.execute(update(bots).where(c.id == row["id"]).values(**values))
            ic = self.installations.c
            conn.execute(
                update(self.installations)
                .where(
                    ic.client_id == self.client_id,
                    ic.enterprise_id == enterprise_id,
                    ic.team_id == team_id,
                    ic.bot_token.is_not(None),
                )
                .values(**values)
            )
        log.info("refreshed the bot token of workspace %s", team_id or enterprise_id)
        return True


def _installation_fields(installation: Installation) -> dict[str, Any]:
    fields = dict(vars(installation))
    fields.pop("custom_values", None)
    return {
        key: fields.get(key)
        for key in (
            "app_id",
            "enterprise_id",
            "enterprise_name",
            "enterprise_url",
            "team_id",
            "team_name",
            "bot_token",
            "bot_id",
            "bot_user_id",
            "bot_scopes",
            "bot_refresh_token",
            "bot_token_expires_at",
            "user_id",
            "user_token",
            "user_scopes",
            "user_refresh_token",
            "user_token_expires_at",
            "incoming_webhook_url",
            "incoming_webhook_channel",
            "incoming_webhook_channel_id",
            "incoming_webhook_configuration_url",
            "is_enterprise_install",
            "token_type",
            "installed_at",
        )
    }


def _bot_fields(bot: SlackBot) -> dict[str, Any]:
    fields = dict(vars(bot))
    return {
        key: fields.get(key)
        for key in (
            "app_id",
            "enterprise_id",
            "enterprise_name",
            "team_id",
            "team_name",
            "bot_token",
            "bot_id",
            "bot_user_id",
            "bot_scopes",
            "bot_refresh_token",
            "bot_token_expires_at",
            "is_enterprise_install",
            "installed_at",
        )
    }


# --- the client of the workspace an intent belongs to ------------------------------


class NotInstalled(SlackApiError):
    """No installation serves this workspace (uninstalled, or its token revoked)."""

    def __init__(self, team_id: str | None) -> None:
        response = SlackResponse(
            client=None,
            http_verb="POST",
            api_url="",
            req_args={},
            data={"ok": False, "error": NOT_INSTALLED},
            headers={},
            status_code=200,
        )
        message = f"the app is not installed in workspace {team_id}"
        super().__init__(message, response)  # type: ignore[no-untyped-call]


class InstalledClients:
    """`client_for(team_id, enterprise_id=...)`: a Web API client with the bot token of
    the installation that serves that workspace, kept for `ttl` seconds (an install or
    uninstall in this process forgets it at once; in another, a revoked token is refused
    by Slack, which holds the workspace too).

    Which installation: the workspace's own; else the org-wide one of its Enterprise
    Grid org — the org the intent recorded (the request that wrote it named it), else
    the one a request from that workspace named last, else the only org-wide one. With
    several orgs and none known, the workspace's intents wait (held) as not installed.
    """

    def __init__(
        self,
        store: EncryptedInstallationStore,
        make_client: Callable[[str], WebClient],
        *,
        ttl: float = CLIENT_TTL,
    ) -> None:
        self.store = store
        self.make_client = make_client
        self.ttl = ttl
        self._known: dict[tuple[str, str], tuple[float, WebClient]] = {}
        self._lock = threading.Lock()

    def forget(self, team_id: str | None, *, enterprise_id: str | None = None) -> None:
        """Forget the clients of that workspace; given an org (an org-wide install
        changed), those of every workspace it may serve: its own, and those whose org
        was not named."""

        def forgotten(key: tuple[str, str]) -> bool:
            org, team = key
            return bool(team_id and team == team_id) or bool(
                enterprise_id and org in ("", enterprise_id)
            )

        with self._lock:
            self._known = {key: known for key, known in self._known.items() if not forgotten(key)}

    def client_for(self, team_id: str | None, *, enterprise_id: str | None = None) -> WebClient:
        now = time.monotonic()
        key = (enterprise_id or "", team_id or "")
        with self._lock:
            known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        client = self._look_up(team_id, enterprise_id)
        with self._lock:
            self._known[key] = (now + self.ttl, client)
        return client

    def installations(self) -> list[outbox.Speaker]:
        """Every installation with a bot token, newest first: whom to ask when the
        owning workspace's bot is not in a Slack Connect channel (bot.delivery)."""
        c = self.store.bots.c
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(c.enterprise_id, c.team_id, c.is_enterprise_install)
                .where(c.client_id == self.store.client_id, c.bot_token.is_not(None))
                .order_by(desc(c.installed_at))
            ).all()
        found: dict[outbox.Speaker, None] = {}
        for enterprise_id, team_id, org_wide in rows:
            found[outbox.Speaker(enterprise_id, None if org_wide else team_id)] = None
        return list(found)

    def _look_up(self, team_id: str | None, enterprise_id: str | None) -> WebClient:
        bot = None
        if team_id:
            c = self.store.bots.c
            with self.store.engine.connect() as conn:
                # The workspace's own install, in an Enterprise Grid org or not.
                own = conn.execute(
                    select(c.enterprise_id)
                    .where(
                        c.client_id == self.store.client_id,
                        c.team_id == team_id,
                        c.is_enterprise_install.is_not(True),
                    )
                    .order_by(desc(c.installed_at))
                    .limit(1)
                ).first()
            if own is not None:
                bot = self.store.find_bot(enterprise_id=own[0], team_id=team_id)
            if bot is None:
                bot = self._org_wide_bot(team_id, enterprise_id)
        elif enterprise_id:
            bot = self._org_bot(enterprise_id)
        if bot is None or not bot.bot_token:
            raise NotInstalled(team_id or enterprise_id)
        return self.make_client(bot.bot_token)

    def _org_bot(self, enterprise_id: str) -> SlackBot | None:
        return self.store.find_bot(
            enterprise_id=enterprise_id, team_id=None, is_enterprise_install=True
        )

    def _org_wide_bot(self, team_id: str, enterprise_id: str | None) -> SlackBot | None:
        """An org-wide install (Enterprise Grid) serves every workspace of its org: the
        org the intent names, else the one a request from the workspace named last,
        else the only org-wide install there is."""
        if enterprise_id:
            return self._org_bot(enterprise_id)
        c = self.store.bots.c
        with self.store.engine.connect() as conn:
            orgs = list(
                conn.execute(
                    select(c.enterprise_id)
                    .where(c.client_id == self.store.client_id, c.is_enterprise_install.is_(True))
                    .distinct()
                    .limit(2)
                ).scalars()
            )
        if len(orgs) > 1:
            with Session(self.store.engine) as session:
                recorded = outbox.enterprise_of_team(session, team_id)
            if recorded is not None:
                return self._org_bot(recorded)
        if len(orgs) != 1:
            log.info("workspace %s has no installation of its own", team_id)
            return None
        return self._org_bot(orgs[0])


# --- the OAuth flow -----------------------------------------------------------------


SUCCESS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>milestone-bot is installed</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>milestone-bot is installed in {team}</h1>
<p>Next, in the Slack channel where you work with your client or freelancer:</p>
<ol><li>invite the bot: <code>/invite @milestone-bot</code></li>
<li>see what it does: <code>/milestone help</code></li></ol>
<p>You can close this page.</p></body></html>
"""

FAILURE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>milestone-bot was not installed</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>milestone-bot was not installed</h1><p>{reason}</p>
<p><a href="{install_path}">Try again</a></p></body></html>
"""


def oauth_settings(
    credentials: DistributionCredentials,
    *,
    engine: Engine,
    store: EncryptedInstallationStore,
    on_installed: Callable[[Installation], None],
) -> OAuthSettings:
    """bolt's OAuth settings: its default paths, the manifest's scopes, our stores, and
    pages that say what to do next."""

    def success(args: SuccessArgs) -> BoltResponse:
        installation = args.installation
        on_installed(installation)
        team = installation.team_name or installation.enterprise_name or "your workspace"
        return BoltResponse(
            status=200,
            body=SUCCESS_PAGE.format(team=html.escape(team)),
            headers={"Content-Type": "text/html; charset=utf-8"},
        )

    def failure(args: FailureArgs) -> BoltResponse:
        log.warning("an install did not finish: %s", args.reason)
        return BoltResponse(
            status=args.suggested_status_code,
            body=FAILURE_PAGE.format(
                reason=html.escape(_failure_reason(args.reason)), install_path=INSTALL_PATH
            ),
            headers={"Content-Type": "text/html; charset=utf-8"},
        )

    return OAuthSettings(
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        scopes=list(BOT_SCOPES),
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=store,
        installation_store_bot_only=True,
        # The store refreshes under a row lock before bolt sees the token (see
        # EncryptedInstallationStore.refresh); bolt's own, unlocked rotation is left
        # only a token that has already expired, which Slack refuses anyway.
        token_rotation_expiration_minutes=0,
        state_store=SQLAlchemyOAuthStateStore(
            expiration_seconds=STATE_SECONDS, engine=engine, logger=log
        ),
        state_expiration_seconds=STATE_SECONDS,
        callback_options=CallbackOptions(success=success, failure=failure),
        logger=log,
    )


def _failure_reason(reason: str) -> str:
    return {
        "invalid_browser": "The install was started in another browser. Start it again here.",
        "invalid_state": "The install link expired. Start it again.",
        "missing_code": "Slack did not confirm the install.",
        "access_denied": "The install was cancelled in Slack.",
        "storage_error": "The installation could not be saved. Try again in a minute.",
    }.get(reason, "Slack did not confirm the install. Try again.")


# --- uninstall and revocation -------------------------------------------------------


@dataclass
class Installations:
    """What distribution adds to one process: the store, the per-workspace clients, and
    what an install or an uninstall does to the deliveries."""

    store: EncryptedInstallationStore
    clients: InstalledClients
    sessions: sessionmaker[Session]
    clock: Clock
    resume: Callable[[], object] = lambda: None

    def installed(self, installation: Installation) -> None:
        """A (re)install: the workspace's held deliveries are due again."""
        team_id = installation.team_id
        if not team_id:
            self.clients.forget(None, enterprise_id=installation.enterprise_id)
            return
        self.clients.forget(team_id)
        with self.sessions() as session:
            ids = outbox.release_hold(session, outbox.team_scope(team_id), now=self.clock())
        log.info("installed in workspace %s (%s waiting delivery(ies) due)", team_id, len(ids))
        if ids:
            self.resume()

    def stop_delivering(self, team_id: str | None, reason: str) -> None:
        if not team_id:
            return
        self.clients.forget(team_id)
        now = self.clock()
        with self.sessions() as session:
            outbox.hold(
                session,
                outbox.team_scope(team_id),
                reason=reason,
                now=now,
                check_at=now + timedelta(minutes=5),
            )
        log.warning("workspace %s: %s; its deliveries wait for a new install", team_id, reason)

    def register(self, app: App) -> None:
        def on_uninstalled(context: BoltContext) -> None:
            # The workspace comes from the signed payload only.
            self.store.delete_all(enterprise_id=context.enterprise_id, team_id=context.team_id)
            self.stop_delivering(context.team_id, UNINSTALLED)

        def on_tokens_revoked(event: dict[str, Any], context: BoltContext) -> None:
            tokens = event.get("tokens") or {}
            for user_id in tokens.get("oauth") or []:
                self.store.delete_installation(
                    enterprise_id=context.enterprise_id, team_id=context.team_id, user_id=user_id
                )
            if tokens.get("bot"):
                self.store.delete_bot(enterprise_id=context.enterprise_id, team_id=context.team_id)
                self.stop_delivering(context.team_id, REVOKED)

        app.event("app_uninstalled")(on_uninstalled)
        app.event("tokens_revoked")(on_tokens_revoked)


def build_installations(
    credentials: DistributionCredentials,
    *,
    engine: Engine,
    sessions: sessionmaker[Session],
    clock: Clock,
    make_client: Callable[[str | None], WebClient],
) -> Installations:
    rotation_client = make_client(None)
    store = EncryptedInstallationStore(
        client_id=credentials.client_id,
        engine=engine,
        cipher=TokenCipher(credentials.encryption_keys),
        rotator=TokenRotator(
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            client=rotation_client,
        ),
    )
    return Installations(
        store=store,
        clients=InstalledClients(store, make_client),
        sessions=sessions,
        clock=clock,
    )


# --- no token in a log line -----------------------------------------------------------

# Bot, user, app, config and refresh tokens (`xoxb-…`, `xoxe.xoxb-1-…`, `xoxe-1-…`).
TOKEN_PATTERN = re.compile(r"xox(?:e\.xox[a-z]|[a-z])-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+")
REDACTED = "[token]"
_redacting = threading.Lock()
_installed_factory: list[Callable[..., logging.LogRecord]] = []


def redact(text: str) -> str:
    return TOKEN_PATTERN.sub(REDACTED, text)


def redact_tokens_in_logs() -> None:
    """Every log record of the process has Slack tokens replaced by `[token]`, in its
    message and its traceback, whichever library logs it (slack_sdk logs the answers of
    `oauth.v2.access` at DEBUG). Installed once per process."""
    with _redacting:
        if _installed_factory:
            return
        make = logging.getLogRecordFactory()
        _installed_factory.append(make)

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make(*args, **kwargs)
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # logging reports a bad format itself
                return record
            if TOKEN_PATTERN.search(message):
                record.msg, record.args = redact(message), None
            if record.exc_info and record.exc_info[1] is not None:
                shown = logging.Formatter().formatException(record.exc_info)
                if TOKEN_PATTERN.search(shown):
                    record.exc_text = redact(shown)
            return record

        logging.setLogRecordFactory(factory)


class PeopleAcrossWorkspaces(WebClient):
    """`users.info` for the reminder sweep, which knows a person but not a workspace:
    asked with the token of the workspace of that person's latest contract."""

    def __init__(self, clients: InstalledClients, sessions: sessionmaker[Session]) -> None:
        super().__init__()
        self._clients = clients
        self._sessions = sessions

    def users_info(self, **kwargs: Any) -> SlackResponse:
        user = str(kwargs.get("user", ""))
        with self._sessions() as session, session.begin():
            team_id = session.scalar(
                select(Contract.team_id)
                .join(Party, Party.contract_id == Contract.id)
                .where(Party.user_id == user)
                .order_by(Contract.id.desc())
                .limit(1)
            )
        return self._clients.client_for(team_id).users_info(**kwargs)
