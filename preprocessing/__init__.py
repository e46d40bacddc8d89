"""Image preprocessing for the loss networks (mean subtraction, aspect-preserving resize, central crop)."""
