"""Official TensorFlow Lite checkpoints: one home for reading and running ``.tflite`` files.

``reader`` parses a file once (LiteRT's interpreter + the flatbuffer schema) into a typed graph;
``importer`` maps that graph onto the suite's classification / DeepLab models, ``detection`` onto
its SSD; ``int8`` runs the file's own integer graph with TFLite's reference arithmetic, ``float_graph``
the same graph in float, ``mixed`` the two together (chosen ops in float), and ``compare`` (with
``layer_error``) reports where they part (``bench eval --compare-float``).
"""
