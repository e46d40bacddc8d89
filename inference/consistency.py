"""Temporal consistency for stylized video: each output frame is blended with the previous one, either in place
('blend') or moved along the optical flow ('flow').

A feed-forward network answers small changes between frames (noise, compression) with different strokes, which
flickers. Blending with the previous output calms that, but where things move it blends in what used to be there:
ghosts. 'flow' warps the previous output to where each pixel is now (optical flow from OpenCV's DIS, computed at
a reduced resolution) and blends only where the flow is reliable. Pixels fail when the forward and backward flows
disagree (occluded or newly visible), at motion boundaries, or when the warped previous input frame does not look
like the new one (in any colour channel); a frame where most pixels fail is a scene cut and is not blended at all. These are the
criteria of Ruder, Dosovitskiy and Brox (2016, "Artistic style transfer for videos"), plus the photometric one.
"""
import numpy as np

MODES = ('blend', 'flow')
FLOW_MAX_SIDE = 512  # flow is computed on frames shrunk to at most this long side
CUT_RELIABLE_SHARE = 0.3  # a frame with fewer reliable pixels than this starts a new scene
PHOTOMETRIC_TOLERANCE = 24.0  # the largest colour difference between the warped previous input and the new one
DIS_MIN_SIDE = 16  # OpenCV's DIS flow crashes (segfaults) on some frames with a side under this: pad them


class Blend:
    """The previous output frame blended in place: calms flicker, leaves ghosts where things move."""

    def __init__(self, share):
        self.share, self.previous = share, None

    def __call__(self, frame, stylized):
        """The output for one input frame (uint8 (H, W, 3)) and its stylization (uint8 (H, W, 3))."""
        if self.share and self.previous is not None:
            stylized = np.round(self.share * self.previous + (1 - self.share) * stylized).astype(np.uint8)
        self.previous = stylized.astype(np.float32)
        return stylized


class FlowBlend:
    """The previous output frame warped along the optical flow, blended where the flow is reliable."""

    def __init__(self, share):
        import cv2
        self.cv2, self.share = cv2, share
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self.previous_frame = self.previous_output = None
        self.reliable_share = None  # of the last frame, for the tests and the log

    def __call__(self, frame, stylized):
        """The output for one input frame (uint8 (H, W, 3)) and its stylization (uint8 (H, W, 3))."""
        output = stylized
        if self.share and self.previous_output is not None:
            backward, reliable = self.reliable_flow(frame, self.previous_frame)
            self.reliable_share = float(reliable.mean())
            if self.reliable_share >= CUT_RELIABLE_SHARE:
                warped = warp(self.previous_output, backward)
                weight = self.share * reliable[..., None]
                output = np.round(weight * warped + (1 - weight) * stylized).astype(np.uint8)
        self.previous_frame, self.previous_output = frame, output.astype(np.float32)
        return output

    def reliable_flow(self, frame, previous_frame):
        """(backward flow (H, W, 2): where each pixel of the new frame was in the previous one, float32 mask of
        the pixels whose flow is reliable)."""
        grey, previous_grey = (self.cv2.cvtColor(f, self.cv2.COLOR_RGB2GRAY) for f in (frame, previous_frame))
        backward = self._flow(grey, previous_grey)
        forward_back = warp(self._flow(previous_grey, grey), backward)  # the forward flow where each pixel was
        length = np.sum(backward ** 2, -1)
        consistent = (np.sum((backward + forward_back) ** 2, -1)
                      <= 0.01 * (length + np.sum(forward_back ** 2, -1)) + 0.5)
        steps = [np.diff(backward, axis=axis, append=np.take(backward, [-1], axis)) for axis in (0, 1)]
        boundary = sum(np.sum(step ** 2, -1) for step in steps) > 0.01 * length + 0.002
        difference = np.abs(warp(previous_frame, backward) - frame).max(-1)
        height, width = grey.shape
        source = _grid(height, width) + backward
        inside = ((source[..., 0] >= 0) & (source[..., 0] <= width - 1)
                  & (source[..., 1] >= 0) & (source[..., 1] <= height - 1))
        reliable = (consistent & ~boundary & (difference <= PHOTOMETRIC_TOLERANCE) & inside).astype(np.uint8)
        # An opening drops specks that pass by chance (a colour that happens to match) inside a failing region.
        reliable = self.cv2.morphologyEx(reliable, self.cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        return backward, reliable.astype(np.float32)

    def _flow(self, source, target):
        """Flow (H, W, 2) from `source` to `target` (x, y), computed on frames shrunk to FLOW_MAX_SIDE and, where a
        side is then under DIS_MIN_SIDE, padded to it by repeating the border (the padding's flow is dropped)."""
        height, width = source.shape
        scale = min(1.0, FLOW_MAX_SIDE / max(height, width))
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            source = self.cv2.resize(source, size, interpolation=self.cv2.INTER_AREA)
            target = self.cv2.resize(target, size, interpolation=self.cv2.INTER_AREA)
        small_height, small_width = source.shape
        pad = (max(0, DIS_MIN_SIDE - small_height), max(0, DIS_MIN_SIDE - small_width))
        source, target = (self.cv2.copyMakeBorder(image, 0, pad[0], 0, pad[1], self.cv2.BORDER_REPLICATE)
                          for image in (source, target))
        flow = self.flow.calc(source, target, None)[:small_height, :small_width]
        if scale < 1:
            flow = self.cv2.resize(flow, (width, height), interpolation=self.cv2.INTER_LINEAR) / scale
        return flow


def warp(image, flow):
    """image sampled at each pixel plus its flow (bilinear, borders repeated): image (H, W[, C]), flow (H, W, 2)."""
    import cv2
    coordinates = _grid(*flow.shape[:2]) + flow
    return cv2.remap(np.ascontiguousarray(image, np.float32), coordinates[..., 0], coordinates[..., 1],
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _grid(height, width):
    """(H, W, 2) float32: each pixel's (x, y)."""
    return np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), -1)


def consistency_for(mode, share):
    """The per-frame blender for --consistency `mode` ('blend' or 'flow') with --smooth `share`."""
    return FlowBlend(share) if mode == 'flow' else Blend(share)
