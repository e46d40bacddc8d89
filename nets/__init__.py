"""Loss networks in TF-Slim's layout (end points and variable names as in slim's checkpoints)."""
