"""Training a fresh model on a set: models (the ConvNet and timm), augmentation (DSA, CutMix),
the evaluation protocols and the evaluation loop, and the runtime speed options (allocator, compile).
"""
