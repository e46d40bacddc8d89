"""benchmarks/roofline.py: the work a graph does, counted from its ops and shapes (static or read from a run), and
where a traced run's time goes. Hand-counted graphs: a wrong formula or a missed gradient changes the count."""
import sys

import numpy as np

from helpers import ROOT
from utils import tf

sys.path.insert(0, ROOT)
from benchmarks import roofline  # noqa: E402


def _conv_graph(shape):
    """A 3x3 convolution (4 to 5 maps), a stride-2 one, a depthwise 3x3 and a [3, 4] x [4, 5] matrix product, and
    the gradient of their sum with respect to the input and the first kernel."""
    rng = np.random.default_rng(0)
    images = tf.placeholder(tf.float32, shape)
    kernel = tf.Variable(rng.normal(size=(3, 3, 4, 5)).astype(np.float32))
    same = tf.nn.conv2d(images, kernel, 1, 'SAME')
    strided = tf.nn.conv2d(images, kernel, 2, 'SAME')
    depthwise = tf.nn.depthwise_conv2d(images, tf.ones((3, 3, 4, 1)), [1, 1, 1, 1], 'SAME')
    product = tf.matmul(tf.ones((3, 4)), tf.ones((4, 5)))
    total = sum(tf.reduce_sum(t) for t in (same, strided, depthwise, product))
    return images, total, tf.gradients(total, [images, kernel])


# forward: 8x8x5 outputs x 36 taps; 4x4x5 x 36; 8x8x4 x 9; 3x5 x 4 -- each multiply-add 2 operations
FORWARD = 2 * (320 * 36 + 80 * 36 + 256 * 9 + 15 * 4)
# gradients: each convolution's input gradient as much again as its forward pass; the first kernel's gradient from
# both of its convolutions (the depthwise kernel and the product's factors are constants: no gradient)
GRADIENTS = 2 * (320 * 36 + 80 * 36 + 256 * 9) + 2 * (320 * 36 + 80 * 36)


def test_the_work_of_a_graph_is_counted_from_its_ops_at_static_and_run_time_shapes():
    for shape in ([1, 8, 8, 4], [None, None, None, 4]):
        with tf.Graph().as_default() as graph, tf.Session() as sess:
            images, total, gradients = _conv_graph(shape)
            sess.run(tf.global_variables_initializer())
            feed = {images: np.ones((1, 8, 8, 4), np.float32)}
            assert roofline.flops_of_graph(graph, [total], sess, feed) == FORWARD
            if shape[0]:  # linear ops' gradients need no forward values, nor, at static shapes, their shapes
                assert roofline.flops_of_graph(graph, gradients, sess, feed) == GRADIENTS
            with tf.control_dependencies(gradients):
                train = tf.group(total)  # an op fetched: its control inputs are followed
            assert roofline.flops_of_graph(graph, [train], sess, feed) == FORWARD + GRADIENTS


def test_a_traced_run_s_time_is_shared_among_the_kinds_of_op():
    with tf.Graph().as_default(), tf.Session() as sess:
        images = tf.placeholder(tf.float32, [1, 64, 64, 16])
        padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode='REFLECT')
        output = tf.nn.relu(tf.nn.conv2d(padded, tf.ones((3, 3, 16, 16)), 1, 'VALID'))
        shares, ran = roofline.trace(sess, output, {images: np.ones((1, 64, 64, 16), np.float32)})
    assert abs(sum(shares.values()) - 1) < 1e-6 and shares['matrix ops'] > 0 and 'padding' in shares
    assert [roofline.op_kind(op) for op in ('_MklNativeFusedConv2D', '_FusedMatMul', 'MirrorPad', 'GatherV2',
                                            'FusedBatchNormV3', 'ResizeBilinear', 'Relu')] == [
        'matrix ops', 'matrix ops', 'padding', 'padding', 'normalization', 'resize and layout',
        'element-wise and other']


def test_the_theoretical_roof_is_reckoned_only_where_the_clock_and_vector_units_are_known():
    zen4 = 'vendor_id\t: AuthenticAMD\ncpu family\t: 25\ncpu MHz\t\t: 3000.000\n'
    assert roofline.theoretical_roof({'avx512f', 'fma'}, zen4, 2)[0] == 2 * 3.0 * 32  # 512-bit on 256-bit pipes
    intel = 'vendor_id\t: GenuineIntel\ncpu family\t: 6\ncpu MHz\t\t: 2000.000\n'
    assert roofline.theoretical_roof({'avx512f', 'fma'}, intel, 4)[0] == 4 * 2.0 * 64
    assert roofline.theoretical_roof({'avx2', 'fma'}, intel, 1)[0] == 2.0 * 32
    hidden = roofline.theoretical_roof({'avx512f', 'fma'}, zen4.replace('cpu MHz\t\t: 3000.000\n', ''), 2)
    assert hidden[0] is None and 'does not report its clock' in hidden[1]
    assert roofline.theoretical_roof(set(), intel, 2)[0] is None
    # bfloat16: AMX's tile unit; else AVX512_BF16's dot products at twice float32's rate; else not reckoned
    assert roofline.theoretical_roof({'avx512f', 'avx512_bf16', 'amx_bf16'}, intel, 2, 'bfloat16')[0] == 2 * 2.0 * 1024
    assert roofline.theoretical_roof({'avx512f', 'avx512_bf16', 'fma'}, zen4, 2, 'bfloat16')[0] == 2 * 3.0 * 64
    assert 'bfloat16 units' in roofline.theoretical_roof({'avx512f'}, intel, 2, 'bfloat16')[1]


def test_kernel_gradients_grappler_drops_are_not_counted():
    """Gatys' step: the image optimized through a frozen kernel. tf.gradients builds the kernel's gradient too, and
    Adam's gating ties it in, but it never runs: only the forward pass and the image's gradient are work."""
    with tf.Graph().as_default() as graph, tf.Session() as sess:
        image = tf.Variable(np.ones((1, 8, 8, 4), np.float32))
        kernel = tf.Variable(np.ones((3, 3, 4, 5), np.float32))
        loss = tf.reduce_sum(tf.nn.relu(tf.nn.conv2d(image, kernel, 1, 'SAME')) ** 2)
        step = tf.train.AdamOptimizer(0.1).minimize(loss, var_list=[image])
        sess.run(tf.global_variables_initializer())
        _, ran = roofline.trace(sess, step)
        on_paper = roofline.flops_of_graph(graph, [step])
        assert on_paper == 3 * 2 * 320 * 36  # forward, input gradient, kernel gradient
        assert roofline.flops_of_graph(graph, [step], ran=ran) == 2 * 2 * 320 * 36
