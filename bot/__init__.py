"""chat2sql bot: the platform-neutral core, the console channel, and (later) Slack and Teams."""
