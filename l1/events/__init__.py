"""Lifecycle events on NATS JetStream: subjects, streams and consumers, event schemas,
the publisher, and the subscribers that hand events to the projectors."""
