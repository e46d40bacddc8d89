"""Temporal consistency of stylized video: no smoothing, in-place blending and flow-guided blending side by side.

  python benchmarks/video_consistency.py --model_file models/wave.ckpt [--image img/test.jpg] [--size 512]
                                         [--frames 24] [--step 3] [--smooth 0.5]

Two clips with known motion are made from a photo, with fresh sensor-like noise (Gaussian, sigma 4) on every frame:
'pan' moves the whole view --step pixels per frame; 'object' slides a patch of the photo's mirror image over the
still photo. For each clip and --consistency mode the table gives:
  temporal error: mean |out_t - warp(out_(t-1))| over the pixels visible in both frames, warped by the true motion;
  ghosting: mean |out_t - stylize(frame_t)| where the scene moves, how far smoothing pulled a frame away from its
    own stylization;
  frames per second of the whole run (network, then blending) at --size, and the time per frame against none.
The network runs once per clip (eval.py's batches of 4); each mode then blends the same stylized frames.
"""
import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from utils import ArgumentParser  # noqa: E402 (after the path it lives on)
from inference import consistency  # noqa: E402 (after the path it lives on)
from inference.stylizer import Stylizer  # noqa: E402

MODES = (('none', 'blend', 0.0), ('blend', 'blend', None), ('flow', 'flow', None))


def pan_clip(photo, size, frames, step):
    """(frames, true backward flow, visible-in-both masks, moving masks): the view moves `step` px right a frame."""
    views = [photo[:size, step * t:step * t + size] for t in range(frames)]
    flow = np.zeros((size, size, 2), np.float32)
    flow[..., 0] = step  # pixel x of frame t was at x + step in frame t - 1
    visible = np.ones((size, size), bool)
    visible[:, size - step:] = False
    return views, flow, [visible] * frames, [np.ones((size, size), bool)] * frames


def object_clip(photo, size, frames, step):
    """A square patch (the photo's mirror image) sliding `step` px right a frame over the still photo."""
    background, side = photo[:size, :size], size // 3
    patch = photo[size - side:size, :side][:, ::-1]
    top, views, places = size // 3, [], []
    for t in range(frames):
        left = min(step * t, size - side)
        view = background.copy()
        view[top:top + side, left:left + side] = patch
        views.append(view)
        places.append(left)
    flows, visible, moving = [], [], []
    for t, left in enumerate(places):
        before = places[max(t - 1, 0)]
        flow = np.zeros((size, size, 2), np.float32)
        flow[top:top + side, left:left + side, 0] = before - left
        covered_before = np.zeros((size, size), bool)
        covered_before[top:top + side, before:before + side] = True
        now = np.zeros((size, size), bool)
        now[top:top + side, left:left + side] = True
        flows.append(flow)
        visible.append(~(covered_before & ~now))  # uncovered background was hidden in the frame before
        moving.append(covered_before | now)
    return views, flows, visible, moving


def noisy(frames, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(frame + rng.normal(0, 4, frame.shape), 0, 255).astype(np.uint8) for frame in frames]


def measure(outputs, stylized, flows, visible, moving):
    """(temporal error, ghosting) of a run's output frames."""
    temporal, ghosting = [], []
    for t in range(1, len(outputs)):
        flow = flows[t] if isinstance(flows, list) else flows
        warped = consistency.warp(outputs[t - 1], flow)
        temporal.append(np.abs(outputs[t].astype(np.float32) - warped)[visible[t]].mean())
        ghosting.append(np.abs(outputs[t].astype(np.float32) - stylized[t])[moving[t]].mean())
    return float(np.mean(temporal)), float(np.mean(ghosting))


def run_clip(stylizer, frames, smooth):
    """Stylize once, then blend in each mode: {mode: (outputs, seconds per frame of the whole run)}."""
    start = time.perf_counter()
    stylized = [image for first in range(0, len(frames), 4)
                for image in stylizer.stylize_batch(np.stack(frames[first:first + 4]))]
    network = (time.perf_counter() - start) / len(frames)
    runs = {}
    for name, mode, share in MODES:
        blender = consistency.consistency_for(mode, smooth if share is None else share)
        start = time.perf_counter()
        outputs = [blender(frame, styled) for frame, styled in zip(frames, stylized)]
        runs[name] = outputs, network + (time.perf_counter() - start) / len(frames)
    return stylized, runs


def main():
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model_file', required=True)
    parser.add_argument('--image', default=os.path.join(ROOT, 'img', 'test.jpg'))
    parser.add_argument('--size', type=int, default=512, help='frame side in pixels (default: %(default)s)')
    parser.add_argument('--frames', type=int, default=24, help='(default: %(default)s)')
    parser.add_argument('--step', type=int, default=3, help='pixels of motion per frame (default: %(default)s)')
    parser.add_argument('--smooth', type=float, default=0.5, help='share of the previous frame (default: %(default)s)')
    args = parser.parse_args()
    photo = Image.open(args.image).convert('RGB')
    width = args.size + args.step * args.frames
    photo = np.asarray(photo.resize((width, round(photo.height * width / photo.width)), Image.LANCZOS))
    if photo.shape[0] < args.size:
        sys.exit('error: %s is too wide for a %d px pan of %d frames; give a taller photo' % (args.image, args.size,
                                                                                             args.frames))
    stylizer = Stylizer(args.model_file)
    print('| clip | mode | temporal error | vs none | ghosting | frames/s | time per frame vs none |')
    print('|---|---|---|---|---|---|---|')
    for clip_name, make in (('pan', pan_clip), ('object', object_clip)):
        clean, flows, visible, moving = make(photo, args.size, args.frames, args.step)
        frames = noisy(clean)
        stylized, runs = run_clip(stylizer, frames, args.smooth)
        base_error, base_seconds = measure(runs['none'][0], stylized, flows, visible, moving)[0], runs['none'][1]
        for name, (outputs, seconds) in runs.items():
            error, ghosting = measure(outputs, stylized, flows, visible, moving)
            print('| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f |' % (clip_name, name, error, error / base_error,
                                                                   ghosting, 1 / seconds, seconds / base_seconds))
    print('\n%d frames of %d px, %d px of motion a frame, --smooth %g, model %s, %d CPU cores'
          % (args.frames, args.size, args.step, args.smooth, args.model_file, os.cpu_count()))


if __name__ == '__main__':
    main()
