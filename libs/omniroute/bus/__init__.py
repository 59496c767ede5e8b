"""NATS: the durable JetStream event stream and core-NATS config announcements."""
