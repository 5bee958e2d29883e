"""The built-in MP3 encoder: the WAVs Asterisk records in, a playable MP3 of the same length out (checked by
walking its frame headers, ISO/IEC 11172-3 and 13818-3), whatever the chunking; other WAVs refused."""

from __future__ import annotations

import io
import math
import struct
import warnings
import wave

import pytest

from agent.web.lame import _G711, ALAW, MULAW, Unsupported, WavToMp3, parse_header

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # only to check the G.711 tables against the standard library's (gone in 3.13)

# MPEG-1 / MPEG-2 / MPEG-2.5 Layer III: bit rates (kbps) by index, sample rates by index
_BITRATES = {
    3: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
_RATES = {3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000]}


def mp3_seconds(data: bytes) -> float:
    """Walk the MP3's frames from the first to the last; each must follow the one before exactly."""
    pos, seconds, frames = 0, 0.0, 0
    while pos + 4 <= len(data):
        (header,) = struct.unpack(">I", data[pos : pos + 4])
        assert header >> 21 == 0x7FF, f"no frame sync at byte {pos} of {len(data)}"
        version, layer = (header >> 19) & 3, (header >> 17) & 3
        assert layer == 1, "not Layer III"
        bitrate = _BITRATES[3 if version == 3 else 2][(header >> 12) & 0xF] * 1000
        rate = _RATES[version][(header >> 10) & 3]
        padding = (header >> 9) & 1
        samples = 1152 if version == 3 else 576
        pos += samples // 8 * bitrate // rate + padding
        seconds += samples / rate
        frames += 1
    assert pos == len(data) and frames > 0
    return seconds


def plays_for(mp3: bytes, seconds: float) -> bool:
    """As long as the sound, plus LAME's info frame, its encoder delay and the last frame's padding (< 0.25 s)."""
    return seconds <= mp3_seconds(mp3) <= seconds + 0.25


def tone(seconds: float, rate: int = 8000, channels: int = 1) -> bytes:
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(i / rate * 2 * math.pi * 440))) * channels
        for i in range(int(rate * seconds))
    )


def wav_bytes(frames: bytes, *, rate: int = 8000, channels: int = 1, width: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def g711_wav(pcm: bytes, tag: int) -> bytes:
    """A WAV with format tag 6 (A-law) or 7 (µ-law), as MixMonitor writes `alaw`/`ulaw` into a .wav."""
    data = (audioop.lin2alaw if tag == ALAW else audioop.lin2ulaw)(pcm, 2)
    fmt = struct.pack("<HHIIHHH", tag, 1, 8000, 8000, 1, 8, 0)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def encode(wav: bytes, chunk: int) -> bytes:
    encoder = WavToMp3()
    out = b"".join(encoder.feed(wav[i : i + chunk]) for i in range(0, len(wav), chunk))
    return out + encoder.finish()


@pytest.mark.parametrize("chunk", [7, 1001, 1 << 20])
def test_pcm_wav_becomes_an_mp3_of_the_same_length(chunk: int) -> None:
    mp3 = encode(wav_bytes(tone(2.0)), chunk)
    assert plays_for(mp3, 2.0)
    assert len(mp3) < 2.3 * 32000 / 8


@pytest.mark.parametrize("tag", [ALAW, MULAW])
def test_g711_wavs_are_decoded_as_the_standard_says(tag: int) -> None:
    low, high = _G711[tag]
    decode = audioop.alaw2lin if tag == ALAW else audioop.ulaw2lin
    expected = decode(bytes(range(256)), 2)
    assert bytes(b for pair in zip(low, high, strict=True) for b in pair) == expected
    assert plays_for(encode(g711_wav(tone(1.5), tag), 333), 1.5)


def test_stereo_at_16_khz() -> None:
    assert plays_for(encode(wav_bytes(tone(1.0, 16000, 2), rate=16000, channels=2), 4096), 1.0)


def test_a_recording_still_being_written_has_no_data_size_yet() -> None:
    wav = bytearray(wav_bytes(tone(1.0)))
    data_at = bytes(wav).index(b"data")
    wav[data_at + 4 : data_at + 8] = b"\0\0\0\0"  # what MixMonitor leaves until it closes the file
    assert plays_for(encode(bytes(wav), 4096), 1.0)


def test_other_wavs_are_refused() -> None:
    gsm = bytearray(g711_wav(tone(0.1), ALAW))
    gsm[20:22] = struct.pack("<H", 0x31)  # WAV49: GSM 6.10, Asterisk's `.WAV`
    with pytest.raises(Unsupported, match="format 49"):
        encode(bytes(gsm), 4096)
    with pytest.raises(Unsupported, match="8 bits"):
        parse_header(wav_bytes(b"\x80" * 800, width=1))
    with pytest.raises(Unsupported, match="RIFF"):
        parse_header(b"ID3\x04" + bytes(40))
    assert parse_header(b"RIFF\0\0\0\0WAV") is None  # more bytes needed
