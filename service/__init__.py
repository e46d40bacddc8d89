"""The HTTP service behind serve.py: work.py (models, queue, memory budget, decode/stylize/encode), requests.py
(options and bodies within the limits), app.py (routes and JSON errors), guard.py (connections and descriptors)."""
