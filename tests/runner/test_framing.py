"""Property tests for the frame codec: whatever the chunking, frames round-trip; garbage never crashes it."""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner._framing import FrameDecoder, FrameEncoder, FrameTooLarge, decode_record
from runner._protocol import FromChild, HostCall, Result, Started

plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
messages = st.one_of(
    st.builds(Result, value=plain),
    st.builds(
        HostCall,
        id=st.integers(0, 2**31),
        method=st.text(max_size=20),
        args=st.dictionaries(st.text(max_size=8), plain, max_size=3),
    ),
    st.just(Started()),
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


@given(st.lists(messages, max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
@settings(max_examples=200, deadline=None)
def test_frames_round_trip_whatever_the_chunking(batch: list[Any], cuts: list[int]) -> None:
    encoder = FrameEncoder()
    stream = b"".join(encoder.encode(message) for message in batch)
    decoder: FrameDecoder[Any] = FrameDecoder(FromChild, max_frame=1 << 20)
    decoded = [message for piece in _chunks(stream, cuts) for message in decoder.feed(piece)]
    assert decoded == batch
    assert decoder.pending == 0


@given(st.binary(max_size=64))
@settings(max_examples=300, deadline=None)
def test_garbage_is_a_decode_error_or_too_large_never_a_crash(data: bytes) -> None:
    decoder: FrameDecoder[Any] = FrameDecoder(FromChild, max_frame=32)
    with contextlib.suppress(msgspec.DecodeError, FrameTooLarge):
        list(decoder.feed(data))


def test_declared_length_over_the_limit_is_refused_before_buffering() -> None:
    decoder: FrameDecoder[Any] = FrameDecoder(FromChild, max_frame=1024)
    with pytest.raises(FrameTooLarge, match="1025"):
        list(decoder.feed((1025).to_bytes(4, "big")))


def test_a_frame_of_the_wrong_type_is_refused() -> None:
    frame = FrameEncoder().encode({"type": "call", "arg": 1})  # a parent->child message, sent the wrong way
    decoder: FrameDecoder[Any] = FrameDecoder(FromChild, max_frame=1024)
    with pytest.raises(msgspec.ValidationError):
        list(decoder.feed(frame))


@given(messages)
@settings(max_examples=100, deadline=None)
def test_a_record_holding_one_frame_decodes(message: Any) -> None:
    decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(FromChild)
    assert decode_record(decoder, FrameEncoder().encode(message)) == message


_STARTED = FrameEncoder().encode(Started())


@pytest.mark.parametrize(
    "record", [_STARTED[:-1], _STARTED[:2], _STARTED + b"extra"], ids=["cut short", "half a header", "bytes after"]
)
def test_a_record_that_is_not_one_whole_frame_is_a_decode_error(record: bytes) -> None:
    with pytest.raises(msgspec.DecodeError, match="not one whole frame"):
        decode_record(msgspec.msgpack.Decoder(FromChild), record)
