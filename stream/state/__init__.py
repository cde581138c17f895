"""Session state: live sessions, the item index, checkpoints of both with the offsets they reflect."""
