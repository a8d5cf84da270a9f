"""`loacam run`: build the application state and run the supervisor until a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from datetime import time, timedelta

from daemon.app import create_app
from daemon.audio.ahead import RenderAhead
from daemon.audio.library import Library
from daemon.audio.service import AudioService
from daemon.auth import LoginThrottle, TokenService, load_or_create_token_key
from daemon.broadcasts.dispatch import BroadcastAlarms, BroadcastDispatch
from daemon.broadcasts.engine import Engine
from daemon.broadcasts.relay_stop import RelayStopper
from daemon.broadcasts.resume import Resumer
from daemon.broadcasts.upcoming import SpeechDue
from daemon.cameras.manager import CameraManager
from daemon.cameras.media import run_media
from daemon.config import Config
from daemon.config_audio import BroadcastsConfig
from daemon.http_server import HttpServer, bind
from daemon.media import MediaSigner, MediaStore
from daemon.metrics import build_registry
from daemon.notify import Notifier
from daemon.schedule.rules import QuietHours, Rules, VolumeBand
from daemon.speakers.service import SpeakerService
from daemon.state import AppState
from daemon.store import Store, StoreError
from daemon.supervisor import Supervisor
from drivers.backoff import pause
from drivers.camera.hls import HlsSessions, HlsSettings
from drivers.camera.stream import CaptureOptions, LiveStreams
from drivers.mqtt import MqttLink, MqttSettings, MqttTls

log = logging.getLogger(__name__)

EX_OK = 0
EX_UNAVAILABLE = 69  # sysexits.h: the HTTP port cannot be bound
EX_SOFTWARE = 70  # a programming error ended the daemon
EX_CANTCREAT = 73  # the storage directory or database cannot be opened

STATUS_TICK_S = 5.0


def mqtt_settings(config: Config) -> MqttSettings:
    mqtt = config.mqtt
    password = mqtt.password
    tls = mqtt.tls
    return MqttSettings(
        host=mqtt.host,
        port=mqtt.port,
        client_id=config.mqtt_client_id,
        availability_topic=config.status_topic,
        username=mqtt.username,
        password=password.get_secret_value() if password is not None else None,
        keepalive=mqtt.keepalive_s,
        protocol=mqtt.protocol,
        tls=MqttTls(tls.ca_file, tls.cert_file, tls.key_file, insecure=tls.insecure)
        if tls.enabled
        else None,
    )


def media_base_url(config: Config) -> str:
    if config.fleet.media_base_url is not None:
        return config.fleet.media_base_url
    host = config.http.host
    if host in {"0.0.0.0", "::"}:  # noqa: S104 - a listening address, not one to reach
        host = "127.0.0.1"
        if any(speaker.driver == "native" for speaker in config.speakers):
            log.warning(
                "speakers will download audio from http://127.0.0.1:%s, which only works "
                "on this machine: set fleet.media_base_url to an address they can reach",
                config.http.port,
            )
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.http.port}"


def broadcast_rules(config: Config) -> Rules:
    return broadcast_rules_of(config.broadcasts)


def broadcast_rules_of(settings: BroadcastsConfig) -> Rules:
    """The quiet hours and volume profile of the `broadcasts:` settings."""
    seasons = tuple(
        QuietHours(
            morning=time.fromisoformat(season.morning),
            evening=time.fromisoformat(season.evening),
            months=frozenset(season.months),
        )
        for season in settings.quiet_seasons
    )
    usual = (
        (
            QuietHours(
                morning=time.fromisoformat(settings.quiet_morning),
                evening=time.fromisoformat(settings.quiet_evening),
            ),
        )
        if settings.quiet_morning is not None and settings.quiet_evening is not None
        else ()
    )
    volume = tuple(
        VolumeBand(time.fromisoformat(step.start), step.max_volume)
        for step in settings.volume_profile
    )
    return Rules(quiet=seasons + usual, volume=volume)


def build_state(config: Config, store: Store, token_key: bytes) -> AppState:
    """Every long-lived object of the daemon, wired once (also used by the tests)."""
    mqtt = MqttLink(mqtt_settings(config))
    media = MediaStore(config.storage.path / "media", config.audio.output.hermes_sample_rate)
    signer = MediaSigner(token_key, media_base_url(config))
    audio = AudioService(config.audio, store, media)
    library = Library(audio)
    speakers = SpeakerService(config, store, mqtt, media, signer)
    rules = broadcast_rules(config)
    state = AppState(
        config=config,
        store=store,
        mqtt=mqtt,
        supervisor=Supervisor(),
        tokens=TokenService(token_key, timedelta(minutes=config.auth.token_ttl_minutes)),
        throttle=LoginThrottle(config.auth.max_failed_logins, config.auth.lockout_minutes * 60.0),
        cameras=CameraManager(config.site, list(config.cameras), store, mqtt),
        live=LiveStreams(
            linger_s=config.live.linger_s,
            options=CaptureOptions(
                jpeg_quality=config.live.jpeg_quality, stall_after_s=config.live.stall_after_s
            ),
        ),
        hls=HlsSessions(
            config.live.hls_dir or config.storage.path / "hls",
            HlsSettings(idle_s=config.live.hls_idle_s),
        ),
        speakers=speakers,
        media=media,
        media_signer=signer,
        audio=audio,
        render_ahead=RenderAhead(audio, timedelta(minutes=config.audio.render_ahead_min)),
        library=library,
        broadcasts=Engine(
            store,
            dispatch=BroadcastDispatch(speakers, audio, library, rules),
            alarm=BroadcastAlarms(store),
        ),
        relays=RelayStopper(store, speakers),
        resumer=Resumer(store, speakers.dispatcher, rules, config.broadcasts.after_preemption),
    )
    state.render_ahead.add_source(SpeechDue(store))
    state.registry = build_registry(state)
    return state


def add_broadcast_loops(state: AppState) -> None:
    """The loops behind broadcasts, after the speakers' (the tests run the same ones)."""
    state.supervisor.add("audio", state.render_ahead.run)
    state.supervisor.add("broadcasts", state.broadcasts.run)
    state.supervisor.add("relays", state.relays.run)
    state.supervisor.add("resume", state.resumer.run)


async def run_daemon(
    config: Config,
    *,
    notifier: Notifier | None = None,
    on_ready: Callable[[], None] | None = None,
) -> int:
    notifier = notifier or Notifier.from_env()
    stop = asyncio.Event()
    _install_signal_handlers(stop, notifier)
    try:
        store = await Store.open(config.storage.path)
    except StoreError as exc:
        log.critical("storage: %s", exc)
        return EX_CANTCREAT
    try:
        return await _serve(config, store, notifier, stop, on_ready)
    finally:
        await store.close()


async def _serve(
    config: Config,
    store: Store,
    notifier: Notifier,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None,
) -> int:
    try:
        key = (
            config.auth.token_secret.get_secret_value().encode()
            if config.auth.token_secret is not None
            else load_or_create_token_key(config.storage.path)
        )
    except OSError as exc:
        log.critical("storage: cannot read or create the token key: %s", exc)
        return EX_CANTCREAT
    try:
        sock = bind(config.http.host, config.http.port)
    except OSError as exc:
        log.critical(
            "http: cannot listen on %s:%s: %s", config.http.host, config.http.port, exc.strerror
        )
        return EX_UNAVAILABLE
    state = build_state(config, store, key)
    http = HttpServer(
        create_app(state), sock, config.http.graceful_timeout_s, closing=state.closing
    )

    async def report(child_stop: asyncio.Event) -> None:
        await _report_to_systemd(state, http, notifier, child_stop, on_ready)

    async def media(child_stop: asyncio.Event) -> None:
        await run_media(state, child_stop)

    # Start order: MQTT, speakers, audio, cameras, HTTP, live media, the systemd reporter; stop
    # in reverse, so live streams end before HTTP waits for its connections and the
    # outbox saves its last progress while MQTT is still up.
    state.supervisor.add("mqtt", state.mqtt.run)
    state.supervisor.add("speakers", state.speakers.run)
    add_broadcast_loops(state)
    state.supervisor.add("cameras", state.cameras.run)
    state.supervisor.add("http", http.run)
    state.supervisor.add("media", media)
    state.supervisor.add("systemd", report)
    try:
        await state.supervisor.run(stop)
    except ExceptionGroup:
        log.critical("a programming error ended loacam", exc_info=True)
        return EX_SOFTWARE
    finally:
        sock.close()
        state.audio.close()
    log.info("loacam stopped")
    return EX_OK


async def _report_to_systemd(
    state: AppState,
    http: HttpServer,
    notifier: Notifier,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None,
) -> None:
    """READY=1 once the API listens, then WATCHDOG=1 and STATUS= from a loop tick."""
    waiter = asyncio.create_task(http.started.wait())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    stopper.cancel()
    if stop.is_set():
        return
    await state.check_storage()
    summary = state.summary()
    notifier.ready(summary)
    log.info("loacam ready on %s:%s: %s", state.config.http.host, state.config.http.port, summary)
    if on_ready is not None:
        on_ready()
    interval = min(notifier.watchdog_interval_s or STATUS_TICK_S, STATUS_TICK_S)
    while not stop.is_set():
        # The tick runs on the event loop: if the loop hangs, systemd stops hearing it.
        notifier.watchdog()
        await state.check_storage()
        if (current := state.summary()) != summary:
            summary = current
            notifier.status(summary)
            log.info("status: %s", summary)
        await pause(stop, interval)


def _install_signal_handlers(stop: asyncio.Event, notifier: Notifier) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: exiting at once", signal.Signals(signum).name)
            os._exit(EX_SOFTWARE)
        log.info("%s received: stopping", signal.Signals(signum).name)
        notifier.stopping()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
