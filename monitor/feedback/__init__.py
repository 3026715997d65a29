"""What the guard tells the world: logs, JSON reports, metrics, Kubernetes Events."""
