"""Google Translate's Vietnamese voice through gTTS: the best voice, when the internet is up.

gTTS (and the requests library under it) is imported here only; everything else sees Speech
and TtsError. gTTS has no timeout by default, sends at most 100 characters per request and
gets rate-limited (HTTP 429), so this adapter adds a per-request timeout, an overall deadline
and a short backoff on 429 only: any other failure returns at once, so that the chain moves
on to an offline engine quickly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from itertools import pairwise

from gtts import gTTS, gTTSError
from gtts.tokenizer import Tokenizer, pre_processors, tokenizer_cases

from audio.tts.base import Speech, TtsError, TtsUnavailableError, check_request

_LOG = logging.getLogger(__name__)
# gTTS logs its arguments and every request body, the announcement text included, at DEBUG.
logging.getLogger("gtts").setLevel(logging.INFO)

MAX_CHARS: int = gTTS.GOOGLE_TTS_MAX_CHARS  # what one Google request takes: 100 characters
_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500
# gTTS's own default tokenizer cases: a sentence may be cut after ? ! . , : ; ( ) and the like.
_CUTS = Tokenizer(
    [
        tokenizer_cases.tone_marks,
        tokenizer_cases.period_comma,
        tokenizer_cases.colon,
        tokenizer_cases.other_punctuation,
    ]
).total_regex


@dataclass(frozen=True)
class GttsSettings:
    timeout_s: float = 10.0  # each HTTP request: gTTS's own timeout (connect, and each read)
    retries: int = 2  # further tries of one request that Google answered with HTTP 429
    backoff_s: float = 1.0  # the wait before the first retry; it doubles for each next one
    tld: str = "com"  # translate.google.<tld>
    deadline_s: float = 30.0  # the whole text: every request and every wait


class _RateLimitedError(TtsUnavailableError):
    """Google answered HTTP 429: the one failure worth waiting for."""


class GttsEngine:
    """gTTS with lang="vi". Google has one Vietnamese voice: it answers for "vi" only."""

    name = "gtts"
    network = True
    voices = frozenset({"vi"})

    def __init__(self, settings: GttsSettings | None = None) -> None:
        self._settings = settings or GttsSettings()

    def params(self) -> str:
        return f"gtts lang=vi tld={self._settings.tld}"

    async def synthesize(self, text: str, voice: str) -> Speech:
        check_request(self, text, voice)
        pieces = split_for_google(text)
        if not pieces:
            raise TtsError("nothing to say: the text has no letters or digits")
        deadline_s = self._settings.deadline_s
        _LOG.debug("gtts: %d characters in %d requests", len(text), len(pieces))
        give_up_at = asyncio.get_running_loop().time() + deadline_s
        try:
            async with asyncio.timeout_at(give_up_at) as budget:
                # One request at a time: parallel requests only reach the rate limit sooner.
                audio = [await self._fetch(piece, give_up_at) for piece in pieces]
        except TimeoutError as exc:
            if not budget.expired():
                raise
            raise TtsUnavailableError(f"gtts: no answer within {deadline_s:g} s") from exc
        # MP3 is a sequence of frames: the pieces' files joined are one playable file.
        return Speech(data=b"".join(audio), suffix="mp3", engine=self.name, voice=voice)

    async def _fetch(self, piece: str, give_up_at: float) -> bytes:
        """One piece, tried again after an exponential wait while Google answers 429."""
        settings = self._settings
        loop = asyncio.get_running_loop()
        tries = 0
        while True:
            tries += 1
            try:
                # gTTS blocks (requests), so it runs in a worker thread. A thread cannot be
                # cancelled: past the deadline it is abandoned, holds one executor worker until
                # its one request ends (at the latest once Google is silent for timeout_s:
                # gTTS's timeout bounds each connect and each read), and its answer is
                # dropped. No further piece starts.
                return await asyncio.to_thread(self._fetch_blocking, piece)
            except _RateLimitedError as exc:
                if tries > settings.retries:
                    raise TtsUnavailableError(f"gtts: HTTP 429 from Google {tries} times") from exc
                # No jitter: one daemon sends one request at a time; there is no herd to spread.
                wait = settings.backoff_s * 2 ** (tries - 1)
                if loop.time() + wait >= give_up_at:
                    raise TtsUnavailableError(
                        f"gtts: HTTP 429 from Google; a retry in {wait:g} s would pass the deadline"
                    ) from exc
                _LOG.info("gtts: HTTP 429 from Google, trying again in %g s", wait)
                await asyncio.sleep(wait)

    def _fetch_blocking(self, piece: str) -> bytes:
        """One Google request (the piece fits in one). Blocking: run it in a thread."""
        tts = gTTS(
            piece,
            lang="vi",
            tld=self._settings.tld,
            timeout=self._settings.timeout_s,
            # loacam's Vietnamese normaliser has run already; gTTS's own pre-processors are
            # for English ("Mr.", "Esq.") and may lengthen a piece past one request.
            pre_processor_funcs=[],
        )
        try:
            return b"".join(tts.stream())
        except gTTSError as exc:
            raise _translate(exc) from exc
        except ValueError as exc:  # an answer that is not UTF-8 or whose audio is not base64
            raise TtsError(f"gtts: unreadable answer from Google: {exc}") from exc


def _translate(exc: gTTSError) -> TtsError:
    """gTTSError in loacam's terms; the message carries the cause, never the text."""
    response = exc.rsp
    if response is None:  # no HTTP answer: connection refused, DNS, proxy, timeout
        cause = type(exc.__context__).__name__ if exc.__context__ else "unknown cause"
        return TtsUnavailableError(f"gtts: cannot reach Google ({cause})")
    status: int = response.status_code
    if status == _TOO_MANY_REQUESTS:
        return _RateLimitedError("gtts: HTTP 429 from Google")
    if status >= _SERVER_ERROR:
        return TtsUnavailableError(f"gtts: HTTP {status} from Google")
    return TtsError(f"gtts: {exc.msg}")


def split_for_google(text: str) -> list[str]:
    """Cut `text` into pieces of at most MAX_CHARS characters, one Google request each.

    Cuts fall where gTTS's own tokenizer would cut (after punctuation); neighbouring parts are
    packed up to the limit, which means fewer requests (fewer 429s) and keeps the punctuation
    inside a piece, where Google pauses at it. A stretch without punctuation is cut at a
    space. Pieces without a letter or digit are dropped: Google cannot speak them.
    """
    # gTTS's tone-mark case cuts at the character after "?" or "!": make that a space.
    spaced = pre_processors.tone_marks(text)
    cuts = [0, *(match.end() for match in _CUTS.finditer(spaced)), len(spaced)]
    segments = [spaced[start:end] for start, end in pairwise(cuts)]
    pieces: list[str] = []
    current = ""
    for segment in segments:
        for part in _fit(" ".join(segment.split())):
            joined = f"{current} {part}".strip()
            if len(joined) <= MAX_CHARS:
                current = joined
            else:
                pieces.append(current)
                current = part
    pieces.append(current)
    return [piece for piece in pieces if any(char.isalnum() for char in piece)]


def _fit(segment: str) -> list[str]:
    """`segment` in parts of at most MAX_CHARS characters, cut at the last space that fits."""
    parts = []
    while len(segment) > MAX_CHARS:
        cut = segment.rfind(" ", 0, MAX_CHARS + 1)
        if cut <= 0:  # a "word" of 100 characters: cut anywhere, as gTTS does
            cut = MAX_CHARS
        parts.append(segment[:cut].strip())
        segment = segment[cut:].strip()
    parts.append(segment)
    return parts
