"""train.py --preview: a photo the run never trains on, stylized at every checkpoint, so that a person sees the
style take hold as training goes (generated/preview_<naming>/step-<N>.jpg, and TensorBoard's Images tab) and can
stop when it looks right.

Each preview loads the checkpoint just written into a graph and session of its own (inference.stylizer), so it
needs nothing of the training graph and works the same under every distribution strategy; at 512 pixels it costs
about a second, against checkpoints minutes apart. A preview that fails is a warning: training goes on.
"""
import os

import numpy as np
from PIL import Image

from images import load_image
from inference.stylizer import Stylizer
from utils import UsageError, log, tf

SIDE = 512  # the preview photo's longer side at most, in pixels
GAP = 8  # white pixels between the styles of a network of several


def load_photo(path, max_pixels):
    """The preview photo as uint8 RGB, its longer side at most SIDE; read before training starts, so that a
    missing or unreadable photo is a one-line error at once (images.load_image refuses more than max_pixels)."""
    pixels = load_image(path, 'preview photo', min_side=SIDE, max_pixels=max_pixels)[0]
    image = Image.fromarray(pixels)
    image.thumbnail((SIDE, SIDE), Image.LANCZOS)
    return np.asarray(image)


def is_preview_folder(path):
    """Whether `path` is a folder of previews that a run may add to: it holds nothing but step-<N>.jpg files."""
    return os.path.isdir(path) and all(name.startswith('step-') and name.endswith('.jpg') for name in os.listdir(path))


class Preview:
    """Called with each checkpoint written (checkpoints.Checkpoints.after_save): stylizes the photo with it."""

    def __init__(self, pixels, folder, outputs):
        """pixels: load_photo's; folder: where the previews go; outputs: the run's files.Outputs, in which the
        folder is claimed now (before the run's first write), with the folder among its own (a resumed run
        rewrites a step's preview)."""
        self.pixels, self.folder, self.outputs = pixels, folder, outputs
        outputs.claim(folder, '--preview', folder=True, resumable=is_preview_folder,
                      kind='a folder of previews of train.py')

    def picture(self, prefix):
        """The photo stylized by the checkpoint `prefix`: one image, or a network's styles side by side."""
        stylizer = Stylizer(prefix)
        try:
            if stylizer.styles == 1:
                return stylizer(self.pixels, progress=False)
            gap = np.full((self.pixels.shape[0], GAP, 3), 255, np.uint8)
            row = []
            for style in np.eye(stylizer.styles, dtype=np.float32):
                row += [stylizer(self.pixels, progress=False, style=style), gap]
            return np.concatenate(row[:-1], axis=1)
        finally:
            stylizer.close()

    def __call__(self, prefix, step, summaries=None):
        """Write the preview of checkpoint `prefix` at `step` to its file and, as the image 'preview', to the
        tf.summary.FileWriter `summaries` (TensorBoard's Images tab, with a slider over the steps)."""
        path = os.path.join(self.folder, 'step-%d.jpg' % step)
        try:
            picture = self.picture(prefix)
            self.outputs.image(path, picture, quality=90)
            with open(path, 'rb') as f:  # for TensorBoard: the JPEG just written rather than encoding it again
                jpeg = f.read()
        except (UsageError, OSError, MemoryError) as error:
            log.warning('no preview of step %d: %s', step, error)
            return
        log.info('preview of step %d written to %s', step, path)
        if summaries:
            image = tf.Summary.Image(height=picture.shape[0], width=picture.shape[1], colorspace=3,
                                     encoded_image_string=jpeg)
            summaries.add_summary(tf.Summary(value=[tf.Summary.Value(tag='preview', image=image)]), step)
            summaries.flush()
