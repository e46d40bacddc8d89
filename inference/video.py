"""Video in and out through imageio-ffmpeg (its wheel ships an ffmpeg binary): frames, frame rate and audio."""
import time

import numpy as np
from tqdm import tqdm

from files import replacing
from utils import UsageError, log, require_file

INSTALL_HINT = 'pip install -r requirements-video.txt (imageio-ffmpeg)'


def check_available():
    """Raise UsageError saying how to install the video dependency when it is missing."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise UsageError('video needs imageio-ffmpeg, which is not installed: %s' % INSTALL_HINT) from None


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


def _batches(frames, size):
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def stylize_video(stylizer, source, output, batch_size, smooth, finish):
    """Stylize every frame of `source` into `output`, keeping the frame rate and the audio track.

    Args:
      stylizer: an inference.stylizer.Stylizer.
      source, output: video files (output's container from its extension, e.g. .mp4).
      batch_size: frames stylized per run.
      smooth: share of the previous output frame blended into each new one (0 = none), against flicker.
      finish: finish(stylized frames, original frames) -> frames, for colour preservation and strength.
    """
    import imageio_ffmpeg
    meta, frames = _read(source)
    fps, (width, height) = meta['fps'], meta['size']
    total = int(round(meta.get('duration', 0) * fps)) or None
    start, count = time.time(), 0
    with replacing(output) as temporary:  # ffmpeg picks the container by the extension, which it keeps
        writer = imageio_ffmpeg.write_frames(temporary, (width, height), fps=fps, macro_block_size=1, quality=8,
                                             audio_path=source if meta.get('audio_codec') else None,
                                             audio_codec='aac', ffmpeg_log_level='error')
        writer.send(None)
        try:
            with tqdm(total=total, unit='frame', desc='stylizing %s' % source) as bar:
                for frame in _smoothed(_stylized(stylizer, frames, batch_size, finish, bar), smooth):
                    writer.send(np.ascontiguousarray(frame))
                    count += 1
        finally:
            writer.close()
        _check_written(temporary, output, count)
    log.info('%d frames at %.3g fps stylized in %.1f s%s, written to %s', count, fps, time.time() - start,
             ' (audio kept)' if meta.get('audio_codec') else '', output)


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


def _stylized(stylizer, frames, batch_size, finish, bar):
    """Stylized and finished frames, run through the network in batches."""
    for batch in _batches(frames, batch_size):
        yield from finish(stylizer.stylize_batch(batch), batch)
        bar.update(len(batch))


def _smoothed(frames, smooth):
    """Each frame blended with `smooth` of the previous output frame (none when 0)."""
    previous = None
    for frame in frames:
        if smooth and previous is not None:
            frame = np.round(smooth * previous + (1 - smooth) * frame).astype(np.uint8)
        yield frame
        previous = frame.astype(np.float32)
