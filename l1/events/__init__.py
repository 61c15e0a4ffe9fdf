"""Lifecycle events: subjects, streams and consumers, schemas, and the subscribers that
project them into Redis."""
