"""leadscore api: REST, WebSocket and the dashboard over Redis, the registry and Kafka."""
