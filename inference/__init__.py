"""Inference with a trained transform network: loading it from any of its five forms (stylizer), tiling images above
a pixel budget with the whole image's statistics (tiling), colour preservation and blending (color), and video in
and out (video), and the style a run asks for, shared by eval.py and batch.py (styling)."""
