"""Length-prefixed frames: encoding, incremental decoding and blocking helpers for the worker side.

Every frame on every channel is built and taken apart here (the header is :data:`runner._protocol.HEADER_SIZE`
bytes of big-endian length): :class:`FrameEncoder` for all of them, :class:`FrameDecoder` and
:func:`recv_frame` on the stream channels, :func:`decode_record` on the SEQPACKET control channel, where one
record is one whole frame.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import msgspec

from ._protocol import HEADER_SIZE

T = TypeVar("T")


class FrameTooLarge(ValueError):
    """Raised when a frame's declared length is above the allowed maximum."""


class ChannelClosed(EOFError):
    """Raised when the peer closed the channel before a whole frame arrived."""


class FrameEncoder:
    """Encodes messages into frames, reusing one msgpack encoder and one buffer."""

    def __init__(self, enc_hook: Any = None) -> None:
        self._encoder = msgspec.msgpack.Encoder(enc_hook=enc_hook)
        self._buffer = bytearray()

    def encode(self, message: Any) -> bytes:
        """Returns ``message`` as one frame (length prefix included)."""
        buffer = self._buffer
        # Leave room for the header, encode after it, then fill it in: one copy instead of two.
        self._encoder.encode_into(message, buffer, HEADER_SIZE)
        size = len(buffer) - HEADER_SIZE
        buffer[:HEADER_SIZE] = size.to_bytes(HEADER_SIZE, "big")
        frame = bytes(buffer)
        if len(buffer) > 1 << 16:
            self._buffer = bytearray()  # do not keep a huge buffer alive after one big message
        return frame


class FrameDecoder(Generic[T]):
    """Splits a byte stream into frames and decodes each with one reused typed decoder.

    Args:
        type_: the union of messages expected in this direction.
        max_frame: the largest frame payload accepted; a larger declared length raises :class:`FrameTooLarge`
            before any of its payload is buffered.
    """

    def __init__(self, type_: Any, max_frame: int) -> None:
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(type_)
        self._max_frame = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[T]:
        """Adds ``data`` and yields every message now complete.

        Raises:
            FrameTooLarge: a frame declares more than ``max_frame`` bytes.
            msgspec.DecodeError: a frame is not a valid message of the expected type.
        """
        buffer = self._buffer
        buffer += data
        while len(buffer) >= HEADER_SIZE:
            size = int.from_bytes(buffer[:HEADER_SIZE], "big")
            if size > self._max_frame:
                raise FrameTooLarge(f"frame of {size} bytes exceeds the {self._max_frame}-byte limit")
            end = HEADER_SIZE + size
            if len(buffer) < end:
                return
            payload = bytes(buffer[HEADER_SIZE:end])
            del buffer[:end]
            yield self._decoder.decode(payload)

    @property
    def pending(self) -> int:
        """Bytes received that are not yet part of a complete frame."""
        return len(self._buffer)


def payload_size(frame: bytes) -> int:
    """The size of the message in a whole ``frame`` (its length without the header)."""
    return len(frame) - HEADER_SIZE


def decode_record(decoder: msgspec.msgpack.Decoder[T], record: bytes) -> T:
    """Decodes one record of a SEQPACKET socket, which holds exactly one frame.

    Raises:
        msgspec.DecodeError: the record is not one whole frame, or not a valid message of the expected type.
    """
    if int.from_bytes(record[:HEADER_SIZE], "big") != payload_size(record):
        raise msgspec.DecodeError(f"a record of {len(record)} bytes is not one whole frame")
    return decoder.decode(record[HEADER_SIZE:])


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Reads exactly ``size`` bytes from a blocking socket.

    Raises:
        ChannelClosed: the peer closed the socket first.
    """
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise ChannelClosed("channel closed")
        chunks += chunk
    return bytes(chunks)


def recv_frame(sock: socket.socket, decoder: msgspec.msgpack.Decoder[T], max_frame: int) -> T:
    """Reads one frame from a blocking stream socket and decodes it."""
    size = int.from_bytes(recv_exact(sock, HEADER_SIZE), "big")
    if size > max_frame:
        raise FrameTooLarge(f"frame of {size} bytes exceeds the {max_frame}-byte limit")
    return decoder.decode(recv_exact(sock, size))
