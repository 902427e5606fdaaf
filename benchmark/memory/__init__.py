"""Memory of inference: the MobileNetV2 paper's Table 3 measure, and measured peak memory."""
