"""The Slack app: slash command, mentions and threads, Block Kit answers, buttons, OAuth."""
