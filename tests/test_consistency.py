"""Temporal consistency of stylized video: flow-guided blending against in-place blending and none.

The scenes are tiny synthetic clips with known motion; the "stylization" is the negative of the frame plus fresh
noise on every frame, the flicker a feed-forward network adds, so that stylize(frame) is known exactly.
"""
import numpy as np
import pytest
from PIL import Image

from inference import consistency

SIZE, SHARE = 64, 0.6


def _texture(seed, size):
    """A smooth random RGB texture that optical flow can follow."""
    small = np.random.default_rng(seed).integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def _noisy(image, rng, sigma=3.0):
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def _stylize(frames, seed=1):
    """The fake stylization: the negative, with new noise on each frame (flicker)."""
    rng = np.random.default_rng(seed)
    return [_noisy(255.0 - frame, rng, sigma=12.0) for frame in frames]


def _run(mode, frames, stylized, share=SHARE):
    blender = consistency.consistency_for(mode, share)
    return [blender(frame, styled) for frame, styled in zip(frames, stylized)], blender


def _pan(frames=8, step=2):
    """A texture panned `step` pixels left per frame, with sensor noise on every frame."""
    scene, rng = _texture(0, SIZE * 2), np.random.default_rng(2)
    return [_noisy(scene[16:16 + SIZE, 16 + step * t:16 + step * t + SIZE], rng) for t in range(frames)]


def _temporal_error(outputs, step=2):
    """Mean |out_t - out_(t-1) moved by the known motion| over the pixels both frames show."""
    return np.mean([np.abs(now[:, :-step].astype(float) - before[:, step:]).mean()
                    for before, now in zip(outputs, outputs[1:])])


def _ghosting(outputs, stylized):
    """Mean |out_t - stylize(frame_t)|: how far smoothing pulled the frames away from their own stylization."""
    return np.mean([np.abs(out.astype(float) - own).mean() for out, own in zip(outputs[1:], stylized[1:])])


def test_flow_on_a_pan_cuts_flicker_with_less_ghosting_than_blend():
    frames = _pan()
    stylized = _stylize(frames)
    none, _ = _run('blend', frames, stylized, share=0)
    blend, _ = _run('blend', frames, stylized)
    flow, blender = _run('flow', frames, stylized)
    assert blender.reliable_share > 0.8  # a pan is visible in both frames but at the entering edge
    assert _temporal_error(flow) < 0.6 * _temporal_error(none)
    assert _ghosting(flow, stylized) < 0.6 * _ghosting(blend, stylized)


def test_the_frame_after_a_scene_cut_is_not_blended():
    first, second = _texture(3, SIZE), _texture(4, SIZE)
    rng = np.random.default_rng(5)
    frames = [_noisy(first, rng) for _ in range(3)] + [_noisy(second, rng) for _ in range(2)]
    stylized = _stylize(frames)
    outputs, blender = _run('flow', frames, stylized)
    assert not np.array_equal(outputs[2], stylized[2])  # within the first scene, frames are blended
    np.testing.assert_array_equal(outputs[3], stylized[3])
    assert not np.array_equal(outputs[4], stylized[4])  # and again within the second


def test_newly_visible_pixels_take_the_new_frame():
    background, thing = _texture(6, SIZE), _texture(7, SIZE)
    rng = np.random.default_rng(8)
    frames = [_noisy(background, rng) for _ in range(3)]
    appeared = background.copy()
    appeared[20:44, 24:48] = 255 - thing[20:44, 24:48]  # an object steps in front of the background
    frames.append(_noisy(appeared, rng))
    stylized = _stylize(frames)
    outputs, _ = _run('flow', frames, stylized)
    inside = (slice(24, 40), slice(28, 44))  # the object, a few pixels in from its edges
    np.testing.assert_array_equal(outputs[3][inside], stylized[3][inside])
    background_only = np.ones((SIZE, SIZE), bool)
    background_only[16:48, 20:52] = False
    changed = np.abs(outputs[3].astype(int) - stylized[3])[background_only]
    assert changed.mean() > 3  # the still background is still blended with the previous output


def test_blend_mixes_each_frame_with_the_previous_output():
    frames = [np.full((2, 2, 3), value, np.uint8) for value in (0, 100, 200)]
    outputs, _ = _run('blend', frames, frames, share=0.25)
    assert [frame[0, 0, 0] for frame in outputs] == [0, 75, 169]  # 0.75 * 100; 0.25 * 75 + 0.75 * 200 = 168.75
    outputs, _ = _run('blend', frames, frames, share=0)
    assert [frame[0, 0, 0] for frame in outputs] == [0, 100, 200]


def test_warp_moves_an_image_along_the_flow():
    image = _texture(9, 16).astype(np.float32)
    flow = np.zeros((16, 16, 2), np.float32)
    flow[..., 0] = 3  # each pixel takes the value 3 columns to its right
    np.testing.assert_allclose(consistency.warp(image, flow)[:, :-3], image[:, 3:])


@pytest.mark.parametrize('size', [1, 5])
def test_tiny_frames_do_not_fail(size):
    frames = [np.full((size, size, 3), value, np.uint8) for value in (10, 20, 30)]
    outputs, _ = _run('flow', frames, frames)
    assert all(out.shape == (size, size, 3) for out in outputs)
