"""The few pieces both training scripts share: flags, batches from the uint8 cache, atomic checkpoints, the NaN guard."""
