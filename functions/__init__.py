"""Runtime code, one package per deployable. Heavy imports (awscam, mxnet, cv2, greengrasssdk) stay in adapters."""
