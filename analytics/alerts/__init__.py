"""The alerts app: rules over the analytics' numbers, their events and notifications
(docs/alerts.md). It sits above ``analytics``: it reads the rollups, analytics never imports it."""
