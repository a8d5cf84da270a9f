"""Credentials in camera URLs: in for the capture, out of every log line."""

from __future__ import annotations

from drivers.camera.model import Profile, choose_streams
from drivers.camera.urls import pin_host, redact, with_credentials


def test_credentials_go_in_encoded_and_come_out_redacted() -> None:
    url = with_credentials("rtsp://10.0.0.5:554/Streaming/101", "admin", "p@ss:w/rd")
    assert url == "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:554/Streaming/101"
    assert (
        redact(f"cannot open {url} now") == "cannot open rtsp://***@10.0.0.5:554/Streaming/101 now"
    )
    assert redact("http://u:p@a/x and rtsp://v:q@b/y") == "http://***@a/x and rtsp://***@b/y"
    assert redact("rtsp://10.0.0.5/no-user") == "rtsp://10.0.0.5/no-user"


def test_ipv6_hosts_keep_their_brackets() -> None:
    assert with_credentials("rtsp://[fe80::1]:554/s", "a", "b") == "rtsp://a:b@[fe80::1]:554/s"


def profile(token: str, encoding: str, width: int, height: int) -> Profile:
    return Profile(
        token, token, encoding, width, height, 15.0, f"rtsp://h/{token}", None, ptz=False
    )


def test_main_is_the_largest_h264_and_sub_the_smallest() -> None:
    profiles = (
        profile("a", "H264", 640, 360),
        profile("b", "H265", 2560, 1440),
        profile("c", "H264", 1920, 1080),
    )
    main, sub, warnings = choose_streams(profiles)
    assert (main and main.token, sub and sub.token, warnings) == ("c", "a", ())


def test_h265_only_is_said_plainly() -> None:
    main, _sub, warnings = choose_streams((profile("a", "H265", 1920, 1080),))
    assert main is not None
    assert "không có H.264" in warnings[0]


def test_no_profile_at_all() -> None:
    assert choose_streams(()) == (
        None,
        None,
        ("Camera không có profile video nào (no video profile)",),
    )


def test_passwords_holding_at_signs_or_slashes_are_fully_hidden() -> None:
    assert redact("open rtsp://admin:p@ss/w@cam:554/x failed") == "open rtsp://***@cam:554/x failed"


def test_urls_are_pinned_to_the_configured_camera_host() -> None:
    # A camera behind NAT (or a hostile one) names another host: credentials go only to ours.
    assert pin_host("rtsp://192.168.1.64:554/s", "10.0.0.5") == "rtsp://10.0.0.5:554/s"
    assert pin_host("http://10.0.0.5/snap.jpg", "10.0.0.5") == "http://10.0.0.5/snap.jpg"
    assert pin_host(None, "10.0.0.5") is None
