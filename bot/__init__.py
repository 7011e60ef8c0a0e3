"""chat2sql bot: the platform-neutral core, the console, the chat server (Slack, Teams) and the MCP server."""
