"""The model (layer 1): the NumPy golden network, training, the device, planes and slices,
online-training rules, MNIST and the network files. Imports no Amaranth and nothing above it."""
