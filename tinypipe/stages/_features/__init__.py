"""Feature extraction (`features:` in project.yaml): raw int16 sensor windows -> the model's input, computed in
fixed point the same way on the host (numpy, here) and on the device (`tinyml_kernels::features`)."""
