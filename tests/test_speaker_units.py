"""Pure tests: the native protocol's encoding and parsing, delivery states, signed URLs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audio.decode import AudioDecodeError, to_wav_blocking
from audio.tone import tone_wav
from daemon.media import MediaError, MediaSigner, MediaStore
from daemon.speakers.outbox import CommandRecord, DeliveryState
from drivers.mqtt import MqttLink, MqttMessage, MqttSettings
from drivers.speaker.hermes import HermesDriver
from drivers.speaker.model import (
    Ack,
    Availability,
    Command,
    EventKind,
    Op,
    PlaybackEvent,
    Priority,
    Seen,
    SpeakerInfo,
    SpeakerState,
)
from drivers.speaker.native import NativeDriver, encode_command

NOW = datetime(2026, 11, 27, 5, 30, tzinfo=UTC)
CMD = "5b0e7c7e0a8d4f2f9a3c1b2d4e5f6a7b"


def _link() -> MqttLink:
    # Constructed, never started: parsing needs no connection.
    return MqttLink(MqttSettings("127.0.0.1", 1, "unit", "loacam/x/daemon/status"))


def _message(topic: str, payload: bytes | str, *, retain: bool = False) -> MqttMessage:
    data = payload.encode() if isinstance(payload, str) else payload
    return MqttMessage(topic, data, retain)


def test_a_play_command_carries_every_field_of_the_protocol() -> None:
    command = Command(
        cmd_id=CMD,
        op=Op.PLAY,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
        url="http://127.0.0.1:8080/media/x.wav?exp=1&sig=2",
        priority=Priority.EMERGENCY,
        volume=80,
        item_id="bc-42",
    )
    body = json.loads(encode_command(command))
    assert body == {
        "cmd_id": CMD,
        "op": "play",
        "issued_at": "2026-11-27T05:30:00Z",
        "expires_at": "2026-11-27T05:35:00Z",
        "url": "http://127.0.0.1:8080/media/x.wav?exp=1&sig=2",
        "item_id": "bc-42",
        "priority": "emergency",
        "volume": 80,
    }
    volume = Command(CMD, Op.SET_VOLUME, NOW, NOW, volume=30)
    assert json.loads(encode_command(volume))["volume"] == 30
    assert "url" not in json.loads(encode_command(Command(CMD, Op.PING, NOW, NOW)))


def test_native_reports_become_typed_dataclasses() -> None:
    driver = NativeDriver(_link(), "xa", {})
    base = "loacam/xa/spk/loa-1"
    assert driver.parse(_message(f"{base}/status", "online")) == Availability("loa-1", online=True)
    assert driver.parse(_message(f"{base}/status", "")) == Availability("loa-1", online=False)
    info = driver.parse(
        _message(
            f"{base}/info",
            '{"protocol": 1, "model": "M", "firmware": "2", "zones": ["thon-1", "../x"],'
            ' "codecs": ["mp3"], "future_key": 1}',
        )
    )
    assert isinstance(info, SpeakerInfo)
    assert info.zones == ("thon-1",)  # a zone id that is not a safe id is dropped
    state = driver.parse(
        _message(f"{base}/state", '{"playing": null, "volume": 70, "faults": ["amplifier"]}')
    )
    assert state == SpeakerState("loa-1", None, 70, None, ("amplifier",), None)
    ack = driver.parse(
        _message(f"{base}/ack", json.dumps({"cmd_id": CMD, "ok": False, "error": "busy"}))
    )
    assert ack == Ack("loa-1", CMD, ok=False, error="busy")
    failed = driver.parse(
        _message(f"{base}/event", json.dumps({"event": "failed", "cmd_id": CMD, "error": "decode"}))
    )
    assert isinstance(failed, PlaybackEvent)
    assert (failed.kind, failed.reason) == (EventKind.FAILED, "decode")
    assert driver.parse(_message("loacam/other/spk/loa-1/status", "online")) is None
    assert driver.parse(_message(f"{base}/info", b"", retain=True)) is None


@pytest.mark.parametrize(
    ("leaf", "payload"),
    [
        ("status", "perhaps"),
        ("info", '{"model": "no protocol"}'),
        ("state", '{"volume": 250}'),
        ("ack", '{"cmd_id": "../../etc/passwd", "ok": true}'),
        ("event", '{"event": "exploded"}'),
        ("state", "\xff\xfe not json"),
        ("state", '{"faults": ["' + "x" * 40 + '"]}'),
        ("state", '{"playing": {"cmd_id": "not-a-command-id"}}'),
        ("state", '{"faults": [], "pad": "' + "x" * 20_000 + '"}'),
    ],
)
def test_malformed_native_payloads_raise_value_error(leaf: str, payload: str) -> None:
    driver = NativeDriver(_link(), "xa", {})
    with pytest.raises(ValueError):  # noqa: PT011 - the link drops exactly ValueError
        driver.parse(_message(f"loacam/xa/spk/loa-1/{leaf}", payload))


def test_a_topic_with_an_unsafe_speaker_id_is_refused() -> None:
    driver = NativeDriver(_link(), "xa", {})
    with pytest.raises(ValueError, match="not a speaker id"):
        driver.parse(_message("loacam/xa/spk/" + "A" * 500 + "/status", "online"))


def test_hermes_reports_are_mapped_from_site_ids_to_speakers() -> None:
    driver = HermesDriver(_link(), "xa", {"bep": "loa-bep"})
    finished = driver.parse(
        _message("hermes/audioServer/bep/playFinished", '{"id": "abc", "siteId": "bep"}')
    )
    assert finished == PlaybackEvent("loa-bep", EventKind.FINISHED, "abc", None, "completed")
    assert driver.parse(_message("hermes/audioServer/bep/audioFrame", b"RIFF")) == Seen("loa-bep")
    assert driver.parse(_message("hermes/audioServer/other/audioFrame", b"RIFF")) is None


def _record() -> CommandRecord:
    return CommandRecord(
        CMD,
        "loa-1",
        "native",
        Op.PLAY,
        "t",
        None,
        None,
        Priority.NORMAL,
        None,
        NOW,
        NOW + timedelta(minutes=5),
    )


def test_delivery_state_only_moves_forward_and_stops_at_an_end() -> None:
    record = _record()
    assert record.advance(DeliveryState.SENT, NOW)
    assert record.advance(DeliveryState.STARTED, NOW + timedelta(seconds=2))
    # A late ack (re-sent after a duplicate) does not move it back.
    assert not record.advance(DeliveryState.ACKNOWLEDGED, NOW + timedelta(seconds=3))
    assert record.state is DeliveryState.STARTED
    assert record.acked_at is None
    assert record.advance(DeliveryState.FINISHED, NOW + timedelta(seconds=9))
    assert not record.advance(DeliveryState.FAILED, NOW + timedelta(seconds=10), "late")
    assert (record.state, record.error) == (DeliveryState.FINISHED, None)
    assert record.finished_at == NOW + timedelta(seconds=9)


def test_signed_media_urls_name_one_file_until_one_time(tmp_path: Path) -> None:
    signer = MediaSigner(b"k" * 32, "http://loa.example:8080/")
    name = MediaStore(tmp_path).put_blocking(b"RIFF....", "wav")
    url = signer.url(name, NOW + timedelta(minutes=10))
    assert url.startswith(f"http://loa.example:8080/media/{name}?exp=")
    exp = int((NOW + timedelta(minutes=10)).timestamp())
    sig = url.rsplit("sig=", 1)[1]
    assert signer.check(name, exp, sig, now=NOW.timestamp())
    assert not signer.check(name, exp, sig, now=exp + 1.0)  # expired
    assert not signer.check(name, exp + 3600, sig, now=NOW.timestamp())  # stretched
    other = MediaStore(tmp_path).put_blocking(b"other", "wav")
    assert not signer.check(other, exp, sig, now=NOW.timestamp())  # another file
    assert not MediaSigner(b"j" * 32, "http://x").check(name, exp, sig, now=NOW.timestamp())
    with pytest.raises(MediaError):
        MediaStore(tmp_path).path("../loacam.db")


def test_the_test_tone_decodes_to_its_length(tmp_path: Path) -> None:
    (tmp_path / "tone.wav").write_bytes(tone_wav(1.25))
    assert to_wav_blocking(tmp_path / "tone.wav").duration_s == pytest.approx(1.25, abs=0.01)
    (tmp_path / "broken.mp3").write_bytes(b"ID3" + bytes(500))
    with pytest.raises(AudioDecodeError):
        to_wav_blocking(tmp_path / "broken.mp3")
