"""The measurements of benchmarks/performance.py, each run in a child process of its own so that its peak memory is
its own: python benchmarks/performance.py --measure NAME VARIANT REPEATS ARGS... prints RESULT {"times": [...], ...};
--original_eval is the cold baseline of eval.py."""
import argparse
import functools
import json
import os
import statistics
import tempfile
import time

TRAIN_BATCH, TRAIN_SIZE, GATYS_SIZE = 4, 256, 512


def _formulation(variant):
    """The transform network's formulation (model.py) a variant measures: the original's for 'reference'."""
    import model
    return model.ORIGINAL if variant == 'reference' else model.INFERENCE


def _against_roof(sess, fetches, feed=None):
    """The work one run of `fetches` does and where its time goes (benchmarks/roofline.py), after the timed runs,
    with the process's peak memory before them ('peak_gb'): the traced run and the run that reads open shapes
    build executors of their own, which the row's memory is not about."""
    from benchmarks import roofline
    from benchmarks.processes import own_peak_gb
    peak = own_peak_gb()
    kinds, ran = roofline.trace(sess, fetches, feed)
    return {'flops': roofline.flops_of_graph(sess.graph, fetches, sess, feed, ran), 'kinds': kinds, 'peak_gb': peak}


def _transform_flops(formulation, height, width):
    """The work of one transform-network forward pass at height x width, counted on a graph of its own (for
    the TFLite interpreter, which has no graph to count)."""
    import numpy as np
    from benchmarks import roofline
    import model
    from utils import tf
    with tf.Graph().as_default() as graph:
        images = tf.placeholder(tf.uint8, [1, height, width, 3])
        stylized = model.stylize_uint8(images, formulation)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            feed = {images: np.zeros((1, height, width, 3), np.uint8)}
            return roofline.flops_of_graph(graph, [stylized], sess, feed)


def _time_runs(run, repeats):
    run()  # warm-up: first-run set-up is not what these rows measure
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def measure_forward(variant, repeats, model_prefix, height, width):
    """Warm session, batch 1, uint8 in and out, as eval.py runs it."""
    import numpy as np
    import checkpoints
    import model
    from utils import session_config, tf
    bf16 = variant == 'bf16'
    image = np.random.default_rng(0).integers(0, 256, (1, int(height), int(width), 3), dtype=np.uint8)
    with tf.Graph().as_default():
        images = tf.placeholder(tf.uint8, [None, None, None, 3])
        stylized = model.stylize_uint8(images, _formulation(variant))
        sessions = [tf.Session(config=session_config(reduced)) for reduced in ([True, False] if bf16 else [False])]
        for sess in sessions:
            checkpoints.transform_saver().restore(sess, model_prefix)
        times = _time_runs(lambda: sessions[0].run(stylized, {images: image}), repeats)
        outputs = [sess.run(stylized, {images: image}).astype(int) for sess in sessions]
        work = _against_roof(sessions[0], [stylized], {images: image})
    difference = abs(outputs[0] - outputs[-1])  # bf16 against float32; 0 for float32 runs
    return times, {'mean_difference': float(difference.mean()), 'max_difference': int(difference.max()), **work}


def measure_export(variant, repeats, model_prefix, fmt, height, width):
    """An exported form run as a user would, with plain TensorFlow or the TFLite interpreter."""
    import numpy as np
    import export
    from files import Outputs
    from utils import tf
    formulation = _formulation(variant)
    image = np.random.default_rng(0).integers(0, 256, (int(height), int(width), 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as scratch:
        if fmt == 'tflite':
            path = os.path.join(scratch, 'model.tflite')
            export.export_tflite(model_prefix, path, Outputs([model_prefix]), formulation=formulation)
            interpreter = tf.lite.Interpreter(model_path=path, num_threads=os.cpu_count())
            interpreter.resize_tensor_input(0, [1, image.shape[0], image.shape[1], 3])
            interpreter.allocate_tensors()
            feed = image[None].astype(np.float32)

            def run():
                interpreter.set_tensor(interpreter.get_input_details()[0]['index'], feed)
                interpreter.invoke()
                return interpreter.get_tensor(interpreter.get_output_details()[0]['index'])
            return _time_runs(run, repeats), {'flops': _transform_flops(formulation, *image.shape[:2])}
        with tf.Graph().as_default() as graph, tf.Session() as sess:
            if fmt == 'pb':
                build = functools.partial(export.build_frozen_interface, formulation=formulation)
                tf.import_graph_def(export.freeze(model_prefix, build), name='')
                output = graph.get_tensor_by_name('output_image:0')
                feed = {'input_image:0': image.astype(np.int32).ravel(), 'height:0': image.shape[0],
                        'width:0': image.shape[1]}
            else:
                path = os.path.join(scratch, 'savedmodel')
                export.export_saved_model(model_prefix, path, Outputs([model_prefix]), formulation)
                tf.saved_model.loader.load(sess, [tf.saved_model.tag_constants.SERVING], path)
                output, feed = graph.get_tensor_by_name('stylized:0'), {'image:0': image[None]}
            return _time_runs(lambda: sess.run(output, feed), repeats), _against_roof(sess, [output], feed)


def measure_train(variant, repeats, vgg_prefix, image_dir):
    """Seconds per training step at TRAIN_BATCH x TRAIN_SIZE, and the input pipeline's own time per batch; variant
    'styles8' trains a network of 8 styles (conditional instance normalization)."""
    import numpy as np
    import reader
    import training.graph
    from nets.loss_network import LossNetwork
    from utils import session_config, tf
    bf16 = variant == 'bf16'
    config = argparse.Namespace(image_size=TRAIN_SIZE, batch_size=TRAIN_BATCH, loss_model='vgg_16',
                                mixed_precision=bf16,
                                content_layers=['vgg_16/conv3/conv3_3'], content_weight=1.0, style_weight=100.0,
                                tv_weight=0.0, style_layers=['vgg_16/conv1/conv1_2', 'vgg_16/conv2/conv2_2',
                                                             'vgg_16/conv3/conv3_3', 'vgg_16/conv4/conv4_3'])
    filenames = reader.list_images(image_dir)
    loss_net = LossNetwork('vgg_16', config.content_layers + config.style_layers, vgg_prefix, 'vgg_16/fc')
    grams = [np.eye(channels, dtype=np.float32) for channels in (64, 128, 256, 512)]
    loader = reader.ImageLoader(len(filenames), 0.05, TRAIN_SIZE)
    with tf.Graph().as_default():
        styles = [([gram * (1 + index) for gram in grams], config.style_weight)
                  for index in range(8 if variant == 'styles8' else 1)]
        ops = training.graph.build_graph(config, filenames, styles, loss_net, loader, reference=variant == 'reference')
        batch = tf.get_default_graph().get_tensor_by_name('IteratorGetNext:0')
        init_loss_network = loss_net.init_fn()
        with tf.Session(config=session_config(bf16)) as sess:
            sess.run(tf.global_variables_initializer())
            init_loss_network(sess)
            sess.run(ops.train_step)  # the first step also sets up kernels; not measured
            times = _time_runs(lambda: sess.run(ops.train_step), repeats)
            input_times = _time_runs(lambda: sess.run(batch), repeats)
            work = _against_roof(sess, [ops.train_step])
    return times, {'input_s': statistics.median(input_times), **work}


def measure_gatys(variant, repeats, vgg_prefix, size=GATYS_SIZE):
    """stylize.py's Adam iteration at size x size (GATYS_SIZE); the baseline builds VGG-16 through pool5, as
    tutorials do."""
    import numpy as np
    import gatys
    import stylize
    from nets.loss_network import LossNetwork
    from utils import session_config, tf
    bf16 = variant == 'bf16'
    args = stylize.parse_args(['--content', 'c.jpg', '--style', 's.jpg', '--optimizer', 'adam'])
    layers = args.content_layers + args.style_layers
    features = LossNetwork('vgg_16', layers, vgg_prefix, 'vgg_16/fc')
    built = layers + ['vgg_16/pool5'] if variant == 'reference' else layers
    rng = np.random.default_rng(0)
    with tf.Graph().as_default():
        image = tf.Variable(rng.uniform(0, 255, (1, int(size), int(size), 3)).astype(np.float32))
        end_points = features.end_points(image, built)
        content_targets = [np.zeros(end_points[layer].shape.as_list(), np.float32) for layer in args.content_layers]
        grams = [np.eye(end_points[layer].shape.as_list()[-1], dtype=np.float32) for layer in args.style_layers]
        loss = gatys.build_losses(end_points, image, (content_targets, [(None, grams)]),
                                  stylize.recipe_of(args))['total']
        step = tf.train.AdamOptimizer(args.learning_rate).minimize(loss, var_list=[image])
        init_loss_network = features.init_fn()
        with tf.Session(config=session_config(bf16)) as sess:
            sess.run(tf.global_variables_initializer())
            init_loss_network(sess)
            return _time_runs(lambda: sess.run(step), repeats), _against_roof(sess, [step])


def measure_arbitrary(variant, repeats, prefix, height, width):
    """Magenta's arbitrary-style network, warm, batch 1: for 'predict' the style prediction of a style image (resized
    to 256 as Magenta does); else the transformer on a photo, as nets/arbitrary.transform computes it ('fast') or
    as Magenta's code does ('reference')."""
    import numpy as np
    from nets import arbitrary
    from utils import session_config, tf
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, int(height), int(width), 3), dtype=np.uint8)
    with tf.Graph().as_default():
        pixels = tf.placeholder(tf.uint8, [1, None, None, 3])
        if variant == 'predict':
            output = arbitrary.style_embedding(arbitrary.style_input(pixels))
        else:
            parameters = arbitrary.style_parameters(tf.constant(rng.normal(size=(1, arbitrary.EMBEDDING)), tf.float32))
            transform = arbitrary.transform if variant == 'fast' else arbitrary.transform_reference
            output = arbitrary.stylize_uint8(pixels, parameters, transform)
        with tf.Session(config=session_config(False)) as sess:
            tf.train.Saver().restore(sess, prefix)
            return _time_runs(lambda: sess.run(output, {pixels: image}), repeats), _against_roof(sess, [output],
                                                                                                 {pixels: image})


def measure_masks(variant, repeats, model_file, height, width):
    """A photo stylized by the Stylizer (warm, whole, as eval.py runs it) with a left/right mask of two styles
    ('masked': the per-pixel path) or in the first style alone ('whole': the model's own graph)."""
    import numpy as np
    import model
    from inference.stylizer import Stylizer
    height, width = int(height), int(width)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    stylizer = Stylizer(model_file, max_pixels=height * width)
    if stylizer.arbitrary is not None:
        basis = np.stack([stylizer.embed(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(2)])
    else:
        basis = np.eye(2, dtype=np.float32)
    shares = np.zeros((height, width, 2), np.float32)
    shares[:, :width // 2, 0] = shares[:, width // 2:, 1] = 1
    style = model.StyleMap(basis, shares) if variant == 'masked' else basis[0]
    return _time_runs(lambda: stylizer(image, progress=False, style=style), repeats), {}


def measure_roof(precision, repeats):
    """The machine's practical peak in `precision` (benchmarks/roofline.py); no times of its own."""
    from benchmarks import roofline
    return [], {'rates': roofline.measure_roof(precision)}


def eval_phases(model_prefix, image_path):
    """eval.py's cold run of one JPEG, phase by phase in one fresh process: TensorFlow's import, the model's load
    (checkpoint checked, graph built), decode, the first run and a second, warm one (the first's set-up is the
    difference), and the encode."""
    marks = [time.perf_counter()]
    import eval as command
    from images import encode_image, load_image
    from inference import styling
    import tensorflow.compat.v1  # noqa: F401 (the import is the phase; utils.tf would defer it to the load)
    marks.append(time.perf_counter())
    args = command.parse_args(['--model_file', model_prefix, '--image_file', image_path])
    recipe = command.recipe_of(args)
    stylizer, style_for = styling.open_model(recipe, [])
    marks.append(time.perf_counter())
    rgb, _ = load_image(image_path, 'content image')
    marks.append(time.perf_counter())
    for _ in range(2):
        result = styling.stylize(recipe, stylizer, style_for, rgb, os.path.basename(image_path))
        marks.append(time.perf_counter())
    encode_image(result, 'JPEG', quality=args.quality)
    marks.append(time.perf_counter())
    phases = dict(zip(PHASES, (after - before for before, after in zip(marks, marks[1:]))))
    print('RESULT ' + json.dumps(phases))
    os._exit(0)  # as eval.py ends (utils.run_and_exit)


PHASES = ('import', 'load', 'decode', 'first run', 'warm run', 'encode')


def measure_stylizer(variant, repeats, model_file, side):
    """eval.py's Stylizer on a side x side photo, warm: at its default pixel budget (tiled above it) for 'tiled',
    in one run whatever its size (--max_pixels raised) for 'whole'."""
    import numpy as np
    from inference.stylizer import DEFAULT_MAX_PIXELS, Stylizer
    side = int(side)
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    stylizer = Stylizer(model_file, max_pixels=side * side if variant == 'whole' else DEFAULT_MAX_PIXELS)
    return _time_runs(lambda: stylizer(image, progress=False), repeats), {}


MEASUREMENTS = {'roof': measure_roof, 'forward': measure_forward, 'export': measure_export, 'train': measure_train,
                'gatys': measure_gatys, 'arbitrary': measure_arbitrary, 'masks': measure_masks,
                'stylizer': measure_stylizer}


def child_main(argv):
    name, variant, repeats, *rest = argv
    times, extra = MEASUREMENTS[name](variant, int(repeats), *rest)
    print('RESULT ' + json.dumps({'times': times, **extra}))


def original_eval(model_prefix, image_path, output):
    """The original eval.py's flow, as the cold baseline: a graph built for the image's size with the reference
    network, restore, one run, tf.image.encode_jpeg."""
    import model
    from preprocessing import vgg_preprocessing
    from utils import tf
    with tf.Graph().as_default(), tf.Session() as sess:
        image = tf.image.decode_jpeg(tf.read_file(image_path), channels=3)
        generated = model.net(tf.expand_dims(vgg_preprocessing.mean_image_subtraction(image), 0), model.ORIGINAL)
        encoded = tf.image.encode_jpeg(tf.cast(tf.clip_by_value(generated[0], 0, 255), tf.uint8))
        tf.train.Saver(model.transform_variables()).restore(sess, model_prefix)
        with open(output, 'wb') as f:
            f.write(sess.run(encoded))
