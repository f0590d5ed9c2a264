"""Frame sources and frame references: real image files and real videos, written and read back."""

import cv2
import numpy as np
import pytest

from hoposer.errors import HoposerError
from hoposer.frames.sources import (
    IMAGE_SUFFIXES,
    ImageSource,
    VideoFileSource,
    open_source,
    read_frame,
    read_frames,
)


def _image(i: int) -> np.ndarray:
    """A 48 × 64 frame that tells its index apart (a flat colour plus a moving square)."""
    image = np.full((48, 64, 3), (10 * i, 200 - 10 * i, 90), np.uint8)
    image[8:20, 4 + 4 * i : 16 + 4 * i] = 255
    return image


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """An 8-frame MJPG video at 20 frames/s, and its frames as OpenCV decodes them in order."""
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (64, 48))
    for i in range(8):
        writer.write(_image(i))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    decoded = []
    while (read := capture.read())[0]:
        decoded.append(read[1])
    capture.release()
    assert len(decoded) == 8
    return path, decoded


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_a_folder_of_any_image_type_plays_in_order_with_file_times(suffix, tmp_path):
    def written(i):  # .pgm holds grey images, read back as BGR
        if suffix != ".pgm":
            return _image(i)
        return cv2.cvtColor(cv2.cvtColor(_image(i), cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)

    for i in range(3):
        image = written(i)[..., 0] if suffix == ".pgm" else written(i)
        assert cv2.imwrite(str(tmp_path / f"{i:03d}{suffix}"), image)
    (tmp_path / "notes.txt").write_text("not a frame")
    source = open_source(tmp_path)
    frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2] and source.length == 3
    assert [f.media_time for f in frames] == [0.0, 1 / source.fps, 2 / source.fps]
    assert source.size == (64, 48)
    assert source.ref(1) == str(tmp_path / f"001{suffix}")
    if suffix not in (".jpg", ".jpeg", ".webp"):  # lossless: the very pixels
        assert all(np.array_equal(f.image, written(f.index)) for f in frames)


def test_a_single_image_is_a_one_frame_source(tmp_path):
    path = tmp_path / "photo.bmp"
    cv2.imwrite(str(path), _image(3))
    source = open_source(path)
    assert isinstance(source, ImageSource)
    (frame,) = list(source)
    assert frame.index == 0 and frame.media_time == 0.0
    assert np.array_equal(frame.image, _image(3))


def test_an_unreadable_image_is_an_error_or_with_skip_unreadable_skipped_and_counted(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), _image(i))
    (tmp_path / "1.png").write_bytes(b"not a png")
    with pytest.raises(HoposerError, match="cannot read image .*1.png"):
        list(open_source(tmp_path))
    source = open_source(tmp_path, skip_unreadable=True)
    assert [f.index for f in source] == [0, 2] and source.unreadable == 1
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(b"junk")
    with pytest.raises(HoposerError, match="none of the 3 images"):
        open_source(tmp_path, skip_unreadable=True)


def test_missing_and_empty_sources_are_one_line_errors(tmp_path):
    with pytest.raises(HoposerError, match="does not exist"):
        open_source(tmp_path / "missing.mp4")
    with pytest.raises(HoposerError, match="no images"):
        open_source(tmp_path)


def test_video_frames_have_references_that_read_them_back(video):
    path, decoded = video
    source = VideoFileSource(path)
    frames = list(source)
    source.close()
    assert [f.index for f in frames] == list(range(8))
    assert [f.media_time for f in frames] == [i / 20.0 for i in range(8)]
    refs = [source.ref(f.index) for f in frames]
    assert refs[3] == f"{path}#3"
    assert all(np.array_equal(read_frame(r), d) for r, d in zip(refs, decoded, strict=True))


def test_read_frames_reads_references_in_their_order_in_one_pass(video, tmp_path):
    path, decoded = video
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), _image(9))
    refs = [
        f"{path}#1",
        f"{path}#2",
        f"{path}#5",  # a gap: passed over, not sought
        str(still),  # another file between
        f"{path}#6",
        f"{path}#2",  # back: the video is read again from its start
        f"{path}#7",
        f"{path}#8",  # past the end
        str(tmp_path / "gone.png"),
        f"{tmp_path / 'gone.mp4'}#0",
    ]
    images = list(read_frames(refs))
    assert len(images) == len(refs)
    for i, index in ((0, 1), (1, 2), (2, 5), (4, 6), (5, 2), (6, 7)):
        assert np.array_equal(images[i], decoded[index]), refs[i]
    assert np.array_equal(images[3], _image(9))
    assert images[7] is None and images[8] is None and images[9] is None


def test_a_file_name_with_a_hash_is_an_image_not_a_video_frame(tmp_path):
    path = tmp_path / "take#2.png"
    cv2.imwrite(str(path), _image(2))
    assert np.array_equal(read_frame(str(path)), _image(2))
    with pytest.raises(HoposerError, match="cannot read frame"):
        read_frame(f"{tmp_path / 'missing.mp4'}#4")
