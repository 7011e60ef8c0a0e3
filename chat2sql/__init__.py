"""Shared foundation of chat2sql: settings, typed errors, user-facing messages, logging."""
