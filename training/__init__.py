"""Training the transform network: the graph (graph.py), the loop with its checkpoints (loop.py), and the
progress log and stop requests (progress.py). train.py is the command line around them."""
