"""The machine's limit, and where a measured graph stands under it: for benchmarks/performance.py's second table.

The roof is measured, not assumed: the best of a large matrix product and a large 3x3 convolution through
TensorFlow's own kernels (oneDNN on x86), in float32 and, where the CPU computes it natively, bfloat16. A graph's
work is counted from its ops and the shapes they run at (run-time shapes where the graph leaves them open), so that
a formulation that skips work (sub-pixel upsampling, content features without back-propagation) is credited with
the work it does, not with the work the original did. The time outside the matrix ops is read from one traced run
(TensorFlow's step stats), by op kind: the memory-bound parts a faster kernel would not help.
"""
import collections
import time

ROOF_SIDE, ROOF_CHANNELS, ROOF_MATRIX = 256, 128, 4096
ROOF_REPEATS = 5
MATRIX_KINDS = ('Conv2D', 'MatMul', 'Conv2d')  # op types containing these run on the matrix units
KINDS = (('padding', ('Pad', 'Gather')), ('normalization', ('BatchNorm', 'Mean', 'Sum', 'Variance', 'Rsqrt')),
         ('pooling', ('Pool',)), ('resize and layout', ('Resize', 'DepthToSpace', 'Transpose', 'Concat', 'Slice',
                                                        'Pack', 'Tile', 'Reshape')),
         ('precision casts', ('Cast',)), ('optimizer', ('Apply',)))  # the first that matches names an op's kind


def measure_roof(precision):
    """Practical peak GFLOP/s in `precision` ('float32' or 'bfloat16'): {'matmul': .., 'conv': ..}, each the best
    of ROOF_REPEATS warm runs."""
    import numpy as np
    from utils import tf
    rng = np.random.default_rng(0)
    dtype = tf.as_dtype(precision)
    shapes = {'matmul': ((ROOF_MATRIX, ROOF_MATRIX), (ROOF_MATRIX, ROOF_MATRIX)),
              'conv': ((1, ROOF_SIDE, ROOF_SIDE, ROOF_CHANNELS), (3, 3, ROOF_CHANNELS, ROOF_CHANNELS))}
    rates = {}
    for kind, (left_shape, right_shape) in shapes.items():
        with tf.Graph().as_default(), tf.Session() as sess:
            left, right = (tf.cast(tf.Variable(rng.uniform(-1, 1, shape).astype(np.float32)), dtype)
                           for shape in (left_shape, right_shape))
            product = tf.matmul(left, right) if kind == 'matmul' else tf.nn.conv2d(left, right, 1, 'SAME')
            total = tf.reduce_sum(tf.cast(product, tf.float32))  # a scalar out: the roof is the product's, not a copy's
            sess.run(tf.global_variables_initializer())
            seconds = min(_timed(sess, total) for _ in range(ROOF_REPEATS + 1))
            rates[kind] = flops_of_graph(tf.get_default_graph(), [total]) / seconds / 1e9
    return rates


def _timed(sess, fetch):
    start = time.perf_counter()
    sess.run(fetch)
    return time.perf_counter() - start


def theoretical_roof(flags, cpuinfo, cores, precision='float32'):
    """The vector or matrix units' peak in GFLOP/s of `precision` where the CPU says its frequency, with how it was
    reckoned; None and the reason where it does not (a virtual machine often hides it).

    Args:
      flags: the CPU's feature flags; cpuinfo: /proc/cpuinfo's text; cores: logical CPUs used; precision:
        'float32' or 'bfloat16'.
    """
    per_cycle = _flops_per_cycle(flags, cpuinfo, precision)
    megahertz = [float(line.split(':')[1]) for line in cpuinfo.splitlines() if line.startswith('cpu MHz')]
    if per_cycle is None:
        return None, 'not reckoned: the %s units of this CPU are not known to this script' % precision
    if not megahertz or not megahertz[0]:
        return None, ('not reckoned: the CPU does not report its clock (virtual machine); at %d %s FLOPs a cycle '
                      'and core' % (per_cycle, precision))
    ghz = max(megahertz) / 1000
    return cores * ghz * per_cycle, ('%d cores x %.2f GHz (the clock the CPU reports; boost runs above it) x %d '
                                     '%s FLOPs a cycle' % (cores, ghz, per_cycle, precision))


def _flops_per_cycle(flags, cpuinfo, precision):
    """FLOPs per cycle and core. float32: two fused multiply-add pipes of the vector width; AMD's Zen 2 to 4 run
    512-bit instructions on 256-bit pipes (family 23 and 25), Zen 5 (family 26) on full 512-bit ones. bfloat16:
    AMX's tile unit, 1024 (Intel's figure); else AVX512_BF16's dot products, two bfloat16 products for each
    float32 lane, twice float32's."""
    if precision == 'bfloat16':
        if 'amx_bf16' in flags:
            return 1024
        float32 = _flops_per_cycle(flags, cpuinfo, 'float32')
        return 2 * float32 if 'avx512_bf16' in flags and float32 else None
    family = next((int(line.split(':')[1]) for line in cpuinfo.splitlines() if line.startswith('cpu family')), None)
    amd = 'AuthenticAMD' in cpuinfo
    if 'avx512f' in flags and not (amd and family in (23, 25)):
        return 64
    if 'fma' in flags:
        return 32
    return None


def flops_of_graph(graph, fetches, sess=None, feed=None, ran=None):
    """Floating-point operations of the matrix work (convolutions and matrix products, forward and gradient) one
    run of `fetches` does, counted from the ops it needs and their shapes. Shapes the graph leaves open are read
    from one run of `sess` with `feed`.

    Args:
      ran: the names of the nodes a traced run ran (trace()), where known: a gradient op not among them is not
        counted. tf.gradients builds a convolution's kernel gradient beside its input gradient and the optimizers
        tie them together, but Grappler drops the kernel gradients of frozen weights (VGG's), a third of the work
        on paper. Forward ops are counted whatever their name: Grappler renames the ones it fuses.

    Returns:
      an int: 2 x multiply-adds.
    """
    ops = [op for op in _needed_ops(graph, fetches)
           if op.type in _COUNTED and (ran is None or 'Backprop' not in op.type or op.name in ran)]
    tensors = [tensor for op in ops for tensor in _shape_sources(op)]
    open_ones = [tensor for tensor in tensors if not tensor.shape.is_fully_defined()]
    shapes = {tensor.name: tensor.shape.as_list() for tensor in tensors if tensor.shape.is_fully_defined()}
    if open_ones:
        from utils import tf
        values = sess.run([tf.shape(tensor) for tensor in open_ones], feed)
        shapes.update({tensor.name: list(value) for tensor, value in zip(open_ones, values)})
    return sum(_op_flops(op, [shapes[tensor.name] for tensor in _shape_sources(op)]) for op in ops)


def _needed_ops(graph, fetches):
    """The ops a run of `fetches` (tensors or ops) executes: the fetches' inputs and control inputs, transitively."""
    seen, stack = set(), [getattr(fetch, 'op', fetch) for fetch in fetches]
    while stack:
        op = stack.pop()
        if op.name not in seen:
            seen.add(op.name)
            stack.extend(tensor.op for tensor in op.inputs)
            stack.extend(op.control_inputs)
    return [graph.get_operation_by_name(name) for name in sorted(seen)]


_COUNTED = ('Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'DepthwiseConv2dNative',
            'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter', 'MatMul', 'BatchMatMul',
            'BatchMatMulV2', 'BatchMatMulV3')


def _shape_sources(op):
    """The tensors whose shapes give an op's work: the product's output, the kernel (or the left factor) and, for
    gradients, the incoming gradient."""
    if op.type.endswith('BackpropInput'):
        return [op.inputs[2], op.inputs[1]]  # out_backprop, filter
    if op.type.endswith('BackpropFilter'):
        return [op.inputs[2], op.outputs[0]]  # out_backprop, the filter's gradient (the filter's shape)
    return [op.outputs[0], op.inputs[1] if 'Conv' in op.type else op.inputs[0]]


def _op_flops(op, shapes):
    """2 x multiply-adds of one op, from the shapes of its _shape_sources."""
    import numpy as np
    output, other = shapes
    if 'Depthwise' in op.type:
        per_output = other[0] * other[1]  # [kh, kw, in, multiplier]
    elif 'Conv' in op.type:
        per_output = other[0] * other[1] * other[2]  # [kh, kw, in, out]
    elif op.type == 'MatMul':
        per_output = other[0] if op.get_attr('transpose_a') else other[1]
    else:
        per_output = other[-2] if op.get_attr('adj_x') else other[-1]
    return 2 * int(np.prod(output, dtype=np.int64)) * int(per_output)


def trace(sess, fetches, feed=None):
    """One traced run of `fetches`, from TensorFlow's step stats (which name the ops Grappler left).

    Returns:
      the share of the ops' summed time per kind ('matrix ops' and KINDS' names, the rest 'element-wise and
      other'), most first; the set of the nodes' names that ran.
    """
    from utils import tf
    metadata = tf.RunMetadata()
    sess.run(fetches, feed, options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE), run_metadata=metadata)
    totals, ran = collections.Counter(), set()
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            op_type = node.timeline_label.split('(', 1)[0].rsplit('= ', 1)[-1]
            totals[op_kind(op_type)] += node.all_end_rel_micros
            ran.add(node.node_name)
    whole = sum(totals.values()) or 1
    return {kind: micros / whole for kind, micros in totals.most_common()}, ran


def op_kind(op_type):
    """The kind an op type (as Grappler and oneDNN rename them, such as _MklNativeFusedConv2D) is counted under."""
    if any(part in op_type for part in MATRIX_KINDS):
        return 'matrix ops'
    return next((kind for kind, parts in KINDS if any(part in op_type for part in parts)), 'element-wise and other')
