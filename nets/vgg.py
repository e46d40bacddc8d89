"""VGG-16 and VGG-19 (Simonyan and Zisserman, 2014) with TF-Slim's scope, end point and variable names.

The variables are `<scope>/convB/convB_J/{weights,biases}` and `<scope>/fc{6,7,8}/{weights,biases}`, as in slim's
pretrained `vgg_16.ckpt` and `vgg_19.ckpt`; the end points are `<scope>/convB/convB_J`, `<scope>/poolB` and
`<scope>/fc{6,7,8}`. Unlike slim's version, `final_endpoint` stops building after a layer: a style loss that
reads conv layers then never creates the fully connected layers (about 500 MB of weights for VGG-16), and the
network accepts inputs under 224 pixels, where fc6's 7x7 VALID convolution cannot be built.

Usage:
  with slim.arg_scope(vgg.vgg_arg_scope()):
    net, end_points = vgg.vgg_16(images, final_endpoint='vgg_16/conv4/conv4_3')
"""
from utils import slim, tf

# Number of 3x3 convolutions in each of the five blocks, and their width.
VGG_16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
VGG_19_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))
FC_LAYERS = ('fc6', 'fc7', 'fc8')


def vgg_arg_scope(weight_decay=0.0005):
    """Slim's defaults for VGG: ReLU, L2 weight decay, zero biases, SAME padding for convolutions.

    Args:
      weight_decay: the L2 regularization coefficient.

    Returns:
      An arg_scope to build the network in.
    """
    with slim.arg_scope([slim.conv2d, slim.fully_connected], activation_fn=tf.nn.relu,
                        weights_regularizer=slim.l2_regularizer(weight_decay),
                        biases_initializer=tf.zeros_initializer()):
        with slim.arg_scope([slim.conv2d], padding='SAME') as arg_sc:
            return arg_sc


def end_point_names(scope, blocks):
    """All end point names of a VGG network, in the order they are built."""
    names = []
    for block, (depth, _) in enumerate(blocks, start=1):
        names += ['%s/conv%d/conv%d_%d' % (scope, block, block, j) for j in range(1, depth + 1)]
        names.append('%s/pool%d' % (scope, block))
    return names + ['%s/%s' % (scope, fc) for fc in FC_LAYERS]


def _vgg(inputs, blocks, scope, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
         fc_conv_padding, global_pool, final_endpoint):
    """Build a VGG network of the given blocks; see vgg_16 for the arguments."""
    names = end_point_names(scope, blocks)
    final_endpoint = final_endpoint or names[-1]
    if final_endpoint not in names:
        raise ValueError('unknown final_endpoint %r; valid: %s' % (final_endpoint, ', '.join(names)))
    with tf.variable_scope(scope, scope, [inputs]) as sc:
        collection = sc.original_name_scope + '_end_points'
        with slim.arg_scope([slim.conv2d, slim.fully_connected, slim.max_pool2d],
                            outputs_collections=collection):
            net, end_points = _vgg_layers(inputs, blocks, sc.name, num_classes, is_training, dropout_keep_prob,
                                          fc_conv_padding, global_pool, final_endpoint, collection)
        if spatial_squeeze and sc.name + '/fc8' in end_points:
            net = tf.squeeze(net, [1, 2], name='fc8/squeezed')
            end_points[sc.name + '/fc8'] = net
        return net, end_points


def _vgg_layers(net, blocks, scope_name, num_classes, is_training, dropout_keep_prob, fc_conv_padding,
                global_pool, final_endpoint, collection):
    """The layers of _vgg up to final_endpoint; returns (last output, end points dict)."""
    def done():
        return slim.utils.convert_collection_to_dict(collection)

    for block, (depth, width) in enumerate(blocks, start=1):
        with tf.variable_scope('conv%d' % block):
            for j in range(1, depth + 1):
                net = slim.conv2d(net, width, [3, 3], scope='conv%d_%d' % (block, j))
                if final_endpoint == '%s/conv%d/conv%d_%d' % (scope_name, block, block, j):
                    return net, done()
        net = slim.max_pool2d(net, [2, 2], scope='pool%d' % block)
        if final_endpoint == '%s/pool%d' % (scope_name, block):
            return net, done()

    net = slim.conv2d(net, 4096, [7, 7], padding=fc_conv_padding, scope='fc6')
    if final_endpoint.endswith('/fc6'):
        return net, done()
    net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope='dropout6')
    net = slim.conv2d(net, 4096, [1, 1], scope='fc7')
    if global_pool:
        net = tf.reduce_mean(net, [1, 2], keepdims=True, name='global_pool')
    if final_endpoint.endswith('/fc7') or not num_classes:
        return net, done()
    net = slim.dropout(net, dropout_keep_prob, is_training=is_training, scope='dropout7')
    net = slim.conv2d(net, num_classes, [1, 1], activation_fn=None, normalizer_fn=None, scope='fc8')
    return net, done()


def vgg_16(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5, spatial_squeeze=True,
           scope='vgg_16', fc_conv_padding='VALID', global_pool=False, final_endpoint=None):
    """VGG-16 ("configuration D"), the loss network of fast style transfer.

    Args:
      inputs: a float tensor [batch, height, width, 3], RGB minus the ImageNet means.
      num_classes: the number of classes of fc8; 0 or None stops after fc7.
      is_training: whether dropout is active.
      dropout_keep_prob: the probability of keeping an activation in dropout.
      spatial_squeeze: squeeze fc8's 1x1 spatial dimensions away.
      scope: the variable scope; slim's checkpoints use 'vgg_16'.
      fc_conv_padding: padding of fc6 (slim: 'VALID', which needs 224-pixel inputs; 'SAME' for any size).
      global_pool: average fc7 over space before fc8.
      final_endpoint: the last end point to build, e.g. 'vgg_16/conv4/conv4_3'; None builds up to fc8.

    Returns:
      (net, end_points): the last layer's output and a dict end point name -> tensor.
    """
    return _vgg(inputs, VGG_16_BLOCKS, scope, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
                fc_conv_padding, global_pool, final_endpoint)


def vgg_19(inputs, num_classes=1000, is_training=True, dropout_keep_prob=0.5, spatial_squeeze=True,
           scope='vgg_19', fc_conv_padding='VALID', global_pool=False, final_endpoint=None):
    """VGG-19 ("configuration E"); the arguments are those of vgg_16."""
    return _vgg(inputs, VGG_19_BLOCKS, scope, num_classes, is_training, dropout_keep_prob, spatial_squeeze,
                fc_conv_padding, global_pool, final_endpoint)


vgg_16.default_image_size = 224
vgg_19.default_image_size = 224
vgg_16.end_points = end_point_names('vgg_16', VGG_16_BLOCKS)
vgg_19.end_points = end_point_names('vgg_19', VGG_19_BLOCKS)
