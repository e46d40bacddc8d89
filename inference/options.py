"""The options of a stylizing run that eval.py and batch.py share: the model, the results' format and quality,
colour and strength, tiling and precision, and the style (a trained one, a mix, or style images for Magenta's
arbitrary-style network), with their checks. One definition, so that the two commands take the same words."""
import os

from checkpoints import MODEL_FORMS, checkpoint_exists, model_exists
from images import IMAGE_FORMATS
from inference import masks
from inference.styling import Recipe
from inference.stylizer import DEFAULT_MAX_PIXELS
from nets.arbitrary import STYLE_SIZE, STYLE_SIZES
from nets import pretrained
from nets.pretrained import ARBITRARY_CHECKPOINT
from utils import UsageError, add_colour_options, add_precision_option, float_list

INPUT_EXTENSIONS = tuple(IMAGE_FORMATS)


def add_model_option(parser):
    """--model_file, which may be left out with --style_image (check_image_options fills in Magenta's network)."""
    parser.add_argument('--model_file',
                        help='checkpoint prefix, model folder, frozen .pb, SavedModel folder or .tflite; with '
                             "--style_image, by default Magenta's arbitrary-style network at %s, downloaded on "
                             'first use' % ARBITRARY_CHECKPOINT)


def add_image_options(parser, format_help):
    """The options of the results and the style (styles by region too), on an argparse parser; format_help: what
    --format does for the command."""
    parser.add_argument('--format', choices=sorted({ext[1:] for ext in INPUT_EXTENSIONS}),
                        help=format_help)
    parser.add_argument('--quality', type=int, default=95, help='JPEG and WebP quality, 1..100 (default: %(default)s)')
    add_colour_options(parser)
    parser.add_argument('--max_pixels', type=int, default=DEFAULT_MAX_PIXELS,
                        help='above this many pixels an image is stylized in tiles, keeping memory bounded '
                             '(default: %(default)s, about 1.4 GB, 2.2 GB tiled)')
    add_precision_option(parser)
    styles = parser.add_mutually_exclusive_group()
    styles.add_argument('--style', '--style_index', dest='style', metavar='NAME',
                        help="a model of several styles: stylize in this style, by name (its style image's file "
                             "name in the config, e.g. scream) or index (0 is the first)")
    styles.add_argument('--style_mix', type=float_list, metavar='W1,W2,...',
                        help="a model of several styles: blend the styles' parameters in these shares, one per style; "
                             "several --style_image: blend their styles in these shares, one per image")
    styles.add_argument('--stroke', type=float, metavar='S',
                        help='a model trained at several sizes of its style image (style_scales in its config): the '
                             'stroke size, S times the style image\'s; any S within the trained sizes, between them '
                             'a blend of the two nearest (default: 1 where trained; docs/STROKE.md)')
    add_mask_option(parser)
    arbitrary = parser.add_argument_group("Magenta's arbitrary-style network (a checkpoint of it as --model_file)")
    arbitrary.add_argument('--style_image', nargs='+', metavar='PATH',
                           help='the style: any image (several, with --style_mix giving their shares)')
    arbitrary.add_argument('--style_strength', type=float, default=1.0,
                           help="1 is the style image's style, 0 the photo's own (the photo taken as its style), "
                                "between them a blend of the two (default: %(default)s)")
    arbitrary.add_argument('--no_download', action='store_true',
                           help="do not download Magenta's checkpoint to %s when it is missing" % ARBITRARY_CHECKPOINT)
    arbitrary.add_argument('--style_size', type=int, default=STYLE_SIZE,
                           help="the style image's smaller side, resized to, before its style is predicted: larger "
                                "gives finer strokes; the resized image may have at most 1024 x 2048 pixels "
                                "(default: %(default)s, as Magenta's)")


def add_mask_option(parser, names="a style of the model, or a --style_image's file name"):
    """--mask, repeatable: styles by region (inference/masks.py); names: what NAME may be."""
    parser.add_argument('--mask', action='append', type=masks.parse_mask, metavar='[NAME=]PATH',
                        help="styles by region: a grey image of the photo's shape, white where the style NAME goes "
                             "(%s; without NAME, the style the other options give; 'photo' keeps the photo); repeat "
                             "for several styles. Uncovered pixels keep the photo. PATH may be a folder of masks "
                             "named as the photos (docs/MASKS.md)" % names)


def check_image_options(parser, args):
    """parser.error() for values of add_model_option's and add_image_options' options that are out of range or do
    not go together; fills in args.model_file with Magenta's network where --style_image leaves it out."""
    if not 1 <= args.quality <= 100:
        parser.error('--quality must be between 1 and 100, got %d' % args.quality)
    if not 0 <= args.strength <= 1:
        parser.error('--strength must be between 0 and 1, got %s' % args.strength)
    if not 0 <= args.style_strength <= 1:
        parser.error('--style_strength must be between 0 and 1, got %s' % args.style_strength)
    if not STYLE_SIZES[0] <= args.style_size <= STYLE_SIZES[1]:
        parser.error('--style_size must be between %d and %d, got %d' % (*STYLE_SIZES, args.style_size))
    if args.stroke is not None and not 0 < args.stroke < float('inf'):
        parser.error('--stroke must be a positive number, the stroke size relative to the style image\'s, got %s'
                     % args.stroke)
    if args.stroke is not None and args.style_image:
        parser.error("--stroke applies to networks trained with style_scales; the stroke size of Magenta's "
                     "arbitrary-style network is --style_size (smaller gives larger strokes)")
    if not args.style_image and (args.style_strength != 1 or args.style_size != STYLE_SIZE):
        parser.error('--style_strength and --style_size apply to --style_image')
    if args.model_file is None:
        if not args.style_image:
            parser.error("--model_file is required (or --style_image, which takes Magenta's arbitrary-style network "
                         "from %s by default)" % ARBITRARY_CHECKPOINT)
        args.model_file = ARBITRARY_CHECKPOINT
    count = len(args.style_image or ())
    given = getattr(args, 'mask', None) or ()
    masks_name_them = masks.styled(given) and all(mask.name is not None for mask in given)
    if count and ((count > 1 and not masks_name_them) or args.style_mix is not None) and len(
            args.style_mix or ()) != count:
        parser.error('%d style image%s take%s %d share%s: --style_mix %s'
                     % (count, 's' if count > 1 else '', '' if count > 1 else 's', count, 's' if count > 1 else '',
                        ','.join('w%d' % i for i in range(1, count + 1))))
    if args.style_image and args.style:
        parser.error('--style picks a style of a model of several styles; an arbitrary-style model takes '
                     '--style_image alone')
    if args.max_pixels < 4096:
        parser.error('--max_pixels must be at least 4096, got %d' % args.max_pixels)
    try:
        masks.check_masks(given, (args.style, args.style_mix, args.stroke))
    except UsageError as error:
        parser.error(str(error))


def recipe_of(args):
    """The styling.Recipe that the options of add_model_option and add_image_options ask for (after
    check_image_options)."""
    return Recipe(args.model_file, args.max_pixels, args.precision, args.style,
                  None if args.style_mix is None else tuple(args.style_mix), tuple(args.style_image or ()),
                  args.style_strength, args.style_size, args.preserve_colors, args.strength,
                  tuple(getattr(args, 'mask', None) or ()), args.stroke)


def missing_model(model_file, download, exists=model_exists):
    """What to say when there is no model at `model_file` (exists(path) tells), or None: Magenta's network at its
    default path is downloaded later, unless download is off."""
    if os.path.abspath(model_file) == os.path.abspath(ARBITRARY_CHECKPOINT):
        return None if download or checkpoint_exists(model_file) else pretrained.arbitrary_missing(model_file)
    return None if exists(model_file) else 'model file not found: %s (pass %s)' % (model_file, MODEL_FORMS)
