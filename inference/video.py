"""Video in and out through imageio-ffmpeg (its wheel ships an ffmpeg binary): frames, frame rate and audio."""
import os
import time

import numpy as np
from tqdm import tqdm

from images import still_image_format
from inference.consistency import consistency_for
from utils import UsageError, log, require_file

INSTALL_HINT = 'pip install -r requirements-video.txt'
# The containers --output may name (by its extension), with the video and audio encoders that imageio-ffmpeg's
# ffmpeg has for each; GIF holds no sound. Any other extension would fail only after every frame was stylized.
CONTAINERS = {'.mp4': ('libx264', 'aac'), '.m4v': ('libx264', 'aac'), '.mov': ('libx264', 'aac'),
              '.mkv': ('libx264', 'aac'), '.avi': ('libx264', 'libmp3lame'), '.webm': ('libvpx-vp9', 'libopus'),
              '.gif': ('gif', None)}


def check_available(consistency='blend'):
    """Raise UsageError saying how to install the video dependencies when one is missing (OpenCV for
    --consistency flow)."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise UsageError('video needs imageio-ffmpeg, which is not installed: %s' % INSTALL_HINT) from None
    if consistency == 'flow':
        try:
            import cv2  # noqa: F401
        except ImportError:
            raise UsageError('--consistency flow needs OpenCV (opencv-python-headless), which is not installed: %s'
                             % INSTALL_HINT) from None


def check_source(path):
    """Refuse, before any work, a --video that is missing or is a still image: ffmpeg reads a JPEG as a video of one
    frame, and that is not what anyone passing it meant. Animated GIF and WebP are videos."""
    require_file(path, 'video', 'check the path')
    still = still_image_format(path)
    if still:
        raise UsageError('--video %s is a still image (%s), not a video: pass it to --image_file' % (path, still))


def check_output(path):
    """Raise UsageError, before any work, when the extension of `path` names no container in CONTAINERS."""
    if os.path.splitext(path)[1].lower() not in CONTAINERS:
        raise UsageError('--output %s: a video is written as %s, the container chosen by the extension'
                         % (path, ', '.join(CONTAINERS)))


def _encoder(path, with_audio):
    """imageio_ffmpeg.write_frames' keyword arguments for the container `path` names: its codec at a quality near
    visually lossless, and the audio codec when the source has sound (none for GIF)."""
    codec, audio = CONTAINERS[os.path.splitext(path)[1].lower()]
    options = {'libx264': {'quality': 8},  # crf 10
               'libvpx-vp9': {'quality': None, 'output_params': ['-crf', '24', '-b:v', '0']},
               'gif': {'quality': None, 'pix_fmt_out': 'rgb8'}}[codec]
    if with_audio and audio:
        options.update(audio_path=with_audio, audio_codec=audio)
    return dict(options, codec=codec)


def _read(path):
    """(metadata, frame generator of uint8 (H, W, 3)) of a video file."""
    import imageio_ffmpeg
    require_file(path, 'video', 'check the path')
    reader = imageio_ffmpeg.read_frames(path)
    try:
        meta = reader.__next__()
    except (OSError, RuntimeError, StopIteration) as error:
        raise UsageError('video is not readable: %s (%s)' % (path, str(error).strip().splitlines()[-1]
                                                             if str(error).strip() else 'no frames')) from None
    width, height = meta['size']

    def frames():
        for data in reader:
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
    return meta, frames()


def is_video(path):
    """True for a file that is not one still image: a video (or an animated GIF or WebP), as a mask may be."""
    return os.path.isfile(path) and still_image_format(path) is None


def mask_frames(path, height, width):
    """The frames of a mask video as float32 (height, width) grey maps in [0, 1] (inference.masks.grey_of)."""
    from inference.masks import grey_of
    _, frames = _read(path)
    for frame in frames:
        yield grey_of(frame, None, height, width)


def frame_size(path):
    """(height, width) of a video's frames, from its header; UsageError for a video ffmpeg cannot read."""
    return header(path)[:2]


def header(path):
    """(height, width, frames) of a video from its header, frames estimated from its duration and frame rate (None
    where the header does not say); UsageError for a video ffmpeg cannot read."""
    meta, frames = _read(path)
    frames.close()
    return meta['size'][1], meta['size'][0], int(round(meta.get('duration', 0) * meta['fps'])) or None


def _batches(frames, size):
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def stylize_video(stylize_batch, source, output, outputs, batch_size, smooth, finish, consistency='blend'):
    """Stylize every frame of `source` into `output`, keeping the frame rate and the audio track. A frame of odd
    width or height gets its last column or row repeated: the encoder's 4:2:0 colour needs even sides.

    Args:
      stylize_batch: stylizes a batch of frames, uint8 (N, H, W, 3), e.g. a Stylizer's stylize_batch.
      source, output: video files (output's container from its extension, e.g. .mp4).
      outputs: the files.Outputs that writes `output`.
      batch_size: frames stylized per run.
      smooth: share of the previous output frame blended into each new one (0 = none), against flicker.
      finish: finish(stylized frames, original frames) -> frames, for colour preservation and strength.
      consistency: how the previous frame is blended in: 'blend' in place, 'flow' along the optical flow
        (see consistency.py).
    """
    import imageio_ffmpeg
    meta, frames = _read(source)
    fps, (width, height) = meta['fps'], meta['size']
    even = (height + height % 2, width + width % 2)
    if even != (height, width):
        log.info('%s is %dx%d; the encoder needs even sides, so the result is %dx%d (the last %s repeated)', source,
                 width, height, even[1], even[0], ' and '.join(
                     what for what, odd in (('column', width % 2), ('row', height % 2)) if odd))
    total = int(round(meta.get('duration', 0) * fps)) or None  # as header() estimates it
    start, count = time.time(), 0
    with outputs.file(output) as temporary:  # ffmpeg picks the container by the extension, which it keeps
        writer = imageio_ffmpeg.write_frames(temporary, even[::-1], fps=fps, macro_block_size=1,
                                             ffmpeg_log_level='error',
                                             **_encoder(output, source if meta.get('audio_codec') else None))
        writer.send(None)
        try:
            with tqdm(total=total, unit='frame', desc='stylizing %s' % source) as bar:
                blend = consistency_for(consistency, smooth)
                if consistency == 'flow' and smooth:
                    blend = TimedBlend(blend, bar, 'optical flow')
                for original, stylized in _stylized(stylize_batch, frames, batch_size, finish, bar):
                    writer.send(_even(blend(original, stylized), even))
                    count += 1
        finally:
            writer.close()
        _check_written(temporary, output, count)
    audio = ('' if not meta.get('audio_codec') else ' (audio kept)' if CONTAINERS[
        os.path.splitext(output)[1].lower()][1] else ' (a GIF has no sound: the audio left out)')
    log.info('%d frame%s at %.3g fps stylized in %.1f s%s, written to %s', count, 's' * (count != 1), fps,
             time.time() - start, audio, output)


def _even(frame, even):
    """The frame padded to the (height, width) `even` by repeating its last row and column."""
    if frame.shape[:2] != even:
        frame = np.pad(frame, ((0, even[0] - frame.shape[0]), (0, even[1] - frame.shape[1]), (0, 0)), mode='edge')
    return np.ascontiguousarray(frame)


def _check_written(path, output, frames):
    """Raise UsageError unless the video at `path` holds `frames` frames: imageio-ffmpeg does not report an encoder
    that stopped early (a full disk, a file-size limit), which would leave a cut-off video."""
    import imageio_ffmpeg
    try:
        found = imageio_ffmpeg.count_frames_and_secs(path)[0]
    except (RuntimeError, OSError):
        found = 0
    if found != frames:
        raise UsageError('cannot write %s: the video encoder stopped after %d of %d frames (disk full or a file-size '
                         'limit?); nothing was changed there' % (output, found, frames))


def _stylized(stylize_batch, frames, batch_size, finish, bar):
    """(original, stylized and finished) frame pairs, run through the network in batches."""
    for batch in _batches(frames, batch_size):
        yield from zip(batch, finish(stylize_batch(batch), batch))
        bar.update(len(batch))


class TimedBlend:
    """A consistency blender whose share of the run's time the progress bar shows (the optical flow's cost)."""

    def __init__(self, blend, bar, label):
        self.blend, self.bar, self.label = blend, bar, label
        self.started, self.seconds = time.perf_counter(), 0.0

    def __call__(self, original, stylized):
        start = time.perf_counter()
        frame = self.blend(original, stylized)
        self.seconds += time.perf_counter() - start
        share = self.seconds / (time.perf_counter() - self.started)
        self.bar.set_postfix_str('%s %.0f%% of the time' % (self.label, 100 * share))
        return frame
