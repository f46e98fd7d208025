"""Tests of the background-thread iterator used by rectify and the encoder."""

import numpy as np
import pytest

from egoclean.core.errors import VideoError
from egoclean.media.prefetch import read_ahead


def test_prefetch_bounds_frames_in_flight_and_stops_early():
    produced = []

    def frames():
        for i in range(1000):
            produced.append(i)
            yield np.full((4, 4), i % 256, np.uint8)

    it = read_ahead(frames(), depth=3)
    got = [next(it)[0, 0] for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    it.close()  # stops and joins the producer
    # at most the queue plus the one item being put are ahead of the consumer
    assert len(produced) <= 5 + 3 + 1
    # a consumer that stops while the producer waits to hand over the end marker
    short = read_ahead(iter([np.zeros(1)] * 3), depth=1)
    next(short)
    short.close()  # returns (the producer's put is timed), no hang


def test_prefetch_reraises_producer_error():
    def frames():
        yield np.zeros((2, 2), np.uint8)
        raise VideoError("video x.mp4: decoding failed")

    it = read_ahead(frames())
    next(it)
    with pytest.raises(VideoError, match="decoding failed"):
        next(it)
