"""The Slack adapter package: bolt app and routes (adapter), listeners and middleware, payload translation,
installation stores, Block Kit rendering, reminder delivery, and the app manifest (manifest.yml)."""
