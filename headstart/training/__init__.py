"""The one training engine that fine-tuning, pretraining and the learning-rate range test stand on.

- `settings`: `DistributedConfig` (what Lightning Fabric runs on) and `TrainingError`;
- `fabric`: a launched Fabric from that config, and a backbone placed on its device;
- `checkpoint`: per-epoch checkpoints of named modules and optimizers, every process's random state and the
  caller's own state, refused on resume under other settings; safetensors + JSON, written atomically;
- `batches`: the deterministic batch order of an epoch, each process's share of it;
- `epochs`: the epoch runner: seeding per process, a progress bar, losses summed on the device, the divergence
  check, history, TensorBoard and metrics.csv.

Nothing here knows about fine-tuning or pretraining; they import from here, never the other way round. Modules load
torch, so import them where they are used (`import headstart` stays light).
"""
