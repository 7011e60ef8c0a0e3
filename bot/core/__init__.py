"""The platform-neutral core: a chat message in, an answer out. No chat-platform imports."""
