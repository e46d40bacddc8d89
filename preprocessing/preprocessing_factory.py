"""Look up the preprocessing that goes with a loss network, slim-style."""
from preprocessing import vgg_preprocessing

preprocessing_map = {'vgg_16': vgg_preprocessing, 'vgg_19': vgg_preprocessing}


def get_preprocessing(name, is_training=False):
    """Return (preprocessing_fn, unprocessing_fn) for the named loss network.

    preprocessing_fn(image, output_height, output_width) turns a decoded RGB image into the network's input;
    unprocessing_fn(image) turns such an input back into RGB 0..255.

    Raises:
      ValueError: the name is unknown.
    """
    if name not in preprocessing_map:
        raise ValueError('no preprocessing for %r (valid: %s)' % (name, ', '.join(sorted(preprocessing_map))))
    module = preprocessing_map[name]

    def preprocessing_fn(image, output_height, output_width, **kwargs):
        return module.preprocess_image(image, output_height, output_width, is_training=is_training, **kwargs)

    return preprocessing_fn, module.unprocess_image
