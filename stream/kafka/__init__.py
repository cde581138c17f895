"""Kafka I/O: clients, the embedded broker, the producer, partition ordering, the worker loop and replicas."""
