"""WAV to MP3 in the agent's own process with LAME (the `lameenc` wheels from PyPI), fed a chunk at a time.

It takes what Asterisk's MixMonitor and Monitor write into a `.wav`: 16-bit PCM (format `wav`, `wav16`) and
G.711 A-law or µ-law in a WAV container, mono or stereo, any rate LAME takes (8 kHz becomes MPEG-2.5).
Anything else (WAV49's GSM, `.WAV`) raises Unsupported, and the caller turns to ffmpeg when there is one.
The data chunk's size is not trusted: a recording still being written has 0 there, so everything after the
chunk's header is audio. Pure but CPU-bound: run `feed` in a thread.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import lameenc

PCM, ALAW, MULAW, EXTENSIBLE = 1, 6, 7, 0xFFFE
BIT_RATE_KBPS = 32  # speech: a minute is ~240 KB; amoCRM's player streams it at once
MAX_HEADER = 64 * 1024  # a WAV whose audio starts later than this is not one of Asterisk's


class Unsupported(Exception):
    """Not a WAV this encoder takes; the message says what it is."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    tag: int
    channels: int
    rate: int
    bits: int
    data_offset: int


def parse_header(head: bytes) -> WavFormat | None:
    """The format of a WAV from its first bytes; None when more bytes are needed; Unsupported otherwise."""
    if len(head) < 12:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise Unsupported("not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk == b"data":
            if fmt is None:
                raise Unsupported("no fmt chunk before the data")
            return WavFormat(*fmt, data_offset=pos + 8)
        if chunk == b"fmt ":
            if pos + 8 + min(size, 26) > len(head):
                return None
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, pos + 8)
            if tag == EXTENSIBLE and size >= 26:
                tag = struct.unpack_from("<H", head, pos + 8 + 24)[0]  # the sub-format GUID's first two bytes
            fmt = (tag, channels, rate, bits)
            _check(tag, channels, rate, bits)
        pos += 8 + size + (size & 1)
    if len(head) > MAX_HEADER:
        raise Unsupported("no data chunk in the first 64 KB")
    return None


def _check(tag: int, channels: int, rate: int, bits: int) -> None:
    if (tag == PCM and bits != 16) or (tag in (ALAW, MULAW) and bits != 8) or tag not in (PCM, ALAW, MULAW):
        raise Unsupported(f"WAV format {tag} with {bits} bits per sample")
    if channels not in (1, 2) or not 8000 <= rate <= 48000:
        raise Unsupported(f"{channels} channel(s) at {rate} Hz")


def _g711_tables() -> dict[int, tuple[bytes, bytes]]:
    """For A-law and µ-law: (low bytes, high bytes) of each code's 16-bit linear sample, for bytes.translate."""

    def mulaw(code: int) -> int:
        code = ~code & 0xFF
        magnitude = ((code & 0x0F) << 3) + 0x84 << ((code & 0x70) >> 4)
        return 0x84 - magnitude if code & 0x80 else magnitude - 0x84

    def alaw(code: int) -> int:
        code ^= 0x55
        exponent, mantissa = (code & 0x70) >> 4, code & 0x0F
        magnitude = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
        return magnitude if code & 0x80 else -magnitude

    tables = {}
    for tag, decode in ((ALAW, alaw), (MULAW, mulaw)):
        samples = [decode(c) & 0xFFFF for c in range(256)]
        tables[tag] = (bytes(s & 0xFF for s in samples), bytes(s >> 8 for s in samples))
    return tables


_G711 = _g711_tables()


class WavToMp3:
    """Bytes of a WAV in (`feed`, any chunking), bytes of an MP3 out; `finish` at the end."""

    def __init__(self, bit_rate_kbps: int = BIT_RATE_KBPS) -> None:
        self.bit_rate = bit_rate_kbps
        self.format: WavFormat | None = None
        self._head = b""
        self._carry = b""  # an odd byte of a 16-bit sample cut by the chunking
        self._encoder: lameenc.Encoder | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self.format is None:
            self._head += chunk
            self.format = parse_header(self._head)
            if self.format is None:
                return b""
            chunk, self._head = self._head[self.format.data_offset :], b""
            self._encoder = self._start(self.format)
        assert self._encoder is not None and self.format is not None
        pcm: bytes | bytearray
        if self.format.tag == PCM:
            data = self._carry + chunk
            cut = len(data) - len(data) % (2 * self.format.channels)
            pcm, self._carry = data[:cut], data[cut:]
        else:
            low, high = _G711[self.format.tag]
            pcm = bytearray(2 * len(chunk))
            pcm[0::2], pcm[1::2] = chunk.translate(low), chunk.translate(high)
        return bytes(self._encoder.encode(bytes(pcm))) if pcm else b""

    def finish(self) -> bytes:
        if self._encoder is None:
            raise Unsupported("no audio data")
        return bytes(self._encoder.flush())

    def _start(self, fmt: WavFormat) -> lameenc.Encoder:
        encoder = lameenc.Encoder()
        encoder.set_bit_rate(self.bit_rate)
        encoder.set_in_sample_rate(fmt.rate)
        encoder.set_channels(fmt.channels)
        encoder.set_quality(5)
        return encoder
