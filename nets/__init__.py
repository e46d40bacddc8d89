"""Networks in TF-Slim's layout (end points and variable names as in their published checkpoints): the loss networks
(VGG) and Magenta's arbitrary-style network."""
