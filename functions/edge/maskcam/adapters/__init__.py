"""Edges of the device application. Each module imports its heavy package (awscam, cv2, onnxruntime, mxnet,
greengrasssdk, awsiot) only inside itself, and only when one of its adapters is built."""
