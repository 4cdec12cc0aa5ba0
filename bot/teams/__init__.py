"""The Teams adapter package: botbuilder endpoint and bot (adapter), activity translation, Bot Framework
authentication (connector, keys), Adaptive Card rendering (cards), reminder delivery, and the app package
(manifest.json, icons, package builder)."""
