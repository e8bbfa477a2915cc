"""Helpers shared by the test suites (one home: documents, media checks, the stack's task
history, an in-memory Firestore)."""
