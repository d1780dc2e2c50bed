"""The pieces both training scripts share: flags, batches from the uint8 cache, the optimizer step, the learning-rate
schedule, verified checkpoints, progress lines, the NaN guard."""
